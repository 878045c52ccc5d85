"""The metric catalogue: which metrics each task has, how to compute them, and which way is up.

Classification is binary when the model has two classes; the positive class is then the second
of the sorted classes (``1`` of ``[0, 1]``, ``"yes"`` of ``["no", "yes"]``). With more classes,
precision, recall and F1 are macro averages and ROC-AUC is one-vs-rest (macro).

    >>> compute("regression", [1.0, 2.0], [1.5, 2.0])["mae"]
    0.25
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from shipyard.core.errors import Invalid

Task = Literal["classification", "regression", "clustering"]

_CATALOGUE: dict[str, tuple[str, ...]] = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
    ),
    "regression": ("rmse", "mae", "r2", "mape"),
    "clustering": ("silhouette", "calinski_harabasz", "davies_bouldin"),
}
_LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape", "davies_bouldin"})
_NEEDS_SCORES = frozenset({"roc_auc", "log_loss"})
# silhouette is O(rows²) in time and memory; beyond this it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 5000


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics of a task, in catalogue order: ``metric_names("regression")[0] == "rmse"``."""
    _check_task(task)
    return _CATALOGUE[task]


def greater_is_better(name: str) -> bool:
    """Whether a larger value is better: ``greater_is_better("rmse") is False``."""
    if not any(name in names for names in _CATALOGUE.values()):
        every = sorted({n for names in _CATALOGUE.values() for n in names})
        raise Invalid(f"metric {name!r} does not exist; choose one of {', '.join(every)}.")
    return name not in _LOWER_IS_BETTER


def check_metric(task: str, name: str) -> str:
    """Return ``name`` if ``task`` has that metric, else raise `Invalid` listing the valid ones.

    >>> check_metric("classification", "f1")
    'f1'
    """
    if name not in metric_names(task):
        raise Invalid(
            f"metric {name!r} does not exist for {task}; "
            f"choose one of {', '.join(_CATALOGUE[task])}."
        )
    return name


def positive_class(labels: Sequence[Any]) -> Any:
    """The positive class of a binary problem: the second of the sorted labels."""
    return sorted_labels(labels)[-1]


def compute(
    task: str,
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    X: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    only: str | None = None,
) -> dict[str, float]:
    """Every metric of ``task`` that the inputs allow (or just ``only``), as ``{name: value}``.

    ``y_score`` holds class probabilities (``predict_proba``), one column per label in
    ``labels`` order (default: the sorted labels of ``y_true`` and ``y_pred``); without it,
    roc_auc and log_loss are left out. A metric that is undefined on the data (ROC-AUC when
    ``y_true`` has one class, R² of one row) is left out too. Clustering needs ``X``, numeric.

    >>> compute("classification", [0, 1, 1], [0, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    {'accuracy': 0.666..., 'balanced_accuracy': 0.75, ..., 'roc_auc': 1.0, 'log_loss': 0.414...}
    """
    _check_task(task)
    if task == "clustering":
        return _clustering(y_pred, X, only=only)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape[0] != y_pred.shape[0]:
        raise Invalid(
            f"y_true has {y_true.shape[0]} rows but y_pred has {y_pred.shape[0]}; "
            "pass the predictions for exactly the labelled rows."
        )
    if y_true.shape[0] == 0:
        raise Invalid("no rows to evaluate: y_true is empty.")
    if task == "regression":
        return _regression(y_true.astype(float), y_pred.astype(float))
    return _classification(y_true, y_pred, y_score, labels, only)


def _classification(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: Any,
    labels: Sequence[Any] | None,
    only: str | None = None,
) -> dict[str, float]:
    classes = list(labels) if labels is not None else sorted_labels(_unique(y_true, y_pred))
    # Integer codes: sklearn sorts labels many times over, and sorting strings is slow.
    truth, pred = encode(y_true, classes, what="y_true"), encode(y_pred, classes, what="y_pred")
    codes = list(range(len(classes)))
    if len(classes) <= 2:
        avg: dict[str, Any] = {"average": "binary", "pos_label": _positive_code(classes)}
    else:
        avg = {"average": "macro", "labels": codes}
    label_metrics: dict[str, Any] = {
        "accuracy": lambda: skm.accuracy_score(truth, pred),
        "balanced_accuracy": lambda: _balanced_accuracy(truth, pred),
        "precision": lambda: skm.precision_score(truth, pred, zero_division=0, **avg),
        "recall": lambda: skm.recall_score(truth, pred, zero_division=0, **avg),
        "f1": lambda: skm.f1_score(truth, pred, zero_division=0, **avg),
    }
    # `only`: one metric (a CV fold's score), computed exactly as in the full report.
    out = {k: f() for k, f in label_metrics.items() if only is None or k == only}
    if y_score is not None and len(classes) >= 2 and (only is None or only not in label_metrics):
        scores = _score_matrix(y_score, classes)
        out.update(_probability_metrics(truth, scores, classes))
    return {k: float(v) for k, v in out.items()}


def encode(values: Any, classes: Sequence[Any], *, what: str = "labels") -> np.ndarray:
    """Each value's position in ``classes``; `Invalid` if a value is not one of them."""
    codes = pd.Index(list(classes)).get_indexer(np.asarray(values))
    if (codes < 0).any():
        unknown = sorted({str(v) for v in np.asarray(values)[codes < 0]})[:5]
        raise Invalid(
            f"{what} holds label(s) {', '.join(map(repr, unknown))} that are not among the "
            f"classes {', '.join(map(repr, map(str, classes)))}; pass labels= with every class."
        )
    return codes


def _unique(*arrays: np.ndarray) -> list[Any]:
    return list(pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays])))


