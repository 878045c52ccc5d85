"""The model card: what a model is for, what it was trained and tested on, how well it does,
where it does worst, which gates it passed, and what it should not be trusted with.

The card is built once as sections of paragraphs, lists and tables, then rendered to Markdown
and to HTML, so the two never disagree. Every user-provided string is escaped in both.

    >>> markdown, html = model_card(name="credit-risk", version_ref="credit-risk@3",
    ...     task="classification", description="Default risk of new loans.",
    ...     dataset_ref="loans@7", rows_train=8000, rows_test=2000, features=["income", "grade"],
    ...     target="default", metrics=report.metrics, report=report, gates=results)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from shipyard.core.html import fmt, page, table
from shipyard.core.records import GateResult
from shipyard.evaluate.report import EvaluationReport

MISSING_HEAVY = 0.2
MINORITY_SHARE = 0.2
FAIRNESS_GAP = 0.1
SMALL_TEST = 1000
CALIBRATION_GAP = 0.05
_SLICE_METRICS = {
    "classification": ("accuracy", "f1", "recall"),
    "regression": ("rmse", "mae"),
    "clustering": ("silhouette",),
}
_PRIMARY = {"classification": "f1", "regression": "rmse", "clustering": "silhouette"}


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class _Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[tuple[str, _Table]] = field(default_factory=list)


def model_card(
    *,
    name: str,
    version_ref: str,
    task: str,
    description: str | None,
    dataset_ref: str,
    rows_train: int,
    rows_test: int,
    features: Sequence[str],
    target: str | None,
    metrics: Mapping[str, float],
    report: EvaluationReport,
    gates: Sequence[GateResult],
    period: str | None = None,
    estimator: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """``(markdown, html)`` of the model card.

    ``metrics`` are the figures recorded with the model version (shown beside the held-out
    evaluation in ``report`` where they differ); ``period`` states how the test rows were
    chosen; ``estimator`` (import path) and ``params`` (its hyperparameters as trained) name
    the model.
    """
    sections = [
        _intended_use(task, description, target, features, report),
        _model(estimator, params),
        _data(dataset_ref, rows_train, rows_test, features, target, report, period),
        _metrics(metrics, report),
        _slices_and_fairness(report),
        _gates(gates),
        _limitations(
            task=task,
            dataset_ref=dataset_ref,
            rows_test=rows_test,
            features=features,
            report=report,
            gates=gates,
            period=period,
        ),
    ]
    title = f"Model card: {name} ({version_ref})"
    return _markdown(title, sections), _html(title, sections)


# -- sections -----------------------------------------------------------------------------------


def _intended_use(
    task: str,
    description: str | None,
    target: str | None,
    features: Sequence[str],
    report: EvaluationReport,
) -> _Section:
    what = {
        "classification": f"Predicts the class of {target!s}",
        "regression": f"Predicts the value of {target!s}",
        "clustering": "Assigns each row to a cluster",
    }.get(task, f"A {task} model")
    section = _Section("Intended use")
    if description:
        section.paragraphs.append(description)
    section.paragraphs.append(f"{what} from {len(features)} input columns.")
    section.bullets.append(
        "Use it on rows shaped like the training data (same columns, types and ranges): "
        "serving refuses missing columns and wrong types, and serves values outside the "
        "training ranges with a warning (refused under the endpoint's strict_ranges flag)."
    )
    if report.slices:
        section.bullets.append(
            "Sensitive attributes checked for disparities: " + ", ".join(report.slices) + "."
        )
    section.bullets.append(
        "Not validated for populations, periods or uses outside the data described below."
    )
    return section


def _model(estimator: str | None, params: Mapping[str, Any] | None) -> _Section:
    section = _Section("Model")
    if estimator is None:
        section.paragraphs.append("The estimator was not recorded.")
        return section
    rows: list[list[Any]] = [["estimator", estimator]]
    rows += [[name, _param(value)] for name, value in (params or {}).items()]
    section.tables.append(("", _Table(["setting", "value"], rows)))
    if params is not None:
        section.paragraphs.append(
            "Hyperparameters chosen by the search or set in shipyard.yaml; any other takes the "
            "estimator's default."
            if params
            else "Every hyperparameter takes the estimator's default."
        )
    return section


def _param(value: Any) -> Any:
    """A hyperparameter as written in a spec: 2000, not the table's "2,000"."""
    if value is None:
        return None
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _data(
    dataset_ref: str,
    rows_train: int,
    rows_test: int,
    features: Sequence[str],
    target: str | None,
    report: EvaluationReport,
    period: str | None,
) -> _Section:
    section = _Section("Data")
    rows: list[list[Any]] = [["dataset", dataset_ref]]
    if target or report.task != "clustering":  # a clustering model has no target
        rows.append(["target", target or "—"])
    rows += [
        ["training rows", rows_train],
        ["held-out test rows", rows_test],
        ["features", ", ".join(features) or "—"],
    ]
    if period:
        rows.append(["split", period])
    if report.slices:
        rows.append(["sensitive columns", ", ".join(report.slices)])
    section.tables.append(("", _Table(["item", "value"], rows)))
    return section


