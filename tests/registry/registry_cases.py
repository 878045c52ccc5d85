"""Real data and the preprocessing `shipyard.train` builds, for the registry suite.

The data is scikit-learn's bundled breast-cancer table with a synthetic categorical column
(`grade`) and a few missing values; the preprocessing is the one `shipyard.train` builds
(median-imputed, scaled numbers; constant-imputed, one-hot categories).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.core.records import ColumnSchema, DatasetSchema, Signature
from shipyard.registry import signature_from_schema

NUMERIC = ["mean radius", "mean texture", "mean smoothness", "mean compactness", "mean symmetry"]
CATEGORICAL = ["grade"]
FEATURES = [*NUMERIC, *CATEGORICAL]


@dataclass(frozen=True)
class Fitted:
    pipeline: Pipeline
    task: str
    flavor: str
    X: pd.DataFrame


def frame() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    table = data.frame
    rng = np.random.default_rng(7)
    X = table[NUMERIC].copy()
    X["grade"] = rng.choice(["A", "B", "C", "D"], size=len(X))
    X.loc[X.index[:6], "mean radius"] = np.nan
    X.loc[X.index[6:9], "grade"] = None
    return X, table["target"], table["mean area"]


def prep() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False),
                ),
                CATEGORICAL,
            ),
        ]
    )


def signature(task: str = "classification", classes: Sequence[object] | None = None) -> Signature:
    """The signature of a model over FEATURES (a contract like the one ingest infers)."""
    schema = DatasetSchema(
        columns=[
            *(ColumnSchema(name=c, dtype="float64", min=0.0) for c in NUMERIC),
            ColumnSchema(name="grade", dtype="string", values=["A", "B", "C", "D"]),
        ]
    )
    if task == "classification" and classes is None:
        classes = [0, 1]
    return signature_from_schema(schema, FEATURES, task=task, classes=classes)
