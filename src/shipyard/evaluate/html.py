"""The evaluation report as one self-contained HTML page (inline CSS, plots as base64 PNG).

Every string that came from the user or the data (title, feature names, labels, slice values)
is escaped; plots are drawn with matplotlib's Agg canvas, without pyplot's global state. The
generic page parts (style, tables, figures) live in `shipyard.core.html`, shared with the
monitoring report.

    >>> page = report_html(report, title="credit-risk@3")
    >>> Path("report.html").write_text(page)
"""

from __future__ import annotations

from html import escape

from matplotlib.figure import Figure

from shipyard.core.html import embed, figure, page, plot_text, table
from shipyard.evaluate.report import EvaluationReport

__all__ = ["report_html"]

TOP_FEATURES = 20
CONFUSION_TABLE = 20
ANNOTATED = 12  # up to this many classes, the confusion plot prints every count
# Plots fill the row in equal columns (three of the default size side by side at the page's
# width) instead of wrapping into a ragged row with a blank half under it.
_STYLE = (
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}"
    ".plots img,.wide img{width:100%;height:auto}.wide{max-width:42rem;margin:0}"
)


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
    labels = report.labels or []
    if report.confusion_matrix and ANNOTATED < len(labels) <= CONFUSION_TABLE:
        # The plot prints the counts for fewer classes; beyond that they are only legible here.
        rows = [
            [label, *counts] for label, counts in zip(labels, report.confusion_matrix, strict=True)
        ]
        body += [
            "<h2>Confusion matrix</h2>",
            '<p class="sub">rows: actual class; columns: predicted class</p>',
            table(["actual \\ predicted", *labels], rows),
        ]
    if report.residuals is not None:
        r = report.residuals
        rows = [["mean", r.mean], ["std", r.std], ["mae", r.mae], ["min", r.min], ["max", r.max]]
        rows += [[k, v] for k, v in r.quantiles.items()]
        body += ["<h2>Residuals (actual − predicted)</h2>", table(["statistic", "value"], rows)]
    if report.importance:
        # Shown once, as the chart (each bar labelled); the numbers stay in the page as text
        # (search, copy, screen readers) in a table folded away under it.
        top = list(report.importance.items())[:TOP_FEATURES]
        body += [
            "<h2>Feature importance</h2>",
            f'<p class="sub">{escape(report.importance_method)}</p>',
            f'<div class="wide">{_importance(report)}</div>',
            "<details><summary>the values as a table</summary>",
            table(["feature", "importance"], [[k, v] for k, v in top]),
            "</details>",
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
    return page(title, body, style=_STYLE)


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
        _clusters(report),
    ]


def _confusion(report: EvaluationReport) -> str:
    matrix, labels = report.confusion_matrix, report.labels
    if not matrix or not labels:
        return ""
    k = len(labels)
    size = min(3.0 + 0.4 * k, 9.0)
    fig = figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = [plot_text(label) for label in labels]
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
    return embed(fig, "Confusion matrix")


def _roc(report: EvaluationReport) -> str:
    if report.roc is None:
        return ""
    fig = figure()
    ax = fig.add_subplot()
    label = f"AUC {report.roc.auc:.3f}" + (" (micro)" if report.roc.average == "micro" else "")
    ax.plot(report.roc.fpr, report.roc.tpr, color="#2366c4", label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    return embed(fig, "ROC curve")


def _calibration(report: EvaluationReport) -> str:
    fig = calibration_figure(report)
    return embed(fig, "Calibration") if fig is not None else ""


def calibration_figure(report: EvaluationReport) -> Figure | None:
    """The reliability diagram, legend above the axes (None without probabilities)."""
    cal = report.calibration
    if cal is None:
        return None
    points = [(p, t) for p, t in zip(cal.prob_pred, cal.prob_true, strict=True) if p is not None]
    fig = figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1, label="perfect")
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", color="#2366c4", label=f"model (Brier {cal.brier:.3f})")
    ax.set_xlabel(
        "mean predicted probability" if cal.kind == "positive class" else "top-class confidence"
    )
    ax.set_ylabel("observed frequency")
    # A margin, so points at 0 and 1 are drawn whole; the legend goes above the axes, where it
    # cannot hide part of the curve (a calibration curve can pass through any corner).
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=2, frameon=False, borderaxespad=0)
    return fig


def _residuals(report: EvaluationReport) -> str:
    r = report.residuals
    if r is None:
        return ""
    fig = figure()
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(r.edges[:-1], r.edges[1:], strict=True)]
    ax.bar(r.edges[:-1], r.counts, width=widths, align="edge", color="#2366c4", edgecolor="white")
    ax.axvline(0, color="#b42318", linewidth=1)
    ax.set_xlabel("residual (actual − predicted)")
    ax.set_ylabel("rows")
    return embed(fig, "Residuals")


def _clusters(report: EvaluationReport) -> str:
    sizes = report.cluster_sizes
    if not sizes:
        return ""
    fig = figure()
    ax = fig.add_subplot()
    names = [plot_text(k) for k in sizes]
    bars = ax.bar(range(len(sizes)), list(sizes.values()), color="#2366c4")
    ax.bar_label(bars, fmt="{:,.0f}", padding=2)
    ax.set_xticks(range(len(sizes)), labels=names)
    ax.set_xlabel("cluster")
    ax.set_ylabel("rows")
    ax.margins(y=0.12)
    return embed(fig, "Cluster sizes")


def _importance(report: EvaluationReport) -> str:
    top = list(report.importance.items())[:TOP_FEATURES]
    if not top:
        return ""
    names = [plot_text(k) for k, _ in reversed(top)]
    values = [v for _, v in reversed(top)]
    fig = figure(6.0, max(2.5, 0.3 * len(top) + 1))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(top)), values, color="#2366c4")
    ax.bar_label(bars, fmt="{:.3g}", padding=3, fontsize=8)
    ax.margins(x=0.12)  # room for the labels
    ax.set_yticks(range(len(top)), labels=names)
    ax.set_xlabel("mean |SHAP|" if report.importance_method.startswith("shap") else "importance")
    return embed(fig, "Feature importance")
