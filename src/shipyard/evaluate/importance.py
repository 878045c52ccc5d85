"""Global feature importance on the ORIGINAL columns: mean |SHAP|, or permutation importance.

Which explainer runs depends on the final estimator:

- tree ensembles (LightGBM, XGBoost, scikit-learn forests and boosting): ``TreeExplainer`` on
  the preprocessed data;
- linear models (anything with ``coef_``): exact linear SHAP, coef * (x - mean), in numpy;
- anything else, or preprocessing whose outputs cannot be traced to input columns: Kernel
  SHAP over the whole model (``predict_proba`` or ``predict``) on at most 50 rows.

A SHAP value is additive, so an original column's value for one row is the sum of the values
of the encoded columns it became (the one-hot columns of ``color``); importance is the mean
absolute value of that sum. If SHAP fails, scikit-learn's permutation importance on the
original columns is used instead, and ``method`` says so and why.

    >>> importance, method = feature_importance(model, X, y, task="classification")
    >>> method
    'shap.TreeExplainer on 500 rows'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from shipyard.evaluate._inputs import as_model_input, split_pipeline
from shipyard.evaluate.metrics import MetricScorer

# Model-agnostic SHAP costs rows x background x coalitions model rows, in one model call per
# explained row; 50 x 25 ranks columns as well as 100 x 50 at a quarter of the cost (a
# 15-neighbour KNN pipeline with five columns: about 1 s on two cores).
AGNOSTIC_ROWS = 50
BACKGROUND_ROWS = 25
KERNEL_SAMPLES = 128


def feature_importance(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series | None,
    *,
    task: str,
    seed: int = 0,
    max_rows: int = 500,
) -> tuple[dict[str, float], str]:
    """``({column: importance}, method)``, largest first; ``X`` holds the model's columns."""
    if len(X) == 0:
        return {}, "not computed: no rows"
    if task == "clustering":
        return {}, "not computed: clustering models have no prediction score to attribute"
    # Rows by position, so y need not share X's index.
    rows = np.arange(len(X))
    if len(X) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), max_rows, replace=False))
    sample = X.iloc[rows]
    try:
        values, method = _shap(model, sample, task=task, seed=seed)
    except Exception as exc:  # any explainer failure: fall back, and say why
        reason = f"{type(exc).__name__}: {exc}".strip()[:200]
        if y is None:
            return {}, f"not computed: SHAP failed ({reason})"
        values, method = _permutation(model, sample, y.iloc[rows], task=task, seed=seed)
        method = f"{method} (SHAP failed: {reason})"
    ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    return {k: float(v) for k, v in ranked}, method


# -- SHAP ---------------------------------------------------------------------------------------


def _shap(
    model: Any, sample: pd.DataFrame, *, task: str, seed: int
) -> tuple[dict[str, float], str]:
    prep, final = split_pipeline(model)
    columns = [str(c) for c in sample.columns]
    origins: list[str] | None = columns
    data: Any = sample
    if prep is not None:
        origins = origin_columns(prep, columns)
        if origins is not None:
            data = _dense(prep.transform(sample))
    if origins is not None and hasattr(final, "coef_") and hasattr(final, "intercept_"):
        linear = _linear_shap(final, data)
        return _by_origin(linear, origins), f"linear SHAP, coef * (x - mean) on {len(sample)} rows"
    shap = _import_shap()
    explainer = _model_explainer(shap, final, data) if origins is not None else None
    if explainer is None or origins is None:
        return _agnostic(shap, model, sample, task=task, seed=seed)
    values = _by_origin(np.asarray(explainer(data).values), origins)
    return values, f"shap.{type(explainer).__name__} on {len(sample)} rows"


def _linear_shap(final: Any, data: Any) -> np.ndarray:
    """Exact SHAP values of a linear model with independent features: coef * (x - E[x]).

    What shap's LinearExplainer computes, without importing shap (0.2-0.3 s per process);
    the background mean is the explained rows' own mean.
    """
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=float))
    X = np.asarray(data, dtype=float)
    if coef.shape[1] != X.shape[1]:
        raise ValueError(
            f"coef_ has {coef.shape[1]} columns but the model receives {X.shape[1]} inputs"
        )
    centred = X - X.mean(axis=0)
    values = centred[:, :, np.newaxis] * coef.T[np.newaxis, :, :]
    return values[:, :, 0] if coef.shape[0] == 1 else values


