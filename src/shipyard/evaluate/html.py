"""The evaluation report as one self-contained HTML page (inline CSS, plots as base64 PNG).

Every string that came from the user or the data (title, feature names, labels, slice values)
is escaped; plots are drawn with matplotlib's Agg canvas, without pyplot's global state.

    >>> page = report_html(report, title="credit-risk@3")
    >>> Path("report.html").write_text(page)
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shipyard.evaluate.report import EvaluationReport

TOP_FEATURES = 20
CONFUSION_TABLE = 20
LABEL_CHARS = 40

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:70rem;
color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.sub{color:#627d98;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f4f8}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
.plots figure{margin:0}
figcaption{font-size:.85rem;color:#627d98}
.pass{color:#1b7f3b;font-weight:600}.fail{color:#b42318;font-weight:600}
.note{color:#8d6e00}
"""


def report_html(report: EvaluationReport, *, title: str) -> str:
    """A complete HTML document for ``report``; ``title`` heads the page."""
    body: list[str] = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(report.task)} · {report.rows:,} rows evaluated</p>',
        "<h2>Metrics</h2>",
        table(["metric", "value"], [[k, v] for k, v in report.metrics.items()]),
    ]
    plots = [p for p in _plots(report) if p]
    if plots:
        body += ["<h2>Plots</h2>", '<div class="plots">', *plots, "</div>"]
    if report.confusion_matrix and report.labels and len(report.labels) <= CONFUSION_TABLE:
        rows = [
            [label, *counts]
            for label, counts in zip(report.labels, report.confusion_matrix, strict=True)
        ]
        body += [
            "<h2>Confusion matrix</h2>",
            '<p class="sub">rows: actual class; columns: predicted class</p>',
            table(["actual \\ predicted", *report.labels], rows),
        ]
    if report.residuals is not None:
        r = report.residuals
        rows = [["mean", r.mean], ["std", r.std], ["mae", r.mae], ["min", r.min], ["max", r.max]]
        rows += [[k, v] for k, v in r.quantiles.items()]
        body += ["<h2>Residuals (actual − predicted)</h2>", table(["statistic", "value"], rows)]
    if report.cluster_sizes:
        sizes = [[k, v] for k, v in report.cluster_sizes.items()]
        body += ["<h2>Clusters</h2>", table(["cluster", "rows"], sizes)]
    if report.importance:
        top = list(report.importance.items())[:TOP_FEATURES]
        body += [
            "<h2>Feature importance</h2>",
            f'<p class="sub">{escape(report.importance_method)}</p>',
            table(["feature", "importance"], [[k, v] for k, v in top]),
        ]
    body += _slices(report)
    if report.fairness:
        rows = [
            [column, f.demographic_parity_difference, f.equalized_odds_difference]
            for column, f in report.fairness.items()
        ]
        body += [
            "<h2>Fairness</h2>",
            table(
                ["sensitive column", "demographic parity difference", "equalized odds difference"],
                rows,
            ),
        ]
    if report.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
        body += ["<h2>Notes</h2>", f'<ul class="note">{items}</ul>']
    return page(title, body)


def page(title: str, body: Iterable[str]) -> str:
    """A standalone HTML document around already-escaped ``body`` parts."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table; every cell is escaped, numbers right-aligned and rounded."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(fmt(v))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def fmt(value: Any) -> str:
    """Numbers to four significant digits (integers in full); anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _slices(report: EvaluationReport) -> list[str]:
    out: list[str] = []
    for column, rows in report.slices.items():
        names = list(dict.fromkeys(m for r in rows for m in r.metrics))
        body = [[r.value, r.rows, *(r.metrics.get(m) for m in names)] for r in rows]
        out += [f"<h3>{escape(column)}</h3>", table([column, "rows", *names], body)]
    return ["<h2>Slices</h2>", *out] if out else []


# -- plots --------------------------------------------------------------------------------------


def _plots(report: EvaluationReport) -> list[str]:
    return [
        _confusion(report),
        _roc(report),
        _calibration(report),
        _residuals(report),
        _importance(report),
    ]


def _figure(width: float = 4.8, height: float = 3.8) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _embed(fig: Figure, caption: str) -> str:
    buffer = io.BytesIO()
    # Feature names and labels are user text: a missing glyph (CJK, emoji) makes matplotlib
    # warn and draw a box, which is the best a PNG can do.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def _text(value: str) -> str:
    """User text for a plot: shortened, and '$' kept literal (matplotlib reads $..$ as math)."""
    short = value if len(value) <= LABEL_CHARS else value[: LABEL_CHARS - 1] + "…"
    return short.replace("$", r"\$")


def _confusion(report: EvaluationReport) -> str:
    matrix, labels = report.confusion_matrix, report.labels
    if not matrix or not labels:
        return ""
    k = len(labels)
    size = min(3.0 + 0.4 * k, 9.0)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = [_text(label) for label in labels]
    ax.set_xticks(
        range(k), labels=ticks, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center"
    )
    ax.set_yticks(range(k), labels=ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if k <= 12:
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if count > peak / 2 else "black"
                ax.text(j, i, f"{count:,}", ha="center", va="center", color=color, fontsize=9)
    return _embed(fig, "Confusion matrix")


def _roc(report: EvaluationReport) -> str:
    if report.roc is None:
        return ""
    fig = _figure()
    ax = fig.add_subplot()
    label = f"AUC {report.roc.auc:.3f}" + (" (micro)" if report.roc.average == "micro" else "")
    ax.plot(report.roc.fpr, report.roc.tpr, color="#2366c4", label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    return _embed(fig, "ROC curve")


def _calibration(report: EvaluationReport) -> str:
    cal = report.calibration
    if cal is None:
        return ""
    points = [(p, t) for p, t in zip(cal.prob_pred, cal.prob_true, strict=True) if p is not None]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1, label="perfect")
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", color="#2366c4", label=f"model (Brier {cal.brier:.3f})")
    ax.set_xlabel(
        "mean predicted probability" if cal.kind == "positive class" else "top-class confidence"
    )
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="upper left")
    return _embed(fig, "Calibration")


def _residuals(report: EvaluationReport) -> str:
    r = report.residuals
    if r is None:
        return ""
    fig = _figure()
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(r.edges[:-1], r.edges[1:], strict=True)]
    ax.bar(r.edges[:-1], r.counts, width=widths, align="edge", color="#2366c4", edgecolor="white")
    ax.axvline(0, color="#b42318", linewidth=1)
    ax.set_xlabel("residual (actual − predicted)")
    ax.set_ylabel("rows")
    return _embed(fig, "Residuals")


def _importance(report: EvaluationReport) -> str:
    top = list(report.importance.items())[:TOP_FEATURES]
    if not top:
        return ""
    names = [_text(k) for k, _ in reversed(top)]
    values = [v for _, v in reversed(top)]
    fig = _figure(6.0, max(2.5, 0.3 * len(top) + 1))
    ax = fig.add_subplot()
    ax.barh(range(len(top)), values, color="#2366c4")
    ax.set_yticks(range(len(top)), labels=names)
    ax.set_xlabel("mean |SHAP|" if report.importance_method.startswith("shap") else "importance")
    return _embed(fig, "Feature importance")
