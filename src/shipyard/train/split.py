"""Held-out splits and cross-validation folds: time-ordered when the data has a time column
(train on the past, validate on the future), stratified for classification otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, train_test_split

from shipyard.core.errors import Invalid


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    how: str  # a sentence for the report and the model card


def holdout(
    frame: pd.DataFrame,
    *,
    target: str | None,
    time: str | None,
    task: str,
    test_size: float,
    seed: int,
) -> Split:
    if len(frame) < 20:
        raise Invalid(f"the dataset has {len(frame)} rows; training needs at least 20.")
    if time:
        ordered = frame.sort_values(time, kind="stable")
        cut = round(len(ordered) * (1 - test_size))
        train, test = ordered.iloc[:cut], ordered.iloc[cut:]
        how = (
            f"time-ordered on {time!r}: trained on {len(train):,} rows up to "
            f"{train[time].iloc[-1]}, "
            f"tested on the {len(test):,} later rows ({test[time].iloc[0]} to "
            f"{test[time].iloc[-1]})"
        )
        return Split(train, test, how)
    stratify = frame[target] if task == "classification" and target else None
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)
    kind = "stratified random" if stratify is not None else "random"
    return Split(
        train,
        test,
        f"{kind} split: {len(train):,} training rows, {len(test):,} test rows (seed {seed})",
    )


def given(frame: pd.DataFrame, test: pd.DataFrame, *, time: str | None, label: str) -> Split:
    """All of `frame` to train on (in time order when there is a time), `test` to test on."""
    if len(test) == 0:
        raise Invalid("the given test rows are empty; pass None to split the dataset instead.")
    missing = [c for c in frame.columns if c not in test.columns]
    if missing:
        raise Invalid(f"the given test rows lack the dataset's columns {missing}.")
    train = frame.sort_values(time, kind="stable") if time else frame
    return Split(
        train,
        test[frame.columns],
        f"trained on all {len(train):,} rows; tested on {len(test):,} {label}",
    )


def folds(
    *, task: str, time: str | None, n: int, seed: int
) -> KFold | StratifiedKFold | TimeSeriesSplit:
    if time:
        return TimeSeriesSplit(n_splits=n)
    if task == "classification":
        return StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    return KFold(n_splits=n, shuffle=True, random_state=seed)


def check_target(frame: pd.DataFrame, target: str | None, task: str, cv: int) -> None:
    if task == "clustering":
        return
    if not target:
        raise Invalid(
            f"a {task} model needs a target: set data.target in shipyard.yaml (or --target at "
            "ingest)."
        )
    if target not in frame.columns:
        raise Invalid(
            f"the target column {target!r} is not in the dataset; its columns are "
            f"{list(frame.columns)}."
        )
    y = frame[target]
    if y.isna().any():
        raise Invalid(
            f"the target {target!r} has {int(y.isna().sum()):,} missing values; drop or fill "
            "them at ingest."
        )
    if task == "classification":
        counts = y.value_counts()
        if len(counts) < 2:
            raise Invalid(
                f"the target {target!r} has one class ({counts.index[0]!r}); a classifier needs at "
                "least two. Check the data, or use task: regression."
            )
        rare = counts[counts < cv]
        if len(rare):
            raise Invalid(
                f"the target {target!r} class(es) {list(rare.index)} have fewer rows than the "
                f"{cv} folds of cross-validation; lower train.search.cv or get more data."
            )
    elif task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise Invalid(
            f"a regression target must be numeric; {target!r} is {y.dtype}. Use task: "
            "classification?"
        )
