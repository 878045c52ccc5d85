"""Preprocessing built from the dataset's schema, saved as the first step of every model."""

from __future__ import annotations

from dataclasses import dataclass, field

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.core.records import DatasetSchema, Profile

MAX_CATEGORIES = 30
ID_LIKE_SHARE = 0.5


@dataclass(frozen=True)
class FeaturePlan:
    numeric: list[str]
    categorical: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # column → why

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def plan_features(schema: DatasetSchema, profile: Profile) -> FeaturePlan:
    """Feature columns: all but the target, id, time and sensitive ones; text columns that
    look like identifiers (mostly distinct values) and time-typed columns are left out."""
    numeric, categorical, excluded = [], [], {}
    for col in schema.columns:
        if col.role != "feature":
            excluded[col.name] = f"role {col.role}"
            continue
        if col.dtype in ("int64", "float64"):
            numeric.append(col.name)
        elif col.dtype in ("string", "bool"):
            prof = profile.column(col.name)
            distinct = prof.distinct if prof else None
            if distinct is None or (
                prof and distinct > ID_LIKE_SHARE * max(prof.count, 1) and distinct > 50
            ):
                excluded[col.name] = "text with mostly distinct values (identifier-like)"
            else:
                categorical.append(col.name)
        else:
            excluded[col.name] = f"{col.dtype} columns are not used as features yet"
    return FeaturePlan(numeric, categorical, excluded)


def build_preprocessor(plan: FeaturePlan) -> ColumnTransformer:
    transformers = []
    if plan.numeric:
        transformers.append(
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), plan.numeric)
        )
    if plan.categorical:
        transformers.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        max_categories=MAX_CATEGORIES,
                        sparse_output=False,
                    ),
                ),
                plan.categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop")


def build_pipeline(plan: FeaturePlan, estimator: object) -> Pipeline:
    return Pipeline([("prep", build_preprocessor(plan)), ("model", estimator)])