def _metrics(metrics: Mapping[str, float], report: EvaluationReport) -> _Section:
    section = _Section("Metrics")
    names = list(dict.fromkeys([*metrics, *report.metrics]))
    section.paragraphs.append(f"Held-out evaluation on {report.rows:,} rows.")
    if all(metrics.get(m) == report.metrics.get(m) for m in names):
        # The usual case (the recorded metrics are the evaluation's): one column, not two equal.
        rows = [[m, report.metrics[m]] for m in names]
        section.tables.append(("", _Table(["metric", "held-out value"], rows)))
    else:
        rows = [[m, metrics.get(m), report.metrics.get(m)] for m in names]
        section.tables.append(("", _Table(["metric", "recorded", "held-out evaluation"], rows)))
    if report.importance:
        top = list(report.importance.items())[:10]
        section.tables.append(
            (
                f"Most important features ({report.importance_method})",
                _Table(["feature", "importance"], [[k, v] for k, v in top]),
            )
        )
    return section


def _slices_and_fairness(report: EvaluationReport) -> _Section:
    section = _Section("Slices and fairness")
    if not report.slices:
        section.paragraphs.append("No sensitive columns were declared, so no slices were checked.")
        return section
    names = _SLICE_METRICS.get(report.task, ())
    for column, slice_rows in report.slices.items():
        rows = [[r.value, r.rows, *(r.metrics.get(m) for m in names)] for r in slice_rows]
        section.tables.append((column, _Table([column, "rows", *names], rows)))
    if report.fairness:
        rows = [
            [c, f.demographic_parity_difference, f.equalized_odds_difference]
            for c, f in report.fairness.items()
        ]
        section.tables.append(
            (
                "Fairness (0 is parity; the largest gap between any two groups)",
                _Table(
                    ["column", "demographic parity difference", "equalized odds difference"], rows
                ),
            )
        )
    return section


def _gates(gates: Sequence[GateResult]) -> _Section:
    section = _Section("Gates")
    if not gates:
        section.paragraphs.append("No gates were declared.")
        return section
    failed = sum(not g.passed for g in gates)
    section.paragraphs.append(
        "All gates passed." if not failed else f"{failed} of {len(gates)} gates failed."
    )
    rows = [[g.gate, "pass" if g.passed else "FAIL", g.detail] for g in gates]
    section.tables.append(("", _Table(["gate", "result", "detail"], rows)))
    return section


