"""`shipyard monitor`: drift, decay and SLOs of an endpoint, or between any two data sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Invalid
from shipyard.core.records import FeatureDrift, MonitorReport

if TYPE_CHECKING:
    from shipyard.core.spec import ProjectSpec

# shipyard.loop.watch and the HTML report (pandas, SciPy, matplotlib, the model libraries), and
# the spec loader, are imported inside the commands, so that the rest of the CLI stays fast.

app = typer.Typer(
    help="Watch endpoints for drift, decay and SLO breaches; compare any two data sets.",
    no_args_is_help=True,
)

SpecOption = Annotated[
    Path, typer.Option("--spec", help="Project spec (monitor thresholds, decay metric, SLOs).")
]
WindowOption = Annotated[
    str | None,
    typer.Option("--window", help="Window to judge, e.g. 15m, 1h (spec: monitor.window)."),
]


@app.command("report")
def report(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(help="The endpoint to judge (omit with --reference/--current).")
    ] = None,
    window: WindowOption = None,
    history: Annotated[
        int, typer.Option("--history", min=1, max=1000, help="Windows of history to plot.")
    ] = 24,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Offline: a dataset version (loans@3) or a file."),
    ] = None,
    current: Annotated[
        str | None, typer.Option("--current", help="Offline: a dataset version or a file.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML report path (default: monitor-<name>.html here)."),
    ] = None,
    spec: SpecOption = Path("shipyard.yaml"),
    json: _output.JsonFlag = False,
) -> None:
    """Drift per feature and overall, prediction drift, decay and SLOs, with an HTML report."""
    from shipyard.core.spec import parse_duration
    from shipyard.loop.watch import endpoint_report, offline_report
    from shipyard.monitor.html import monitor_html

    project = _spec(spec)
    offline = reference is not None or current is not None
    if offline and (reference is None or current is None):
        raise Invalid("give both --reference and --current to compare two data sets.")
    if offline and endpoint is not None:
        raise Invalid(
            f"give an endpoint ({endpoint!r}) or --reference/--current, not both: the first "
            "judges production traffic, the second any two data sets."
        )
    if not offline and endpoint is None:
        raise Invalid(
            "name an endpoint (`shipyard monitor report credit`) or compare two data sets "
            "(`--reference loans@3 --current new.parquet`)."
        )
    size = parse_duration(window, what="--window") if window else None
    with _output.workspace(ctx) as ws:
        if offline:
            assert reference is not None and current is not None
            result = offline_report(ws, reference, current, project)
        else:
            assert endpoint is not None
            result = endpoint_report(ws, endpoint, project, window=size, history=history)
    path = out or Path(f"monitor-{endpoint or 'offline'}.html")
    name = endpoint or f"{reference} → {current}"
    path.write_text(monitor_html(result, title=f"Shipyard monitor: {name}"), encoding="utf-8")
    if json:
        _output.print_json({**_output.plain(result), "html": str(path)})
        return
    _output.console().print(render(result))
    _output.err_console().print(f"HTML report: {path}", markup=False, highlight=False)


@app.command("watch")
def watch(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint to watch.")],
    window: WindowOption = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")
    ] = 10.0,
    count: Annotated[
        int, typer.Option("--count", min=0, help="Stop after this many refreshes (0: never).")
    ] = 0,
    spec: SpecOption = Path("shipyard.yaml"),
) -> None:
    """Live: the latest window's traffic, drift, decay and latency; raises alerts as it goes."""
    from shipyard.core.spec import parse_duration
    from shipyard.loop.watch import endpoint_report, load_reference

    project = _spec(spec)
    size = parse_duration(window, what="--window") if window else None
    with _output.workspace(ctx) as ws:
        from shipyard.serve.endpoints import get_endpoint

        reference = load_reference(ws, get_endpoint(ws, endpoint).champion_ref)
        done = 0
        with Live(console=_output.console(), auto_refresh=False) as live:
            while True:
                if reference.version.ref != get_endpoint(ws, endpoint).champion_ref:
                    reference = load_reference(ws, get_endpoint(ws, endpoint).champion_ref)
                result = endpoint_report(
                    ws,
                    endpoint,
                    project,
                    window=size,
                    history=1,
                    reference=reference,
                    raise_alerts=True,
                )
                live.update(render(result, compact=True), refresh=True)
                done += 1
                if count and done >= count:
                    break
                time.sleep(interval)


