"""The evaluation report of one model on held-out data, and the function that makes it.

>>> report = evaluate_model(model, X_test, y_test, task="classification", sensitive=["sex"])
>>> report.metrics["f1"], report.fairness["sex"].demographic_parity_difference
(0.83, 0.04)
>>> report.model_dump_json()  # plain JSON, stored next to the model version
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn import metrics as skm

from shipyard.core.errors import Invalid
from shipyard.core.records import Record
from shipyard.evaluate._inputs import as_model_input, model_columns, split_pipeline
from shipyard.evaluate.importance import feature_importance
from shipyard.evaluate.metrics import (
    compute,
    encode,
    greater_is_better,
    metric_names,
    sorted_labels,
)
from shipyard.evaluate.slices import fairness, groups, slice_rows

ROC_POINTS = 200
CALIBRATION_BINS = 10


class RocCurve(Record):
    """ROC curve of the positive class (binary) or micro-averaged one-vs-rest (multiclass)."""

    fpr: list[float]
    tpr: list[float]
    auc: float
    average: Literal["binary", "micro"] = "binary"


class Calibration(Record):
    """Reliability diagram over ten equal-width bins of predicted probability.

    Binary: the positive class's probability. Multiclass: the top class's probability
    (confidence) against the share of those predictions that were right.
    """

    prob_pred: list[float | None] = Field(description="Mean predicted probability per bin.")
    prob_true: list[float | None] = Field(description="Observed frequency per bin.")
    counts: list[int]
    brier: float
    kind: Literal["positive class", "confidence"] = "positive class"

    @property
    def expected_calibration_error(self) -> float:
        """Row-weighted mean gap between predicted and observed frequency."""
        total = sum(self.counts)
        return sum(
            n * abs(p - t)
            for n, p, t in zip(self.counts, self.prob_pred, self.prob_true, strict=True)
            if n and p is not None and t is not None
        ) / max(total, 1)


class Residuals(Record):
    """Summary of ``y_true - y_pred``, with a histogram for plotting."""

    mean: float
    std: float
    mae: float
    min: float
    max: float
    quantiles: dict[str, float]
    edges: list[float]
    counts: list[int]


class SliceRow(Record):
    value: str
    rows: int
    metrics: dict[str, float]


class GroupFairness(Record):
    demographic_parity_difference: float
    equalized_odds_difference: float


class EvaluationReport(Record):
    task: Literal["classification", "regression", "clustering"]
    rows: int
    metrics: dict[str, float]
    labels: list[str] | None = Field(
        default=None, description="Class labels (rows and columns of the confusion matrix)."
    )
    confusion_matrix: list[list[int]] | None = None
    roc: RocCurve | None = None
    calibration: Calibration | None = None
    residuals: Residuals | None = None
    cluster_sizes: dict[str, int] | None = None
    slices: dict[str, list[SliceRow]] = Field(default_factory=dict)
    fairness: dict[str, GroupFairness] = Field(default_factory=dict)
    importance: dict[str, float] = Field(
        default_factory=dict, description="Original column → mean |SHAP| (or the fallback)."
    )
    importance_method: str = "not computed"
    missing: dict[str, float] = Field(
        default_factory=dict, description="Share of missing values, for columns that have any."
    )
    notes: list[str] = Field(default_factory=list, description="What could not be computed.")

    def worst_slice(self, metric: str, column: str | None = None) -> tuple[str, SliceRow] | None:
        """``(column, slice)`` with the worst value of ``metric``, over one or all columns."""
        better_high = greater_is_better(metric)
        candidates = [
            (col, row)
            for col, rows in self.slices.items()
            if column is None or col == column
            for row in rows
            if metric in row.metrics
        ]
        if not candidates:
            return None
        pick = min if better_high else max
        return pick(candidates, key=lambda c: c[1].metrics[metric])


def evaluate_model(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series | None,
    *,
    task: str,
    sensitive: Sequence[str] = (),
    explain: bool = True,
    seed: int = 0,
    max_explain_rows: int = 500,
) -> EvaluationReport:
    """Evaluate a fitted model on held-out rows.

    ``X`` may hold columns the model does not use (sensitive attributes kept out of training,
    the id): they are dropped before predicting, and each name in ``sensitive`` gets slice
    metrics and, for a binary task, fairness measures.

    >>> evaluate_model(pipe, X_test, y_test, task="classification", sensitive=["sex", "age"])
    EvaluationReport(task='classification', rows=2000, metrics={'accuracy': 0.91, ...}, ...)
    """
    if task not in ("classification", "regression", "clustering"):
        raise Invalid(
            f"task {task!r} is not known; choose classification, regression or clustering."
        )
    if not isinstance(X, pd.DataFrame):
        raise Invalid(f"X must be a pandas DataFrame, got {type(X).__name__}.")
    sensitive = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    absent = [c for c in sensitive if c not in X.columns]
    if absent:
        raise Invalid(
            f"sensitive column(s) {', '.join(map(repr, absent))} are not in the data; "
            f"pass them in X (columns: {', '.join(map(str, X.columns))})."
        )
    if task != "clustering" and y is None:
        raise Invalid(f"{task} needs the true target values: pass y.")
    if y is not None and len(y) != len(X):
        raise Invalid(f"X has {len(X)} rows but y has {len(y)}; pass one label per row.")
    if y is not None and (missing := int(pd.isna(y).sum())):
        raise Invalid(
            f"y has {missing} missing value(s); evaluate on labelled rows only "
            "(drop the rows whose target is missing)."
        )
    if len(X) == 0:
        raise Invalid("no rows to evaluate: X is empty.")

    columns = model_columns(model, X, sensitive)
    features = X[columns]
    inputs = as_model_input(model, features)
    y_pred = np.asarray(model.predict(inputs))
    y_true = None if y is None else y.to_numpy()
    notes: list[str] = []
    parts: dict[str, Any] = {}

    truth: np.ndarray | None = y_true
    pred, scores, space, classes = y_pred, None, None, None
    if task == "classification":
        assert y_true is not None
        # Work on codes 0..K-1 in sorted label order, so the positive class is K-1 (binary)
        # and nothing downstream sorts strings.
        known = _labels(model, y_true, y_pred)
        labels = sorted_labels(known)
        truth, pred = encode(y_true, labels), encode(y_pred, labels)
        scores = _probabilities(model, inputs, known, labels, notes)
        classes = list(range(len(labels)))
        metrics = compute(task, truth, pred, scores, labels=classes)
        parts["labels"] = [str(v) for v in labels]
        parts.update(_classification_parts(truth, pred, scores, len(labels), notes))
    elif task == "regression":
        assert y_true is not None
        metrics = compute(task, y_true, y_pred)
        parts["residuals"] = _residuals(y_true.astype(float) - y_pred.astype(float))
    else:
        space = _numeric_space(model, inputs)
        metrics = compute(task, None, y_pred, X=space)
        values, counts = np.unique(y_pred, return_counts=True)
        parts["cluster_sizes"] = {str(v): int(n) for v, n in zip(values, counts, strict=True)}

    slices: dict[str, list[dict[str, Any]]] = {}
    fair: dict[str, dict[str, float]] = {}
    for column in sensitive:
        group = groups(X[column])
        slices[column] = slice_rows(task, group, truth, pred, scores, labels=classes, space=space)
        if classes is not None and len(classes) == 2:
            assert truth is not None
            fair[column] = fairness(truth, pred, group, positive=1)
    if sensitive and classes is not None and len(classes) != 2:
        notes.append("fairness measures are computed for binary classification only")

    importance: dict[str, float] = {}
    method = "not computed (explain=False)"
    if explain:
        importance, method = feature_importance(
            model, features, y, task=task, seed=seed, max_rows=max_explain_rows
        )

    missing = X.isna().mean()
    _note_missing_metrics(task, metrics, notes)
    return EvaluationReport.model_validate(
        {
            "task": task,
            "rows": len(X),
            "metrics": metrics,
            **parts,
            "slices": slices,
            "fairness": fair,
            "importance": importance,
            "importance_method": method,
            "missing": {str(k): float(v) for k, v in missing.items() if v > 0},
            "notes": notes,
        }
    )


def _labels(model: Any, y_true: np.ndarray, y_pred: np.ndarray) -> list[Any]:
    """The model's classes (``classes_``), or the labels seen in the data."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return sorted_labels(pd.unique(np.concatenate([y_true, y_pred]).astype(object)))
    known = list(np.asarray(classes).tolist())
    unknown = set(pd.unique(y_true.astype(object))) - set(known)
    if unknown:
        raise Invalid(
            f"the data has label(s) {sorted(map(str, unknown))} the model never saw "
            f"(it knows {[str(c) for c in known]}); evaluate on data with the same classes."
        )
    return known


