"""Real fitted pipelines for the registry suite, fitted once per session."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from registry_cases import Fitted, frame, prep
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(X, binary target, numeric target)."""
    return frame()


@pytest.fixture(scope="session")
def fitted(data: tuple[pd.DataFrame, pd.Series, pd.Series]) -> dict[str, Fitted]:
    """One tiny fitted pipeline per case the registry must round-trip."""
    X, label, area = data
    size = pd.qcut(area, 3, labels=["small", "medium", "large"]).astype(str)
    cases: list[tuple[str, Any, pd.Series, str, str]] = [
        ("logistic", LogisticRegression(max_iter=1000), label, "classification", "skops"),
        (
            "hist_gb",
            HistGradientBoostingClassifier(max_iter=15, random_state=0),
            label,
            "classification",
            "skops",
        ),
        (
            "forest_regressor",
            RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0),
            area,
            "regression",
            "skops",
        ),
        (
            "lightgbm",
            LGBMClassifier(n_estimators=20, random_state=0, verbosity=-1),
            label,
            "classification",
            "lightgbm",
        ),
        (
            "lightgbm_multiclass",
            LGBMClassifier(n_estimators=10, random_state=0, verbosity=-1),
            size,
            "classification",
            "lightgbm",
        ),
        (
            "lightgbm_regressor",
            LGBMRegressor(n_estimators=10, random_state=0, verbosity=-1),
            area,
            "regression",
            "lightgbm",
        ),
    ]
    out = {}
    for name, estimator, target, task, flavor in cases:
        pipeline = Pipeline([("prep", prep()), ("model", estimator)]).fit(X, target)
        out[name] = Fitted(pipeline, task, flavor, X)
    return out