def _model_explainer(shap: ModuleType, final: Any, data: Any) -> Any | None:
    """A TreeExplainer for the final estimator, or None for other models."""
    # A wrapper that is not a known estimator but exposes its booster (the registry's
    # NativeLightGBM) is explained through the booster.
    for candidate in (final, getattr(final, "booster_", None)):
        if candidate is None:
            continue
        try:
            return shap.TreeExplainer(candidate)
        except ValueError:  # shap's InvalidModelError (private): not a tree model it knows
            continue
    return None


def _agnostic(
    shap: ModuleType, model: Any, sample: pd.DataFrame, *, task: str, seed: int
) -> tuple[dict[str, float], str]:
    """Kernel SHAP over the whole model, on the original columns.

    Not shap's PermutationExplainer: its masking kernels are compiled by numba on first use,
    which costs about ten seconds in every new process; KernelExplainer does not need them.
    """
    predict = _output_function(model, task)
    codec = _Codec(sample)
    rows = sample.sample(n=min(len(sample), AGNOSTIC_ROWS), random_state=seed)
    background = sample.sample(n=min(len(sample), BACKGROUND_ROWS), random_state=seed + 1)

    def output(codes: np.ndarray) -> np.ndarray:
        return np.asarray(predict(as_model_input(model, codec.decode(codes))), dtype=float)

    width = len(sample.columns)
    explainer = shap.KernelExplainer(output, codec.encode(background), link="identity")
    # Every coalition when there are few columns (2^width - 2 of them), else a sample.
    values = explainer.shap_values(
        codec.encode(rows), nsamples=2 * width + KERNEL_SAMPLES, l1_reg=False, silent=True
    )
    method = f"shap.KernelExplainer over the whole model on {len(rows)} rows"
    return _by_origin(np.asarray(values), [str(c) for c in sample.columns]), method


def _output_function(model: Any, task: str) -> Callable[[Any], Any]:
    if task == "classification" and hasattr(model, "predict_proba"):
        return model.predict_proba
    if task == "regression":
        return model.predict
    raise TypeError(f"no numeric output to explain for a {task} model without predict_proba")


