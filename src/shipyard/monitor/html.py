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

from shipyard.core.html import embed, figure, page, plot_text, table
from shipyard.core.records import (
    Decay,
    DriftReport,
    FeatureDrift,
    MonitorReport,
    MultivariateDrift,
    WindowTraffic,
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
    rows: list[list[object]] = [
        ["endpoint", report.endpoint],
        ["model", report.model_ref],
        ["window", _window(report.start, report.end)],
        ["reference", f"{drift.reference} ({drift.reference_rows:,} rows)"],
        ["current", f"{drift.current} ({drift.current_rows:,} rows)"],
        ["drifted share", drift.drifted_share],
        ["drifted features", ", ".join(drift.drifted_columns) or "none"],
        ["alerts raised", len(report.alerts)],
    ]
    out.append(table(["", ""], rows))
    if report.decay is not None:
        d = report.decay
        out += [
            "<h3>Decay</h3>",
            table(
                ["metric", "registered", "current", "drop", "threshold", "labelled", "decayed"],
                [[d.metric, d.registered, d.current, d.drop, d.threshold, d.labelled, d.decayed]],
            ),
        ]
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
            "<h3>Alerts</h3>",
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
    if drift.note:
        return f'<p class="verdict note">Drift not judged: {escape(drift.note)}</p>'
    if not drift.features and drift.prediction is None:
        return '<p class="verdict muted">No features were compared.</p>'
    judged = len(drift.features)
    drifted = len(drift.drifted_columns)
    share = f"{drift.drifted_share:.0%} of the model's importance"
    text = f"{drifted} of {judged} features drifted ({share})"
    if drift.prediction is not None and drift.prediction.drifted:
        text += "; the predictions drifted"
    if drift.multivariate is not None and drift.multivariate.drifted:
        text += "; the data as a whole drifted (domain classifier)"
    verdict = "Drift: " + ("yes" if drift.drifted else "no") + f". {text}."
    return f'<p class="verdict {"fail" if drift.drifted else "pass"}">{escape(verdict)}</p>'


def _decay_verdict(decay: Decay) -> str:
    text = (
        f"Decay: {decay.metric} is {decay.current:.4g}, registered {decay.registered:.4g} "
        f"(worse by {decay.drop:.4g}; limit {decay.threshold:.4g}; {decay.labelled:,} labels)"
    )
    return f'<p class="verdict {"fail" if decay.decayed else "pass"}">{escape(text)}</p>'


# -- drift per feature --------------------------------------------------------------------------


def _ranked(features: Sequence[FeatureDrift]) -> list[FeatureDrift]:
    """Drifted first; within each group the biggest move relative to its threshold first."""

    def severity(f: FeatureDrift) -> float:
        return f.score / f.threshold if f.threshold else f.score

    return sorted(features, key=lambda f: (not f.drifted, -severity(f), f.column))


def _features(drift: DriftReport) -> list[str]:
    features = _ranked(drift.features)
    if drift.prediction is not None:
        features.append(drift.prediction)
    if not features:
        return []
    head = [
        "column",
        "kind",
        "test",
        "score",
        "threshold",
        "drifted",
        "missing (ref)",
        "missing (cur)",
        "new categories",
        "importance",
    ]
    rows = [
        [
            f.column + (" (prediction)" if f is drift.prediction else ""),
            f.kind,
            f.test,
            f.score,
            f.threshold,
            "yes" if f.drifted else "no",
            _share(f.missing_reference),
            _share(f.missing_current) + (" (drifted)" if f.missing_drifted else ""),
            _categories(f.new_categories),
            f.importance,
        ]
        for f in features
    ]
    return ["<h2>Drift per feature</h2>", table(head, rows)]


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
    ax.set_title(plot_text(f"{f.column} · {f.test} {f.score:.3g}", 60), fontsize=10)
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
            table(["feature", "importance share"], [[k, v] for k, v in top]),
        ]
    return out


# -- history ------------------------------------------------------------------------------------


def _history(report: MonitorReport) -> list[str]:
    plots = [
        _drift_over_time(report.traffic),
        _performance_over_time(report),
        _latency_over_time(report.traffic),
        _requests_over_time(report.traffic),
    ]
    plots = [p for p in plots if p]
    if not plots:
        return [
            "<h2>Over time</h2>",
            '<p class="muted">No history yet: no traffic or labels in the windows so far.</p>',
        ]
    return ["<h2>Over time</h2>", '<div class="plots">', *plots, "</div>"]


def _time_axes(width: float = 5.6, height: float = 3.4) -> tuple[Axes, Figure]:
    fig = figure(width, height)
    ax = fig.add_subplot()
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return ax, fig


def _times(values: Iterable[datetime]) -> list[float]:
    """Matplotlib date numbers (UTC) for window starts; the axes format them as dates."""
    return [float(date2num(v)) for v in values]


def _drift_over_time(traffic: Sequence[WindowTraffic]) -> str:
    points = [(w.start, w.drifted_share) for w in traffic if w.drifted_share is not None]
    if not points:
        return ""
    ax, fig = _time_axes()
    ax.plot(_times(p[0] for p in points), [p[1] for p in points], marker="o", color=CURRENT)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("drifted share")
    return embed(fig, "Drift over time")


def _performance_over_time(report: MonitorReport) -> str:
    windows = [w for w in report.performance if w.metrics]
    if not windows:
        return ""
    ax, fig = _time_axes()
    names = list(dict.fromkeys(m for w in windows for m in w.metrics))
    for name in names:
        points = [(w.start, w.metrics[name]) for w in windows if name in w.metrics]
        ax.plot(
            _times(p[0] for p in points),
            [p[1] for p in points],
            marker="o",
            label=plot_text(name, 30),
        )
    decay = report.decay
    if decay is not None:
        ax.axhline(
            decay.registered,
            linestyle="--",
            color="#b42318",
            linewidth=1,
            label=plot_text(f"{decay.metric} at registration", 40),
        )
    ax.set_ylabel("metric")
    ax.legend(fontsize=8)
    return embed(fig, "Performance over time")


def _latency_over_time(traffic: Sequence[WindowTraffic]) -> str:
    p50 = [(w.start, w.p50_ms) for w in traffic if w.p50_ms is not None]
    p99 = [(w.start, w.p99_ms) for w in traffic if w.p99_ms is not None]
    if not p50 and not p99:
        return ""
    ax, fig = _time_axes()
    for label, points, color in (("p50", p50, REFERENCE), ("p99", p99, CURRENT)):
        if points:
            xs, ys = _times(p[0] for p in points), [p[1] for p in points]
            ax.plot(xs, ys, marker="o", color=color, label=label)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return embed(fig, "Latency over time")


def _requests_over_time(traffic: Sequence[WindowTraffic]) -> str:
    if not traffic:
        return ""
    ax, fig = _time_axes()
    starts = _times(w.start for w in traffic)
    ax.plot(starts, [w.requests for w in traffic], marker="o", color=CURRENT, label="requests")
    if any(w.errors for w in traffic):
        ax.plot(starts, [w.errors for w in traffic], marker="o", color="#b42318", label="errors")
    ax.set_ylabel("per window")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return embed(fig, "Requests over time")