def _positive_code(classes: Sequence[Any]) -> int:
    return list(classes).index(positive_class(classes))


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # sklearn warns when a predicted class never occurs in y_true (common in small slices);
    # the definition is then the mean recall over the classes that do occur, which we compute.
    classes = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in classes]
    return float(np.mean(recalls))


def _probability_metrics(
    truth: np.ndarray, scores: np.ndarray, classes: list[Any]
) -> dict[str, float]:
    """ROC-AUC and log loss from codes (positions in ``classes``) and one column per class."""
    out: dict[str, float] = {}
    codes = list(range(len(classes)))
    present = len(np.unique(truth))
    if len(classes) <= 2:
        if present == 2:
            pos = _positive_code(classes)
            out["roc_auc"] = skm.roc_auc_score(truth == pos, scores[:, pos])
    elif present == len(classes):
        out["roc_auc"] = skm.roc_auc_score(
            truth, scores, multi_class="ovr", average="macro", labels=codes
        )
    out["log_loss"] = skm.log_loss(truth, scores, labels=codes)
    return out


def _score_matrix(y_score: Any, classes: list[Any]) -> np.ndarray:
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim == 1 and len(classes) == 2:  # the positive class's probability
        pos = _positive_code(classes)
        scores = np.column_stack([1.0 - scores, scores] if pos == 1 else [scores, 1.0 - scores])
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise Invalid(
            f"y_score has shape {scores.shape} but there are {len(classes)} classes; pass "
            "predict_proba output with one column per class, in the order of `labels`."
        )
    return scores


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    out = {
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "mape": skm.mean_absolute_percentage_error(y_true, y_pred),
    }
    if y_true.shape[0] >= 2:
        out["r2"] = skm.r2_score(y_true, y_pred)
    return {k: float(out[k]) for k in _CATALOGUE["regression"] if k in out}


def _clustering(labels: Any, X: Any, *, only: str | None = None, seed: int = 0) -> dict[str, float]:
    """Internal measures of how well the rows are grouped (no true labels needed): silhouette
    (-1 to 1, higher is better), Calinski-Harabasz (higher is better) and Davies-Bouldin (0 is
    best). All three need 2 to rows - 1 clusters; with fewer or more they are left out."""
    if X is None:
        raise Invalid("clustering metrics need the data the clusters were formed on: pass X.")
    labels = np.asarray(labels)
    X = np.asarray(X, dtype=float)
    n_clusters = len(np.unique(labels))
    if not 2 <= n_clusters <= labels.shape[0] - 1:
        return {}
    sample = SILHOUETTE_SAMPLE if labels.shape[0] > SILHOUETTE_SAMPLE else None
    measures: dict[str, Callable[[], float]] = {
        "silhouette": lambda: skm.silhouette_score(
            X, labels, sample_size=sample, random_state=seed
        ),
        "calinski_harabasz": lambda: skm.calinski_harabasz_score(X, labels),
        "davies_bouldin": lambda: skm.davies_bouldin_score(X, labels),
    }
    return {k: float(f()) for k, f in measures.items() if only is None or k == only}


def sorted_labels(values: Any) -> list[Any]:
    items = list(np.asarray(values).tolist()) if not isinstance(values, list) else list(values)
    try:
        return sorted(items)
    except TypeError:  # mixed types cannot be ordered; keep the given order
        return items


def _check_task(task: str) -> None:
    if task not in _CATALOGUE:
        raise Invalid(f"task {task!r} is not known; choose one of {', '.join(_CATALOGUE)}.")


# -- cross-validation ---------------------------------------------------------------------------


class MetricScorer:
    """A scikit-learn scorer for one catalogue metric: ``scorer(estimator, X, y) -> float``.

    Returns the metric, negated when lower is better (scikit-learn maximises scores), so
    ``-cross_val_score(model, X, y, scoring=sklearn_scorer("regression", "rmse")).mean()`` is
    the mean RMSE.
    """

    def __init__(self, task: str, name: str) -> None:
        self.task = task
        self.name = check_metric(task, name)
        self.sign = 1.0 if greater_is_better(name) else -1.0

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        prediction = estimator.predict(X)
        scores = None
        labels = None
        if self.task == "classification":
            labels = list(getattr(estimator, "classes_", [])) or None
            if self.name in _NEEDS_SCORES:
                if not hasattr(estimator, "predict_proba"):
                    raise Invalid(
                        f"metric {self.name!r} needs class probabilities but "
                        f"{type(estimator).__name__} has no predict_proba; "
                        "choose accuracy, balanced_accuracy, precision, recall or f1."
                    )
                scores = estimator.predict_proba(X)
        elif self.task == "clustering":
            X = _model_space(estimator, X)
        values = compute(self.task, y, prediction, scores, X, labels=labels, only=self.name)
        if self.name not in values:
            raise Invalid(
                f"metric {self.name!r} is undefined on this fold "
                f"({len(prediction)} rows); use more rows per fold or another metric."
            )
        return self.sign * values[self.name]

    def __repr__(self) -> str:
        return f"MetricScorer({self.task!r}, {self.name!r})"


def sklearn_scorer(task: str, name: str) -> Callable[..., float]:
    """A ``scoring=`` value for ``cross_val_score`` that computes the catalogue metric.

    >>> cross_val_score(model, X, y, scoring=sklearn_scorer("classification", "f1"), cv=5)
    """
    return MetricScorer(task, name)


def _model_space(estimator: Any, X: Any) -> Any:
    """X as the final step of a pipeline sees it (clusters live in that space)."""
    steps = getattr(estimator, "steps", None)
    if steps and len(steps) > 1:
        return estimator[:-1].transform(X)
    return X
