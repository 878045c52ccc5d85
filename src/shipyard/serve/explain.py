"""Per-prediction explanations: each row's SHAP values, on the request's own columns.

    >>> explainer = Explainer(predictor)    # NotSupported when this model cannot be explained
    >>> result = explainer(batch, top=5)
    >>> result.rows[0]
    [{'feature': 'score', 'value': 512.0, 'contribution': 0.91}, ...]
    >>> result.base_value, result.output
    (-1.23, "log-odds of class 'yes' (LightGBM TreeSHAP, pred_contrib)")

Only a compiled predictor (`fastpath`) is explained, by its final estimator on the compiled
matrix:

    LightGBM (NativeLightGBM)    `booster.predict(X, pred_contrib=True)`: exact TreeSHAP, native
    linear (`coef_`)             coef * (x - reference), exact for a linear model, in NumPy
    other trees (scikit-learn)   `shap.TreeExplainer` (shap imported on first use, the explainer
                                 built once per model: the first explained request pays ~2 s)
    anything else                NotSupported (HTTP 501), naming the model's flavor

The SHAP values of encoded columns are summed onto the request column they came from
(`Layout.origins`): the one-hot columns of `grade` become one `grade`. A row's contributions
over all its columns plus `base_value` add up to the explained output, on the model's raw scale:
the positive class (`classes[1]`) of a binary classifier, each row's predicted class of a
multiclass one, the prediction of a regressor. The scale is log-odds for LightGBM, scikit-learn
gradient boosting and logistic regression, probability for forests (`output` says which).

A linear model's contributions are measured from one fixed row, `Layout.reference`: numbers at
their training mean, each category block spread evenly (training frequencies are not stored).
A baseline taken from the request's own rows would make a row's explanation depend on the rows
sent with it. `base_value` is then the model's output at that reference row.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.errors import Invalid, NotSupported
from shipyard.registry import NativeLightGBM
from shipyard.serve.fastpath import Layout, Predictor
from shipyard.serve.inputs import Batch

TOP = 5
"""Contributions listed per row unless asked otherwise."""

# contributions (rows x encoded columns) and base values (rows) of the explained output
_Method = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class Explanations:
    """SHAP values of a batch's rows on the request's columns.

    `contributions[i, j]` is row i's value for `features[j]`; `base[i]` is the output the
    contributions start from, so `contributions[i].sum() + base[i]` is row i's explained output
    (`output` says which). `rows` lists each row's `top` largest contributions by magnitude as
    `{"feature", "value", "contribution"}`, `value` being the row's input (None if missing).
    """

    features: tuple[str, ...]
    contributions: np.ndarray
    base: np.ndarray
    output: str
    rows: list[list[dict[str, Any]]]

    @property
    def base_value(self) -> float | list[float]:
        """One number when every row starts from the same value, else one per row (a multiclass
        model explains each row's predicted class, each with its own base)."""
        base = self.base
        if base.size and np.allclose(base, base[0], rtol=0.0, atol=1e-12):
            return float(base[0])
        return [float(b) for b in base.tolist()]


class Explainer:
    """Explains batches for one compiled predictor; build it once per model and reuse it.

    Raises NotSupported, naming the model's flavor, for a predictor that was not compiled or
    whose final estimator is neither LightGBM, linear nor a tree ensemble.
    """

    __slots__ = ("_features", "_method", "_sum", "_transform", "output")

    def __init__(self, predictor: Predictor) -> None:
        final, layout = predictor.estimator, predictor.layout
        if not predictor.fast or final is None or layout is None:
            raise NotSupported(
                f"per-row explanations need a pipeline compiled for fast serving, and this "
                f"{predictor.flavor} model was {predictor.reason}. Models that "
                "`shipyard train` builds (one ColumnTransformer and a LightGBM, linear or "
                "tree-ensemble estimator) can be explained; this model's global feature "
                "importance is in its evaluation report (`shipyard models show`)."
            )
        self._method, self.output = _method(final, predictor, layout)
        self._features = tuple(dict.fromkeys(layout.origins))
        owner = {name: j for j, name in enumerate(self._features)}
        self._sum = np.zeros((len(layout.origins), len(self._features)))
        self._sum[np.arange(len(layout.origins)), [owner[o] for o in layout.origins]] = 1.0
        self._transform = predictor.transform

    def __call__(self, batch: Batch, *, top: int = TOP) -> Explanations:
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise Invalid(f"top must be a positive whole number of features, not {top!r}.")
        encoded, base = self._method(self._transform(batch))
        contributions = encoded @ self._sum
        return Explanations(
            self._features,
            contributions,
            base,
            self.output,
            _top(self._features, contributions, batch, top),
        )


def explain(predictor: Predictor, batch: Batch, *, top: int = TOP) -> Explanations:
    """Explain `batch` once; build an `Explainer` to explain many (it keeps shap's state).

    >>> explain(predictor, to_columns(signature, {"rows": rows})).rows[0][0]
    {'feature': 'score', 'value': 512.0, 'contribution': 0.91}
    """
    return Explainer(predictor)(batch, top=top)


def _top(
    features: tuple[str, ...], contributions: np.ndarray, batch: Batch, top: int
) -> list[list[dict[str, Any]]]:
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
    values = [_values(batch.columns[name]) for name in features]
    picked = np.take_along_axis(contributions, order, axis=1).tolist()
    return [
        [
            {"feature": features[j], "value": values[j][i], "contribution": c}
            for j, c in zip(columns, row, strict=True)
        ]
        for i, (columns, row) in enumerate(zip(order.tolist(), picked, strict=True))
    ]


def _values(column: np.ndarray) -> list[Any]:
    values: list[Any] = column.tolist()
    if column.dtype.kind == "f":
        return [None if v != v else v for v in values]  # NaN: a missing value
    return values


# -- the methods --------------------------------------------------------------------------------


def _method(final: Any, predictor: Predictor, layout: Layout) -> tuple[_Method, str]:
    classes = predictor.classes
    width = len(layout.origins)
    if isinstance(final, NativeLightGBM):
        return _lightgbm(final, classes, predictor.threads, width)
    if hasattr(final, "coef_") and hasattr(final, "intercept_"):
        return _linear(final, classes, layout, predictor.flavor)
    if any(hasattr(final, a) for a in ("estimators_", "tree_", "_predictors")):
        return _Tree(final, classes, predictor.flavor), _tree_output(final, classes)
    raise NotSupported(
        f"per-row explanations are not available for a {predictor.flavor} model whose final "
        f"estimator is a {type(final).__name__}: this server explains LightGBM, linear models "
        "(coef_) and scikit-learn tree ensembles. Its global feature importance is in its "
        "evaluation report (`shipyard models show`)."
    )


def _which(classes: list[str] | None, what: str) -> str:
    if classes is None:
        return what
    if len(classes) == 2:
        return f"{what} of class {classes[1]!r}"
    return f"{what} of each row's predicted class"


def _lightgbm(
    model: NativeLightGBM, classes: list[str] | None, threads: int | None, width: int
) -> tuple[_Method, str]:
    booster = model.booster_
    kwargs: dict[str, Any] = {"pred_contrib": True}
    if threads is not None:
        kwargs["num_threads"] = threads
    outputs = int(booster.num_model_per_iteration())

    def method(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(booster.predict(X, **kwargs)).reshape(len(X), outputs, width + 1)
        if outputs == 1:
            chosen = raw[:, 0, :]
        else:  # the class with the largest raw score is the predicted one
            chosen = raw[np.arange(len(X)), raw.sum(axis=2).argmax(axis=1), :]
        return chosen[:, :-1], chosen[:, -1]  # the last column is the bias (expected value)

    what = "log-odds" if classes is not None and outputs == 1 else "raw score"
    return method, f"{_which(classes, what)} (LightGBM TreeSHAP, pred_contrib)"


def _linear(
    final: Any, classes: list[str] | None, layout: Layout, flavor: str
) -> tuple[_Method, str]:
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(final.intercept_, dtype=np.float64), coef.shape[:1])
    reference = layout.reference
    if coef.shape[1] != len(reference) or (classes is None and coef.shape[0] != 1):
        raise NotSupported(
            f"per-row explanations are not available for this {flavor} model: its "
            f"{type(final).__name__} has coef_ of shape {coef.shape} for "
            f"{len(reference)} encoded columns (one output over every column is expected)."
        )
    base_all = coef @ reference + intercept

    def method(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if coef.shape[0] == 1:
            return (X - reference) * coef[0], np.full(len(X), base_all[0])
        chosen = (X @ coef.T + intercept).argmax(axis=1)
        return (X - reference) * coef[chosen], base_all[chosen]

    if classes is None:
        what = "prediction"
    else:
        what = "log-odds" if hasattr(final, "predict_proba") else "decision function"
    return method, f"{_which(classes, what)} (linear SHAP from the reference row)"


def _tree_output(final: Any, classes: list[str] | None) -> str:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    # shap explains boosting's raw score (log-odds for a classifier), a forest's probability.
    if classes is None:
        what = "prediction"
    elif isinstance(final, GradientBoostingClassifier | HistGradientBoostingClassifier):
        what = "log-odds"
    else:
        what = "probability"
    return f"{_which(classes, what)} (shap.TreeExplainer)"


class _Tree:
    """shap.TreeExplainer on the final estimator, imported and built on first use."""

    def __init__(self, final: Any, classes: list[str] | None, flavor: str) -> None:
        self.final = final
        self.classes = classes
        self.flavor = flavor
        self._explainer: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._explainer is None:
                shap = _import_shap()
                try:
                    self._explainer = shap.TreeExplainer(self.final)
                except ValueError as exc:  # shap's InvalidModelError: not a tree model it knows
                    raise NotSupported(
                        f"per-row explanations are not available for this {self.flavor} "
                        f"model: shap's TreeExplainer does not take its "
                        f"{type(self.final).__name__} ({exc})."
                    ) from None
            return self._explainer

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        explainer = self._get()
        values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=np.float64)
        expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
        n = len(X)
        if values.ndim == 2:
            return values, np.full(n, expected[0])
        if values.shape[2] == 2:  # one output per class of a binary classifier: the positive
            return values[:, :, 1], np.full(n, expected[1])
        chosen = (values.sum(axis=1) + expected).argmax(axis=1)
        return values[np.arange(n), :, chosen], expected[chosen]


def _import_shap() -> Any:
    # shap 0.51 calls colormap methods (set_bad, set_over, ...) that matplotlib 3.11 marks as
    # pending deprecation, at import time; nothing we can fix from here.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The set_\w+ function", category=PendingDeprecationWarning
        )
        import shap
    return shap


__all__ = ["TOP", "Explainer", "Explanations", "explain"]
