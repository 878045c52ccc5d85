"""The monitoring report as one self-contained HTML page (inline CSS, plots as base64 PNG).

What `shipyard monitor report --html` writes and the dashboard links to: the verdict first
(drift, decay, SLOs, alerts), then the per-feature drift table with the drifted columns on top,
their distributions against the reference, the domain classifier's result, and the history of
drift, quality, latency and traffic over the windows. Every string from a user or the data
(title, endpoint, column names, categories, messages) is escaped.

    >>> Path("monitor.html").write_text(monitor_html(report, title="credit: last 24 h"))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from shipyard.core.html import embed, figure, page, plot_text, table
from shipyard.core.records import (
    Decay,
    DriftReport,
    FeatureDrift,
    MonitorReport,
    MultivariateDrift,
    WindowTraffic,
)
from shipyard.monitor.drift import (
    change_text,
    features_summary,
    joint_summary,
    percent_text,
    pvalue_text,
)

MAX_DISTRIBUTIONS = 12
MAX_NEW_CATEGORIES = 5
MAX_TICK_LABELS = 24
REFERENCE, CURRENT = "#9aa5b1", "#2366c4"
EXTRA_STYLE = """
.verdict{font-size:1.05rem;margin:.4rem 0}
.muted{color:#627d98}
"""


def monitor_html(report: MonitorReport, *, title: str) -> str:
    """A complete HTML document for ``report``; ``title`` heads the page."""
    drift = report.drift
    body: list[str] = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(_subtitle(report))}</p>',
    ]
    body += _summary(report)
    body += _features(drift)
    body += _distributions(drift)
    body += _multivariate(drift.multivariate)
    body += _history(report)
    if drift.excluded:
        left = ", ".join(f"{name} ({why})" for name, why in drift.excluded.items())
        body.append(f'<p class="note">Not judged as features: {escape(left)}</p>')
    if drift.ignored_columns:
        names = ", ".join(drift.ignored_columns)
        body.append(
            f'<p class="note">Not judged (the reference does not have them): {escape(names)}</p>'
        )
    return page(title, body, style=EXTRA_STYLE)


# -- summary ------------------------------------------------------------------------------------


def _subtitle(report: MonitorReport) -> str:
    parts = [
        f"endpoint {report.endpoint}" if report.endpoint else None,
        f"model {report.model_ref}" if report.model_ref else None,
        _window(report.start, report.end),
        f"{report.drift.current_rows:,} rows",
    ]
    return " · ".join(p for p in parts if p)


def _window(start: datetime | None, end: datetime | None) -> str | None:
    if start is None and end is None:
        return None
    return f"{_when(start) or '…'} to {_when(end) or 'now'}"


def _when(value: datetime | None) -> str | None:
    return None if value is None else f"{value:%Y-%m-%d %H:%M %Z}".strip()


def _summary(report: MonitorReport) -> list[str]:
    drift = report.drift
    out = ["<h2>Summary</h2>", _drift_verdict(drift)]
    if report.decay is not None:
        out.append(_decay_verdict(report.decay))
    failed = [s for s in report.slos if not s.passed]
    if report.slos:
        cls, text = (
            ("fail", f"SLOs: {len(failed)} of {len(report.slos)} failed")
            if failed
            else ("pass", f"SLOs: all {len(report.slos)} met")
        )
        out.append(f'<p class="verdict {cls}">{escape(text)}</p>')
    share_of = "the model's importance" if drift.by_importance else "the features"
    rows: list[list[object]] = [
        ["endpoint", report.endpoint],
        ["model", report.model_ref],
        ["window", _window(report.start, report.end)],
        ["reference", f"{drift.reference} ({drift.reference_rows:,} rows)"],
        ["current", f"{drift.current} ({drift.current_rows:,} rows)"],
        [f"drifted share of {share_of}", _percent(drift.drifted_share)],
        ["drifted features", ", ".join(drift.drifted_columns) or "none"],
    ]
    if report.endpoint is not None:
        rows.append(["alerts for this window", len(report.alerts)])
    out.append(table(["", ""], [row for row in rows if row[1] is not None]))
    if report.decay is not None:
        d = report.decay
        out += [
            "<h3>Decay</h3>",
            table(
                ["metric", "registered", "current", "change", "decays when worse by",
                 "labelled", "decayed"],
                [[d.metric, d.registered, d.current, change_text(d.registered, d.current, d.drop),
                  d.threshold, d.labelled, "yes" if d.decayed else "no"]],
            ),
        ]  # fmt: skip
    if report.slos:
        out += [
            "<h3>SLOs</h3>",
            table(
                ["SLO", "limit", "observed", "met"],
                [[s.name, s.limit, s.observed, s.passed] for s in report.slos],
            ),
        ]
    if report.alerts:
        out += [
            "<h3>Alerts for this window</h3>",
            table(
                ["id", "kind", "created", "acked", "message"],
                [
                    [a.id, a.kind, _when(a.created_at), _when(a.acked_at) or "no", a.message]
                    for a in report.alerts
                ],
            ),
        ]
    return out


def _drift_verdict(drift: DriftReport) -> str:
    """ "Drift: yes" with every reason (features, joint), or "no" with the features' count."""
    if drift.note:
        return f'<p class="verdict note">Drift not judged: {escape(drift.note)}</p>'
    if not drift.features and drift.prediction is None:
        return '<p class="verdict muted">No features were compared.</p>'
    reasons = list(drift.reasons) if drift.drifted else []
    if not reasons:  # not drifted, or a report made before verdicts carried their reasons
        reasons.append(features_summary(drift))
        if drift.multivariate is not None:
            reasons.append(joint_summary(drift.multivariate))
    for what, apart in (("the predictions", drift.prediction), ("the labels", drift.label)):
        if apart is not None and apart.drifted:
            reasons.append(f"{what} drifted ({apart.column})")
    verdict = "Drift: " + ("yes" if drift.drifted else "no") + ". " + "; ".join(reasons) + "."
    return f'<p class="verdict {"fail" if drift.drifted else "pass"}">{escape(verdict)}</p>'


def _decay_verdict(decay: Decay) -> str:
    text = (
        f"Decay: {'yes' if decay.decayed else 'no'}. {decay.metric} is {decay.current:.4g} on "
        f"{decay.labelled:,} labelled rows, {decay.registered:.4g} at registration "
        f"({change_text(decay.registered, decay.current, decay.drop)}; decays when worse by "
        f"more than {decay.threshold:.4g})."
    )
    return f'<p class="verdict {"fail" if decay.decayed else "pass"}">{escape(text)}</p>'


def _percent(value: float | None) -> str:
    """Shares (importance, drifted share) as percentages, as the CLI shows them."""
    return percent_text(value)


# -- drift per feature --------------------------------------------------------------------------


def _ranked(features: Sequence[FeatureDrift]) -> list[FeatureDrift]:
    """Drifted first; within each group the biggest move relative to its threshold first."""

    def severity(f: FeatureDrift) -> float:
        return f.score / f.threshold if f.threshold else f.score

    return sorted(features, key=lambda f: (not f.drifted, -severity(f), f.column))


def _features(drift: DriftReport) -> list[str]:
    features = _ranked(drift.features)
    roles = {}
    for role, apart in (("prediction", drift.prediction), ("label", drift.label)):
        if apart is not None:
            features.append(apart)
            roles[id(apart)] = role
    if not features:
        return []
    head = [
        "column",
        "kind",
        "test",
        "score",
        "p-value",
        "threshold",
        "drifted",
        "missing (ref)",
        "missing (cur)",
        "new categories",
        "importance",
    ]
    # Columns with nothing to show in any row are left out (no model: no importance).
    shown = [
        True, True, True, True, True, True, True, True, True,
        any(f.new_categories for f in features),
        any(f.importance is not None for f in features),
    ]  # fmt: skip
    rows = [
        [
            _named(f.column, roles.get(id(f))),
            f.kind,
            f.test,
            f.score,
            pvalue_text(f.scores.get("pvalue")),
            f.threshold,
            "yes" if f.drifted else "no",
            _share(f.missing_reference),
            _share(f.missing_current) + (" (drifted)" if f.missing_drifted else ""),
            _categories(f.new_categories),
            _percent(f.importance),
        ]
        for f in features
    ]
    head = [h for h, keep in zip(head, shown, strict=True) if keep]
    rows = [[cell for cell, keep in zip(row, shown, strict=True) if keep] for row in rows]
    return ["<h2>Drift per feature</h2>", table(head, rows)]


def _named(column: str, role: str | None) -> str:
    """A column's name, with its role when it is not a feature (and the name does not say)."""
    return column if role is None or column == role else f"{column} ({role})"


def _share(value: float) -> str:
    return f"{value:.1%}"


def _categories(new: dict[str, int]) -> str:
    if not new:
        return ""
    top = sorted(new.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} ({v:,})" for k, v in top[:MAX_NEW_CATEGORIES])
    more = len(top) - MAX_NEW_CATEGORIES
    return shown + (f" and {more} more" if more > 0 else "")


def _distributions(drift: DriftReport) -> list[str]:
    drifted = [f for f in _ranked(drift.features) if f.drifted and f.bins]
    shown = drifted[:MAX_DISTRIBUTIONS]
    plots = [_overlay(f, f"{f.column}: reference vs current") for f in shown]
    if drift.prediction is not None and drift.prediction.bins:
        plots.append(_overlay(drift.prediction, "prediction: reference vs current"))
    if drift.label is not None and drift.label.bins:
        label = f"label ({drift.label.column}): reference vs current"
        plots.append(_overlay(drift.label, label))
    if not plots:
        return []
    out = ["<h2>Distributions</h2>"]
    if len(drifted) > len(shown):
        out.append(
            f'<p class="sub">the {len(shown)} most drifted of {len(drifted)} drifted features</p>'
        )
    return [*out, '<div class="plots">', *plots, "</div>"]


def _overlay(f: FeatureDrift, caption: str) -> str:
    k = len(f.bins)
    fig = figure(max(4.8, min(0.35 * k + 2, 9.0)), 3.6)
    ax = fig.add_subplot()
    xs = range(k)
    width = 0.4
    ref = _fit(f.reference_share, k)
    cur = _fit(f.current_share, k)
    ax.bar([x - width / 2 for x in xs], ref, width=width, color=REFERENCE, label="reference")
    ax.bar([x + width / 2 for x in xs], cur, width=width, color=CURRENT, label="current")
    step = max(1, -(-k // MAX_TICK_LABELS))
    ticks = list(xs)[::step]
    ax.set_xticks(
        ticks,
        labels=[plot_text(f.bins[i], 18) for i in ticks],
        rotation=45 if k > 4 else 0,
        ha="right" if k > 4 else "center",
        fontsize=8,
    )
    ax.set_ylabel("share of rows")
    p = pvalue_text(f.scores.get("pvalue"))
    score = f"{f.test} {f.score:.3g}" + (f", p {p}" if p else "")
    ax.set_title(plot_text(f"{f.column} · {score}", 60), fontsize=10)
    ax.legend(fontsize=8)
    return embed(fig, caption)


def _fit(values: Sequence[float], k: int) -> list[float]:
    """Shares padded or cut to the bins, so a malformed report still draws."""
    return [*values[:k], *[0.0] * (k - len(values[:k]))]


def _multivariate(result: MultivariateDrift | None) -> list[str]:
    if result is None:
        return []
    out = [
        "<h2>Multivariate drift</h2>",
        '<p class="sub">a classifier trained to tell reference rows from current rows; '
        "ROC-AUC near 0.5 means it cannot</p>",
        table(
            ["ROC-AUC", "threshold", "drifted", "rows per side"],
            [[result.auc, result.threshold, "yes" if result.drifted else "no", result.rows]],
        ),
    ]
    if result.top_features:
        top = sorted(result.top_features.items(), key=lambda kv: -kv[1])
        out += [
            "<h3>Features that separate them</h3>",
            table(
                ["feature", "share of the classifier's gain"], [[k, _percent(v)] for k, v in top]
            ),
        ]
    return out


# -- history ------------------------------------------------------------------------------------


def _history(report: MonitorReport) -> list[str]:
    span = _span(report)
    plots = [
        _drift_over_time(report.traffic, span, report.drift.by_importance),
        _performance_over_time(report, span),
        _latency_over_time(report.traffic, span),
        _requests_over_time(report.traffic, span),
    ]
    plots = [p for p in plots if p]
    if not plots:
        return [
            "<h2>Over time</h2>",
            '<p class="muted">No history yet: no traffic or labels in the windows so far.</p>',
        ]
    return ["<h2>Over time</h2>", '<div class="plots">', *plots, "</div>"]


Span = tuple[datetime, datetime] | None


def _span(report: MonitorReport) -> Span:
    """The time the windows cover: every plot's x axis, so one point does not get an axis
    matplotlib pads to years around it."""
    windows = [(w.start, w.end) for w in report.traffic]
    windows += [(w.start, w.end) for w in report.performance]
    if not windows:
        return None
    return min(w[0] for w in windows), max(w[1] for w in windows)


def _time_axes(span: Span, width: float = 5.6, height: float = 3.4) -> tuple[Axes, Figure]:
    fig = figure(width, height)
    ax = fig.add_subplot()
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if span is not None:
        ax.set_xlim(float(date2num(span[0])), float(date2num(span[1])))
    return ax, fig


def _mid(start: datetime, end: datetime) -> datetime:
    return start + (end - start) / 2


def _times(values: Iterable[tuple[datetime, datetime]]) -> list[float]:
    """Matplotlib date numbers (UTC) for the middle of each window."""
    return [float(date2num(_mid(*v))) for v in values]


def _drift_over_time(traffic: Sequence[WindowTraffic], span: Span, by_importance: bool) -> str:
    points = [((w.start, w.end), w.drifted_share) for w in traffic if w.drifted_share is not None]
    if not points:
        return ""
    ax, fig = _time_axes(span)
    ax.plot(_times(p[0] for p in points), [p[1] for p in points], marker="o", color=CURRENT)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("drifted share of " + ("importance" if by_importance else "features"))
    return embed(fig, "Drift over time")


def _performance_over_time(report: MonitorReport, span: Span) -> str:
    """The decay metric against its registered value; every metric when none is judged."""
    windows = [w for w in report.performance if w.metrics]
    if not windows:
        return ""
    decay = report.decay
    names = list(dict.fromkeys(m for w in windows for m in w.metrics))
    if decay is not None and decay.metric in names:
        names = [decay.metric]
    ax, fig = _time_axes(span)
    for name in names:
        points = [((w.start, w.end), w.metrics[name]) for w in windows if name in w.metrics]
        ax.plot(
            _times(p[0] for p in points),
            [p[1] for p in points],
            marker="o",
            label=plot_text(name, 30),
        )
    if decay is not None:
        ax.axhline(
            decay.registered,
            linestyle="--",
            color="#b42318",
            linewidth=1,
            label=plot_text(f"{decay.metric} at registration", 40),
        )
    ax.set_ylabel(plot_text(names[0], 30) if len(names) == 1 else "metric")
    ax.legend(fontsize=8)
    return embed(fig, "Performance over time")


def _latency_over_time(traffic: Sequence[WindowTraffic], span: Span) -> str:
    p50 = [((w.start, w.end), w.p50_ms) for w in traffic if w.p50_ms is not None]
    p99 = [((w.start, w.end), w.p99_ms) for w in traffic if w.p99_ms is not None]
    if not p50 and not p99:
        return ""
    ax, fig = _time_axes(span)
    for label, points, color in (("p50", p50, REFERENCE), ("p99", p99, CURRENT)):
        if points:
            xs, ys = _times(p[0] for p in points), [p[1] for p in points]
            ax.plot(xs, ys, marker="o", color=color, label=label)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return embed(fig, "Latency over time")


def _requests_over_time(traffic: Sequence[WindowTraffic], span: Span) -> str:
    if not traffic:
        return ""
    ax, fig = _time_axes(span)
    windows = _times((w.start, w.end) for w in traffic)
    ax.plot(windows, [w.requests for w in traffic], marker="o", color=CURRENT, label="requests")
    if any(w.errors for w in traffic):
        ax.plot(windows, [w.errors for w in traffic], marker="o", color="#b42318", label="errors")
    ax.set_ylabel("per window")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return embed(fig, "Requests over time")