def _limitations(
    *,
    task: str,
    dataset_ref: str,
    rows_test: int,
    features: Sequence[str],
    report: EvaluationReport,
    gates: Sequence[GateResult],
    period: str | None,
) -> _Section:
    section = _Section("Limitations")
    found = section.bullets
    when = f" ({period})" if period else ""
    found.append(
        f"Evaluated on a held-out split of {rows_test:,} rows of {dataset_ref}{when}; how it "
        "does on later or differently distributed data is not measured here, so monitor "
        "drift and performance once it is deployed."
    )
    found += _worst_slice(task, report)
    for column, f in report.fairness.items():
        for measure, value in (
            ("demographic parity difference", f.demographic_parity_difference),
            ("equalized odds difference", f.equalized_odds_difference),
        ):
            if value > FAIRNESS_GAP:
                found.append(
                    f"The {measure} over {column} is {value:.3g} (above {FAIRNESS_GAP:g}): "
                    "outcomes differ between its groups."
                )
    found += _imbalance(report)
    heavy = [
        (c, report.missing[c]) for c in features if report.missing.get(c, 0.0) >= MISSING_HEAVY
    ]
    for column, share in heavy:
        found.append(
            f"{column} is missing in {share:.0%} of the test rows; predictions for those rows "
            "rest on imputed values."
        )
    if rows_test < SMALL_TEST:
        found.append(_small_sample(task, rows_test, report))
    cal = report.calibration
    if cal is not None and cal.expected_calibration_error > CALIBRATION_GAP:
        found.append(
            f"Predicted probabilities are miscalibrated (expected calibration error "
            f"{cal.expected_calibration_error:.3f}); do not read them as frequencies."
        )
    if "SHAP failed" in report.importance_method:
        found.append(f"Feature importance is approximate: {report.importance_method}.")
    failed = [g.gate for g in gates if not g.passed]
    if failed:
        found.append(f"Failed gate(s): {', '.join(failed)}; this version must not be deployed.")
    found += [f"Not computed: {n}." for n in report.notes]
    return section


def _worst_slice(task: str, report: EvaluationReport) -> list[str]:
    metric = _PRIMARY.get(task)
    if metric is None:
        return []
    worst = report.worst_slice(metric)
    overall = report.metrics.get(metric)
    if worst is None or overall is None:
        return []
    column, row = worst
    return [
        f"Worst slice: {column} = {row.value} ({row.rows:,} rows) with {metric} "
        f"{row.metrics[metric]:.3g}, against {overall:.3g} overall."
    ]


def _imbalance(report: EvaluationReport) -> list[str]:
    if not report.confusion_matrix or not report.labels:
        return []
    counts = [sum(row) for row in report.confusion_matrix]
    total = sum(counts)
    if not total:
        return []
    share, label = min(zip((c / total for c in counts), report.labels, strict=True))
    if share >= MINORITY_SHARE:
        return []
    return [
        f"Class imbalance: {label} is {share:.1%} of the test rows; accuracy says little "
        "about that class, so read its recall and precision."
    ]


def _small_sample(task: str, rows: int, report: EvaluationReport) -> str:
    accuracy = report.metrics.get("accuracy")
    if task == "classification" and accuracy is not None and rows:
        margin = 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / rows)
        return (
            f"The test set is small ({rows:,} rows): accuracy is uncertain by about "
            f"±{margin:.3f} (95%)."
        )
    return f"The test set is small ({rows:,} rows): metrics are uncertain."


# -- rendering ----------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what CommonMark reads as raw HTML
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def _md(value: Any) -> str:
    """Text for Markdown on one line: markup characters backslash-escaped, no raw HTML tags or
    entities (``<b>`` becomes ``&lt;b>``, while ``f1 <= 0.5`` stays as written)."""
    text = fmt(value) if not isinstance(value, str) else value
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    text = _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", text))
    return "\\" + text if text.startswith(">") else text  # a leading '>' starts a quote


def _markdown(title: str, sections: list[_Section]) -> str:
    lines = [f"# {_md(title)}", ""]
    for section in sections:
        lines += [f"## {_md(section.title)}", ""]
        for paragraph in section.paragraphs:
            lines += [_md(paragraph), ""]
        if section.bullets:
            lines += [f"- {_md(b)}" for b in section.bullets] + [""]
        for caption, tab in section.tables:
            if caption:
                lines += [f"**{_md(caption)}**", ""]
            lines.append("| " + " | ".join(_md(h) for h in tab.headers) + " |")
            lines.append("|" + "|".join("---" for _ in tab.headers) + "|")
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in tab.rows]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _html(title: str, sections: list[_Section]) -> str:
    body = [f"<h1>{escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{escape(section.title)}</h2>")
        body += [f"<p>{escape(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            body.append(
                "<ul>" + "".join(f"<li>{escape(b)}</li>" for b in section.bullets) + "</ul>"
            )
        for caption, tab in section.tables:
            if caption:
                body.append(f"<h3>{escape(caption)}</h3>")
            body.append(table(tab.headers, tab.rows))
    return page(title, body)
