"""Small real models for the serve suite: synthetic loan data, the preprocessing train builds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.core.records import ColumnSchema, DatasetSchema, GateResult, ModelVersion, Signature
from shipyard.registry import register, signature_from_schema
from shipyard.store.workspace import Workspace

NUMERIC = ["income", "debt", "age", "score"]
FEATURES = [*NUMERIC, "grade"]
FAILED = GateResult(gate="f1 >= 0.9", kind="metric", passed=False, value=0.71, threshold=0.9)
PASSED = GateResult(gate="f1 >= 0.6", kind="metric", passed=True, value=0.82, threshold=0.6)


def frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """n rows of loans and whether they defaulted."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "income": rng.gamma(4.0, 12_000.0, n).round(2),
            "debt": rng.gamma(2.0, 5_000.0, n).round(2),
            "age": rng.integers(18, 80, n).astype("float64"),
            "score": rng.normal(650, 80, n).round(1),
            "grade": rng.choice(["A", "B", "C", "D"], n),
        }
    )
    logit = (
        (X["debt"] / X["income"]) * 3
        - (X["score"] - 650) / 80
        + X["grade"].map({"A": -1.0, "B": -0.3, "C": 0.3, "D": 1.0})
    )
    y = (logit + rng.normal(0, 0.5, n) > 0.5).map({True: "yes", False: "no"})
    return X, y.rename("default")


def prep(numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = ("grade",)) -> Any:
    parts: list[tuple[str, Any, list[str]]] = [
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(numeric))
    ]
    if categorical:
        parts.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                list(categorical),
            )
        )
    return ColumnTransformer(parts)


def fit(C: float = 1.0, *, features: Sequence[str] = FEATURES, seed: int = 0) -> Pipeline:
    X, y = frame(2_000, seed)
    numeric = [c for c in features if c in NUMERIC]
    categorical = [c for c in features if c == "grade"]
    pipeline = Pipeline(
        [("prep", prep(numeric, categorical)), ("model", LogisticRegression(C=C, max_iter=500))]
    )
    return pipeline.fit(X[list(features)], y)


def signature(features: Sequence[str] = FEATURES, *, nullable: bool = True) -> Signature:
    schema = DatasetSchema(
        columns=[
            *(ColumnSchema(name=c, dtype="float64", nullable=nullable) for c in NUMERIC),
            ColumnSchema(name="grade", dtype="string", values=["A", "B", "C", "D"]),
        ]
    )
    return signature_from_schema(schema, features, task="classification", classes=["no", "yes"])


def add(
    ws: Workspace,
    pipeline: Pipeline,
    *,
    name: str = "credit-risk",
    failed: bool = False,
    nullable: bool = True,
) -> ModelVersion:
    """Register a fitted pipeline; `failed` registers it rejected by a failed gate."""
    features = [str(c) for c in pipeline.feature_names_in_]
    return register(
        ws,
        name,
        pipeline,
        task="classification",
        signature=signature(features, nullable=nullable),
        metrics={"f1": 0.71 if failed else 0.82},
        gates=[FAILED if failed else PASSED],
    )
