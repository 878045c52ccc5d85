"""What a model is given: the columns it knows, in the form it was fitted on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from shipyard.core.errors import Invalid


def model_columns(model: Any, X: pd.DataFrame, sensitive: Sequence[str] = ()) -> list[str]:
    """The columns of ``X`` the model takes, in its order.

    A model fitted on a DataFrame names its columns (``feature_names_in_``); extra columns in
    ``X`` (sensitive attributes it was not trained on, the id) are dropped. A model fitted on
    an array only knows how many columns it takes; sensitive columns are dropped when that
    makes the count match.
    """
    known = getattr(model, "feature_names_in_", None)
    if known is not None:
        names = [str(c) for c in known]
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise Invalid(
                f"the model needs column(s) {', '.join(map(repr, missing))} that the data "
                f"does not have (it has {', '.join(map(repr, map(str, X.columns)))}); "
                "evaluate on data with the columns the model was trained on."
            )
        return names
    columns = [str(c) for c in X.columns]
    count = getattr(model, "n_features_in_", None)
    if count is not None and count != len(columns):
        without = [c for c in columns if c not in set(sensitive)]
        if len(without) == count:
            return without
        raise Invalid(
            f"the model takes {count} column(s) but the data has {len(columns)} "
            f"({len(without)} without the sensitive ones); pass the columns it was trained on."
        )
    return columns


def as_model_input(model: Any, frame: pd.DataFrame) -> Any:
    """``frame`` as the model expects it: an array if it was fitted on one, else the frame.

    scikit-learn warns when an estimator fitted without column names is given a DataFrame.
    """
    if getattr(model, "feature_names_in_", None) is None and hasattr(model, "n_features_in_"):
        return frame.to_numpy()
    return frame


def split_pipeline(model: Any) -> tuple[Any | None, Any]:
    """``(preprocessing, final estimator)`` of a Pipeline; ``(None, model)`` for anything else."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps and hasattr(model, "__getitem__"):
        final = steps[-1][1]
        prep = model[:-1] if len(steps) > 1 else None
        return prep, final
    return None, model