def _probabilities(
    model: Any, inputs: Any, known: list[Any], labels: list[Any], notes: list[str]
) -> np.ndarray | None:
    """``predict_proba`` with its columns reordered from ``known`` to ``labels`` order."""
    if not hasattr(model, "predict_proba"):
        notes.append(
            "roc_auc, log_loss and calibration need predict_proba, which "
            f"{type(model).__name__} does not have"
        )
        return None
    scores = np.asarray(model.predict_proba(inputs), dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(known):
        notes.append(
            f"predict_proba returned shape {scores.shape} for {len(known)} classes; "
            "probability metrics skipped"
        )
        return None
    return scores[:, [known.index(v) for v in labels]]


def _classification_parts(
    truth: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray | None,
    k: int,
    notes: list[str],
) -> dict[str, Any]:
    codes = list(range(k))
    parts: dict[str, Any] = {
        "confusion_matrix": skm.confusion_matrix(truth, pred, labels=codes).tolist()
    }
    if scores is None:
        return parts
    if k == 2:
        positive = truth == 1
        if len(np.unique(positive)) == 2:
            parts["roc"] = _roc(positive, scores[:, 1], "binary")
        else:
            notes.append("the ROC curve needs both classes in the data")
        brier = skm.brier_score_loss(positive, scores[:, 1], pos_label=True)
        parts["calibration"] = _calibration(positive, scores[:, 1], brier, "positive class")
    elif k > 2:
        onehot = truth[:, None] == np.arange(k)[None, :]
        if onehot.any(axis=0).all():
            parts["roc"] = _roc(onehot.ravel(), scores.ravel(), "micro")
        correct = scores.argmax(axis=1) == truth
        brier = skm.brier_score_loss(truth, scores, labels=codes)
        parts["calibration"] = _calibration(correct, scores.max(axis=1), brier, "confidence")
    return parts


def _roc(truth: np.ndarray, score: np.ndarray, average: str) -> dict[str, Any]:
    fpr, tpr, _ = skm.roc_curve(truth, score)
    auc = skm.auc(fpr, tpr)
    if len(fpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(auc), "average": average}


def _calibration(truth: np.ndarray, prob: np.ndarray, brier: float, kind: str) -> dict[str, Any]:
    # Same bins as sklearn.calibration.calibration_curve(strategy="uniform"), but empty bins
    # are kept (as None) so every list has ten entries and counts line up.
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    index = np.searchsorted(edges[1:-1], prob)
    counts = np.bincount(index, minlength=CALIBRATION_BINS)
    sums = np.bincount(index, weights=prob, minlength=CALIBRATION_BINS)
    hits = np.bincount(index, weights=truth.astype(float), minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        pred, true = sums / counts, hits / counts
    return {
        "prob_pred": [float(p) if n else None for p, n in zip(pred, counts, strict=True)],
        "prob_true": [float(t) if n else None for t, n in zip(true, counts, strict=True)],
        "counts": counts.astype(int).tolist(),
        "brier": float(brier),
        "kind": kind,
    }


def _residuals(residuals: np.ndarray) -> dict[str, Any]:
    counts, edges = np.histogram(residuals, bins=20)
    q = np.quantile(residuals, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "mae": float(np.abs(residuals).mean()),
        "min": float(residuals.min()),
        "max": float(residuals.max()),
        "quantiles": dict(zip(["p5", "p25", "p50", "p75", "p95"], q.tolist(), strict=True)),
        "edges": edges.tolist(),
        "counts": counts.tolist(),
    }


def _numeric_space(model: Any, inputs: Any) -> Any:
    """The data as the clustering step sees it (after preprocessing), for silhouette."""
    prep, _ = split_pipeline(model)
    data = prep.transform(inputs) if prep is not None else inputs
    return data.toarray() if hasattr(data, "toarray") else np.asarray(data, dtype=float)


def _note_missing_metrics(task: str, metrics: dict[str, float], notes: list[str]) -> None:
    absent = [m for m in metric_names(task) if m not in metrics]
    if absent:
        notes.append(f"not computed on this data: {', '.join(absent)}")
