"""Metrics per group of a sensitive column, and fairness measures across those groups.

Numeric columns with many values (age, income) are cut into at most five quantile bins, so a
slice holds enough rows to mean something; missing values form their own group.

    >>> groups(pd.Series([23, 35, 47, 62, 80, None, 29, 41, 55, 70])).tolist()[:6]
    ['[23, 32.6)', '[32.6, 42.2)', '[42.2, 53.4)', '[53.4, 65.2)', '[65.2, 80]', '(missing)']
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from shipyard.evaluate.metrics import compute

MISSING = "(missing)"
MAX_BINS = 5


def groups(values: pd.Series, *, max_bins: int = MAX_BINS) -> pd.Series:
    """The group label (a string) of every row: the value itself, or its quantile bin."""
    present = values.notna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values[present].nunique() > max_bins:
        labels = _bins(values[present].astype(float).to_numpy(), max_bins)
        out = pd.Series(MISSING, index=values.index, dtype=object)
        out[present] = labels
        return out
    return pd.Series(
        [_label(v) if ok else MISSING for v, ok in zip(values, present, strict=True)],
        index=values.index,
        dtype=object,
    )


def _label(value: Any) -> str:
    # An int column with a gap reads back as floats: show 1, not 1.0.
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _bins(x: np.ndarray, max_bins: int) -> list[str]:
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, max_bins + 1)))
    text = _edge_labels(edges)
    names = [
        f"[{lo}, {hi}{']' if i == len(edges) - 2 else ')'}"
        for i, (lo, hi) in enumerate(itertools.pairwise(text))
    ]
    index = np.searchsorted(edges[1:-1], x, side="right")
    return [names[i] for i in index]


def _edge_labels(edges: np.ndarray) -> list[str]:
    """The shortest labels (three significant digits or more) that keep every edge distinct."""
    for digits in range(3, 17):
        text = [f"{e:.{digits}g}" for e in edges]
        if len(set(text)) == len(text):
            return text
    return [repr(float(e)) for e in edges]


def slice_rows(
    task: str,
    group: pd.Series,
    y_true: np.ndarray | None,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    *,
    labels: list[Any] | None,
    space: Any = None,
) -> list[dict[str, Any]]:
    """``[{value, rows, metrics}]`` for each group, numeric bins in order, else largest first."""
    codes = group.to_numpy()
    counts = pd.Series(codes).value_counts()
    if any(str(v).startswith("[") for v in counts.index if v != MISSING):
        order = sorted(counts.index, key=lambda v: (v == MISSING, _lower_edge(v)))
    else:
        order = sorted(counts.index, key=lambda v: (v == MISSING, -counts[v], v))
    rows = []
    for value in order:
        mask = codes == value
        if task == "clustering":
            part = space[mask] if space is not None else None
            metrics = compute(task, None, y_pred[mask], X=part) if part is not None else {}
        else:
            assert y_true is not None
            score = y_score[mask] if y_score is not None else None
            metrics = compute(task, y_true[mask], y_pred[mask], score, labels=labels)
        rows.append({"value": str(value), "rows": int(mask.sum()), "metrics": metrics})
    return rows


def _lower_edge(label: str) -> float:
    try:
        return float(label[1:].split(",")[0])
    except ValueError:
        return float("inf")


def fairness(
    y_true: np.ndarray, y_pred: np.ndarray, group: pd.Series, *, positive: Any
) -> dict[str, float]:
    """Demographic-parity and equalized-odds differences (fairlearn), for a binary task.

    Both are the largest gap between any two groups: in the rate of positive predictions, and
    in the true- or false-positive rate. 0 is parity.
    """
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    # Both measures are weighted rates, so fairlearn gets each distinct (truth, prediction,
    # group) once with its row count as the weight: the same figures, and fast on 50k rows
    # (fairlearn's per-group machinery costs about a second per 50k rows otherwise).
    cells = (
        pd.DataFrame(
            {
                "truth": (y_true == positive).astype(int),
                "pred": (y_pred == positive).astype(int),
                "group": group.to_numpy(),
            }
        )
        .groupby(["truth", "pred", "group"], sort=True)
        .size()
        .reset_index(name="rows")
    )
    args = (cells["truth"].to_numpy(), cells["pred"].to_numpy())
    kwargs = {
        "sensitive_features": cells["group"].to_numpy(),
        "sample_weight": cells["rows"].to_numpy(),
    }
    return {
        "demographic_parity_difference": float(demographic_parity_difference(*args, **kwargs)),
        "equalized_odds_difference": float(equalized_odds_difference(*args, **kwargs)),
    }