def render(report: MonitorReport, *, compact: bool = False) -> RenderableType:
    """The report for a terminal: the verdict and why, the drift table, decay, SLOs, alerts."""
    from shipyard.monitor.drift import change_text, features_summary, joint_summary

    drift = report.drift
    parts: list[RenderableType] = []
    unit = "row" if drift.current_rows == 1 else "rows"
    head = f"{drift.reference} → {drift.current}: {drift.current_rows:,} {unit}"
    parts.append(Text(head, style="bold"))
    if report.traffic:
        last = report.traffic[-1]
        traffic = f"traffic: {last.requests:,} requests"
        if last.p99_ms is not None:
            traffic += f", latency p50 {last.p50_ms:.1f} ms, p99 {last.p99_ms:.1f} ms"
        parts.append(Text(traffic))
    if drift.note:
        parts.append(Text(drift.note, style="yellow"))
    else:
        if drift.drifted:
            parts += [Text(f"DRIFT: {reason}", style="red") for reason in drift.reasons]
        else:
            parts.append(Text(f"no drift: {features_summary(drift)}", style="green"))
        rows = _ranked(drift.features)
        if compact:
            rows = [f for f in rows if f.drifted or f.missing_drifted][:10]
        if rows:
            parts.append(_features(rows))
        if drift.prediction is not None:
            parts.append(_apart("prediction drift", drift.prediction))
        if drift.label is not None:
            parts.append(_apart(f"label drift ({drift.label.column})", drift.label))
        m = drift.multivariate
        if m is not None and not m.drifted:
            parts.append(Text(joint_summary(m)))
        if drift.excluded and not compact:
            left = ", ".join(f"{name} ({why})" for name, why in drift.excluded.items())
            parts.append(Text(f"not judged as features: {left}"))
        if drift.ignored_columns:
            parts.append(
                Text(f"ignored (not in the reference): {', '.join(drift.ignored_columns)}")
            )
    if report.decay is not None:
        d = report.decay
        parts.append(
            Text(
                f"{'DECAY' if d.decayed else 'no decay'}: {d.metric} {d.current:.4f} on "
                f"{d.labelled:,} labelled rows vs {d.registered:.4f} registered "
                f"({change_text(d.registered, d.current, d.drop)}; decays when worse by more "
                f"than {d.threshold:g})",
                style="red" if d.decayed else "green",
            )
        )
    elif report.endpoint is not None and not compact:
        parts.append(Text("decay: not judged (too few labelled rows in the window)"))
    for slo in report.slos:
        observed = "n/a" if slo.observed is None else f"{slo.observed:.4g}"
        parts.append(
            Text(
                f"SLO {slo.name}: {observed} (limit {slo.limit:g}) "
                f"{'ok' if slo.passed else 'BROKEN'}",
                style="" if slo.passed else "red",
            )
        )
    if report.endpoint is not None:
        count = len(report.alerts)
        noun = "alert" if count == 1 else "alerts"
        parts.append(Text(f"{count or 'no'} {noun} for this window (`shipyard alerts ls`)"))
    for alert in report.alerts:
        acked = f", acknowledged by {alert.acked_by}" if alert.acked_at else ""
        parts.append(Text(f"  {alert.id} ({alert.kind}{acked}): {alert.message}", style="red"))
    return Group(*parts)


def _ranked(features: list[FeatureDrift]) -> list[FeatureDrift]:
    """Drifted first, then by how far the score is past (or short of) its threshold."""

    def severity(f: FeatureDrift) -> float:
        return f.score / f.threshold if f.threshold else f.score

    return sorted(
        features, key=lambda f: (not (f.drifted or f.missing_drifted), -severity(f), f.column)
    )


def _apart(what: str, f: FeatureDrift) -> Text:
    from shipyard.monitor.drift import pvalue_text

    verdict = "DRIFTED" if f.drifted else "stable"
    return Text(
        f"{what}: {f.test} {f.score:.3f}, p {pvalue_text(f.scores.get('pvalue'))} "
        f"(threshold {f.threshold:g}): {verdict}",
        style="red" if f.drifted else "",
    )


def _features(rows: list[FeatureDrift]) -> RenderableType:
    """One row per feature; the missing, new-category and importance columns only when any
    row has something to show, so the table fits 80 columns."""
    from shipyard.monitor.drift import percent_text, pvalue_text

    heads: list[Any] = [
        _output.ident("FEATURE", min_width=12),
        "TEST",
        "SCORE",
        "P-VALUE",
        "LIMIT",
        "DRIFT",
    ]
    missing = any(f.missing_reference or f.missing_current or f.missing_drifted for f in rows)
    new = any(f.new_categories for f in rows)
    importance = any(f.importance is not None for f in rows)
    heads += ["MISSING"] * missing + ["NEW"] * new + ["IMPORTANCE"] * importance
    table_rows = []
    for f in rows:
        cells: list[object] = [
            f.column,
            f.test,
            f"{f.score:.3f}",
            pvalue_text(f.scores.get("pvalue")),
            f"{f.threshold:g}",
            Text("yes", style="red") if f.drifted else "no",
        ]
        if missing:
            cells.append(
                f"{f.missing_reference:.1%} → {f.missing_current:.1%}"
                + (" !" if f.missing_drifted else "")
            )
        if new:
            cells.append(", ".join(list(f.new_categories)[:3]))
        if importance:
            cells.append(percent_text(f.importance))
        table_rows.append(cells)
    return _output.table(None, heads, table_rows)


def _spec(path: Path) -> ProjectSpec | None:
    from shipyard.core.spec import load_spec

    return load_spec(path) if path.is_file() else None
