"""Joint drift: how well a classifier tells reference rows from current rows.

Per-feature tests see each column alone, so they miss a change in how columns move together
(a correlation that flips while every marginal stays put). A gradient-boosted domain classifier
(LightGBM) trained to separate a seeded sample of each side sees it: its cross-validated ROC-AUC
is 0.5 when the two sides are exchangeable and approaches 1 as they separate. The features it
splits on most (gain) are the ones driving the separation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.core.errors import Invalid
from shipyard.core.records import MultivariateDrift
from shipyard.data.types import dtype_of
from shipyard.monitor.sketch import as_floats, as_strings, as_table, is_numeric_dtype

FOLDS = 3
MIN_ROWS = 50  # per side; fewer and the AUC is noise
TOP_FEATURES = 10
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "verbose": -1,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,  # an OpenMP team on a busy machine is 10× slower, not 2× faster
}
ROUNDS = 100


def domain_classifier(
    reference: pa.Table | pd.DataFrame,
    current: pa.Table | pd.DataFrame,
    features: Sequence[str],
    *,
    rows: int = 5000,
    threshold: float = 0.75,
    seed: int = 0,
) -> MultivariateDrift:
    """Out-of-fold ROC-AUC of a classifier told to separate reference rows from current rows,
    on up to `rows` rows sampled from each side (the same number from both).

    >>> joint = domain_classifier(train_df, window_df, ["income", "grade"], seed=0)
    >>> joint.auc, joint.drifted, joint.top_features
    (0.83, True, {'income': 0.61, 'grade': 0.39})
    """
    # Imported here: serving imports the monitor, and needs neither library nor OpenMP.
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    ref, cur = as_table(reference, "reference"), as_table(current, "current")
    if not features:
        raise Invalid("domain_classifier received no features; name at least one column.")
    for side, table in (("reference", ref), ("current", cur)):
        absent = [f for f in features if f not in table.column_names]
        if absent:
            raise Invalid(
                f"the {side} data has no column(s) {absent}; expected every feature in "
                f"{list(features)}. Pass only features both sides have."
            )
    n = min(rows, ref.num_rows, cur.num_rows)
    if n < MIN_ROWS:
        raise Invalid(
            f"domain_classifier needs at least {MIN_ROWS} rows per side; received "
            f"{ref.num_rows} reference and {cur.num_rows} current rows. Use a larger window."
        )
    rng = np.random.default_rng(seed)
    ref = ref.take(np.sort(rng.choice(ref.num_rows, n, replace=False)))
    cur = cur.take(np.sort(rng.choice(cur.num_rows, n, replace=False)))
    x, categorical = _design(ref, cur, features)
    y = np.repeat([0.0, 1.0], n)
    fold = np.concatenate([rng.permutation(n) % FOLDS, rng.permutation(n) % FOLDS])
    scores = np.empty(2 * n)
    gain = np.zeros(len(features))
    params = {**PARAMS, "seed": seed}
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        data = lgb.Dataset(x[train], y[train], categorical_feature=categorical, free_raw_data=True)
        booster = lgb.train(params, data, num_boost_round=ROUNDS)
        scores[test] = booster.predict(x[test])
        gain += booster.feature_importance(importance_type="gain")
    auc = float(roc_auc_score(y, scores))
    return MultivariateDrift(
        auc=auc,
        threshold=threshold,
        drifted=auc >= threshold,
        rows=n,
        top_features=_top(features, gain),
    )


def _design(ref: pa.Table, cur: pa.Table, features: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Both sides stacked as one float matrix; categories as codes shared by the two sides."""
    columns, categorical = [], []
    for i, name in enumerate(features):
        r, c = ref.column(name), cur.column(name)
        if is_numeric_dtype(dtype_of(r.type)):
            values = np.concatenate([as_floats(name, r), as_floats(name, c)])
            values[np.isinf(values)] = np.nan  # the trees split on finite thresholds
        else:
            text = pa.concat_arrays(
                [
                    _combined(as_strings(name, r)).cast(pa.string()),
                    _combined(as_strings(name, c)).cast(pa.string()),
                ]
            )
            indices = text.dictionary_encode().indices
            values = indices.to_numpy(zero_copy_only=False).astype(np.float64)
            categorical.append(i)
        columns.append(values)
    return np.column_stack(columns), categorical


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _top(features: Sequence[str], gain: np.ndarray) -> dict[str, float]:
    total = gain.sum()
    if total <= 0:
        return {}
    order = np.argsort(-gain, kind="stable")[:TOP_FEATURES]
    return {features[i]: float(gain[i] / total) for i in order if gain[i] > 0}
