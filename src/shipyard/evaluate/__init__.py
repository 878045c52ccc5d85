"""Evaluate: metrics, slices, fairness, explanations, gates and model cards (DESIGN.md §3).

>>> from shipyard.evaluate import evaluate_model, check_gates, report_html, model_card
>>> report = evaluate_model(model, X_test, y_test, task="classification", sensitive=["sex"])
"""

from shipyard.evaluate.card import model_card
from shipyard.evaluate.gates import ParsedGate, check_gates, parse_gate, run_tests, validate_gates
from shipyard.evaluate.html import report_html
from shipyard.evaluate.importance import feature_importance
from shipyard.evaluate.metrics import (
    MetricScorer,
    check_metric,
    compute,
    greater_is_better,
    metric_names,
    positive_class,
    sklearn_scorer,
)
from shipyard.evaluate.report import (
    Calibration,
    EvaluationReport,
    GroupFairness,
    Residuals,
    RocCurve,
    SliceRow,
    evaluate_model,
)

__all__ = [
    "Calibration",
    "EvaluationReport",
    "GroupFairness",
    "MetricScorer",
    "ParsedGate",
    "Residuals",
    "RocCurve",
    "SliceRow",
    "check_gates",
    "check_metric",
    "compute",
    "evaluate_model",
    "feature_importance",
    "greater_is_better",
    "metric_names",
    "model_card",
    "parse_gate",
    "positive_class",
    "report_html",
    "run_tests",
    "sklearn_scorer",
    "validate_gates",
]
