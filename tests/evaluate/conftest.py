"""Real models on real data for the evaluate suite, built once per session.

- `cancer`: scikit-learn's breast-cancer data, StandardScaler + LogisticRegression.
- `diabetes`: scikit-learn's diabetes data, a plain RandomForestRegressor (no preprocessing).
- `loans`: a synthetic loan book shaped like the trainer's output: a ColumnTransformer (numeric
  imputer + scaler, categorical imputer + one-hot) and an LGBMClassifier, string labels, a
  sensitive column the model never sees (`sex`), one it does (`age`), an informative numeric
  column (`signal`), an informative category (`color`), pure noise and a column a third missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.evaluate import EvaluationReport, evaluate_model


@dataclass(frozen=True)
class Case:
    model: Any
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series


@pytest.fixture(scope="session")
def cancer() -> Case:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(X_train, y_train)
    return Case(model, X_train, y_train, X_test, y_test)


@pytest.fixture(scope="session")
def diabetes() -> Case:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = RandomForestRegressor(n_estimators=40, max_depth=6, random_state=0)
    model.fit(X_train, y_train)
    return Case(model, X_train, y_train, X_test, y_test)


def _make_loans(rows: int, *, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Loan rows and their label ('yes' = default, about one row in six)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=rows),
            "noise": rng.normal(size=rows),
            "color": rng.choice(["red", "green", "blue"], size=rows),
            "age": rng.integers(18, 80, size=rows),
            "income": rng.lognormal(10, 0.5, size=rows),
            "sex": rng.choice(["f", "m"], size=rows, p=[0.4, 0.6]),
        }
    )
    X.loc[rng.random(rows) < 0.35, "income"] = np.nan
    logit = 1.8 * X["signal"] + 1.5 * (X["color"] == "red") - 2.3 + rng.normal(0, 0.4, rows)
    y = pd.Series(np.where(logit > 0, "yes", "no"), name="default")
    return X, y


LOAN_FEATURES = ["signal", "noise", "color", "age", "income"]


def _loan_pipeline(estimator: Any) -> Pipeline:
    """The trainer's shape: ColumnTransformer('num', 'cat') then the estimator."""
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False
                ),
            ),
        ]
    )
    prep = ColumnTransformer(
        [("num", numeric, ["signal", "noise", "age", "income"]), ("cat", categorical, ["color"])]
    )
    return Pipeline([("prep", prep), ("model", estimator)])


@pytest.fixture(scope="session")
def make_loans() -> Callable[..., tuple[pd.DataFrame, pd.Series]]:
    """`make_loans(rows, seed=0) -> (X, y)`."""
    return _make_loans


@pytest.fixture(scope="session")
def loan_pipeline() -> Callable[[Any], Pipeline]:
    """`loan_pipeline(estimator)`: the trainer's ColumnTransformer in front of `estimator`."""
    return _loan_pipeline


@pytest.fixture(scope="session")
def loans() -> Case:
    X, y = _make_loans(4000)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)
    model = _loan_pipeline(LGBMClassifier(n_estimators=60, verbose=-1, random_state=0))
    model.fit(X_train[LOAN_FEATURES], y_train)  # sex is not a feature
    return Case(model, X_train, y_train, X_test, y_test)


@pytest.fixture(scope="session")
def loans_report(loans: Case) -> EvaluationReport:
    return evaluate_model(
        loans.model, loans.X_test, loans.y_test, task="classification", sensitive=["sex", "age"]
    )


@pytest.fixture(scope="session")
def diabetes_report(diabetes: Case) -> EvaluationReport:
    X = diabetes.X_test
    return evaluate_model(diabetes.model, X, diabetes.y_test, task="regression", sensitive=["sex"])