class _Codec:
    """Any DataFrame ⇄ a float matrix, so SHAP's maskers can mix rows of non-numeric columns."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.columns = list(frame.columns)
        self.dtypes = frame.dtypes
        self.uniques: dict[Any, pd.Index] = {}
        for column in self.columns:
            if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
                frame[column]
            ):
                self.uniques[column] = pd.Index(frame[column].dropna().unique())

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for i, column in enumerate(self.columns):
            values = frame[column]
            if column in self.uniques:
                out[:, i] = self.uniques[column].get_indexer(values)
            else:
                out[:, i] = values.to_numpy(dtype=float, na_value=np.nan)
        return out

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        data: dict[Any, Any] = {}
        for i, column in enumerate(self.columns):
            if column in self.uniques:
                index = codes[:, i].astype(int)
                values = self.uniques[column].take(index, allow_fill=True, fill_value=None)
                data[column] = pd.Series(values, dtype=self.dtypes[column])
            else:
                data[column] = pd.Series(codes[:, i]).astype(self.dtypes[column])
        return pd.DataFrame(data, columns=self.columns)


def _by_origin(values: np.ndarray, origins: Sequence[str]) -> dict[str, float]:
    """Mean |SHAP| per original column: per row, sum the columns it became, then average."""
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    if values.shape[1] != len(origins):
        raise ValueError(f"SHAP returned {values.shape[1]} columns for {len(origins)} model inputs")
    owner = np.asarray(origins, dtype=object)
    names = list(dict.fromkeys(origins))
    return {name: float(np.abs(values[:, owner == name, :].sum(axis=1)).mean()) for name in names}


# -- tracing encoded columns back to the input columns -------------------------------------------


def origin_columns(prep: Any, columns: Sequence[str]) -> list[str] | None:
    """For each column ``prep`` outputs, the input column it came from; None if unknown.

    Works through a ColumnTransformer (each transformer's ``get_feature_names_out``: one-to-one
    transformers keep names, encoders prefix them with the input column) followed by steps that
    keep or select names (scalers, selectors).
    """
    try:
        out_names = [str(n) for n in prep.get_feature_names_out()]
    except Exception:  # no names: cannot trace
        return None
    known: dict[str, str] = {c: c for c in columns}
    for ct in _column_transformers(prep):
        known.update(_column_transformer_origins(ct))
    origins = [known.get(name) or _by_prefix(name, columns) for name in out_names]
    if any(o is None for o in origins):
        return None
    return [o for o in origins if o is not None]


def _column_transformers(prep: Any) -> list[Any]:
    from sklearn.compose import ColumnTransformer

    steps = [s for _, s in getattr(prep, "steps", [])] or [prep]
    return [s for s in steps if isinstance(s, ColumnTransformer)]


def _column_transformer_origins(ct: Any) -> dict[str, str]:
    """Output name → input column, for every transformer of a fitted ColumnTransformer."""
    inputs = [str(c) for c in getattr(ct, "feature_names_in_", [])]
    try:
        all_out = [str(n) for n in ct.get_feature_names_out()]
    except Exception:
        return {}
    found: dict[str, str] = {}
    for name, transformer, cols in ct.transformers_:
        if transformer == "drop" or name not in ct.output_indices_:
            continue
        block = all_out[ct.output_indices_[name]]
        cols_in = _column_names(cols, inputs)
        inner = cols_in if transformer == "passthrough" else _names_out(transformer, cols_in)
        if inner is None or len(inner) != len(block):
            continue
        for out_name, inner_name in zip(block, inner, strict=True):
            origin = _inner_origin(inner_name, inner, cols_in)
            if origin is not None:
                found[out_name] = origin
    return found


def _names_out(transformer: Any, cols_in: list[str]) -> list[str] | None:
    try:
        return [str(n) for n in transformer.get_feature_names_out(cols_in)]
    except Exception:  # a transformer without output names: its columns stay untraced
        return None


def _inner_origin(name: str, inner: list[str], cols_in: list[str]) -> str | None:
    if name in cols_in:
        return name
    if len(cols_in) == 1:
        return cols_in[0]
    return _by_prefix(name, cols_in)


def _by_prefix(name: str, columns: Sequence[str]) -> str | None:
    """``color_red`` → ``color`` (the longest input column that prefixes the name + '_')."""
    matches = [c for c in columns if name.startswith(f"{c}_")]
    return max(matches, key=len) if matches else None


def _column_names(cols: Any, inputs: list[str]) -> list[str]:
    if isinstance(cols, str):
        return [cols]
    if isinstance(cols, slice):
        if isinstance(cols.start, str) or isinstance(cols.stop, str):
            lo = inputs.index(cols.start) if cols.start is not None else 0
            hi = inputs.index(cols.stop) + 1 if cols.stop is not None else len(inputs)
            return inputs[lo:hi]
        return inputs[cols]
    items = list(np.asarray(cols).tolist()) if not isinstance(cols, list) else list(cols)
    if items and all(isinstance(c, bool) for c in items):
        return [c for c, keep in zip(inputs, items, strict=True) if keep]
    if items and all(isinstance(c, int) for c in items):
        return [inputs[c] for c in items]
    return [str(c) for c in items]


def _dense(data: Any) -> Any:
    """A scipy sparse matrix (one-hot output) as a dense array; anything else unchanged."""
    return data.toarray() if hasattr(data, "toarray") else data


# -- permutation fallback -----------------------------------------------------------------------


def _permutation(
    model: Any, X: pd.DataFrame, y: pd.Series, *, task: str, seed: int
) -> tuple[dict[str, float], str]:
    metric = "accuracy" if task == "classification" else "r2"
    result = permutation_importance(
        model,
        as_model_input(model, X),
        y.to_numpy(),
        scoring=MetricScorer(task, metric),
        n_repeats=5,
        random_state=seed,
    )
    values = dict(zip([str(c) for c in X.columns], result.importances_mean.tolist(), strict=True))
    return values, f"permutation importance ({metric} drop, 5 repeats on {len(X)} rows)"


def _import_shap() -> ModuleType:
    # shap 0.51 calls colormap methods (set_bad, set_over, ...) that matplotlib 3.11 marks as
    # pending deprecation, at import time; nothing we can fix from here.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The set_\w+ function", category=PendingDeprecationWarning
        )
        import shap
    return shap
