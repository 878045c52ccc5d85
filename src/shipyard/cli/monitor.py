"""`shipyard monitor`: drift, decay and SLOs of an endpoint, or between any two data sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    """The report for a terminal: a verdict line, the drift table, decay, SLOs, alerts."""
    drift = report.drift
    parts: list[RenderableType] = []
    head = f"{drift.reference} → {drift.current}: {drift.current_rows:,} rows"
    if report.traffic:
        last = report.traffic[-1]
        head += f", {last.requests:,} requests"
        if last.p99_ms is not None:
            head += f", p50 {last.p50_ms:.1f} ms, p99 {last.p99_ms:.1f} ms"
    parts.append(Text(head, style="bold"))
    if drift.note:
        parts.append(Text(drift.note, style="yellow"))
    else:
        style = "red" if drift.drifted else "green"
        verdict = "DRIFT" if drift.drifted else "no drift"
        parts.append(
            Text(
                f"{verdict}: {len(drift.drifted_columns)} of {len(drift.features)} features "
                f"drifted, carrying {drift.drifted_share:.0%} of the model's importance",
                style=style,
            )
        )
        rows = sorted(drift.features, key=lambda f: (not f.drifted, -(f.importance or 0)))
        if compact:
            rows = [f for f in rows if f.drifted][:10]
        if rows:
            parts.append(_features(rows))
        if drift.prediction is not None:
            p = drift.prediction
            parts.append(
                Text(
                    f"prediction drift: {p.test} {p.score:.3f} (threshold {p.threshold:g}) "
                    f"{'DRIFTED' if p.drifted else 'stable'}",
                    style="red" if p.drifted else "",
                )
            )
        if drift.multivariate is not None:
            m = drift.multivariate
            top = ", ".join(f"{k} {v:.0%}" for k, v in list(m.top_features.items())[:4])
            parts.append(
                Text(
                    f"multivariate: domain classifier AUC {m.auc:.3f} (threshold "
                    f"{m.threshold:g}) {'DRIFTED' if m.drifted else 'stable'}; driven by {top}",
                    style="red" if m.drifted else "",
                )
            )
        if drift.ignored_columns:
            parts.append(
                Text(f"ignored (not in the reference): {', '.join(drift.ignored_columns)}")
            )
    if report.decay is not None:
        d = report.decay
        parts.append(
            Text(
                f"{d.metric}: {d.current:.4f} on {d.labelled:,} labelled rows vs "
                f"{d.registered:.4f} registered (drop {d.drop:+.4f}, threshold {d.threshold:g}) "
                f"{'DECAYED' if d.decayed else 'holding'}",
                style="red" if d.decayed else "",
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
    for alert in report.alerts:
        parts.append(Text(f"alert {alert.id}: {alert.message}", style="red"))
    return Group(*parts)


def _features(rows: list[FeatureDrift]) -> RenderableType:
    return _output.table(
        None,
        [
            _output.ident("FEATURE", min_width=16),
            "KIND",
            "TEST",
            "SCORE",
            "THRESHOLD",
            "DRIFT",
            "MISSING",
            "NEW",
            "IMPORTANCE",
        ],
        [
            (
                f.column,
                f.kind,
                f.test,
                f"{f.score:.3f}",
                f"{f.threshold:g}",
                Text("yes", style="red") if f.drifted else "no",
                f"{f.missing_reference:.1%} → {f.missing_current:.1%}"
                + (" !" if f.missing_drifted else ""),
                ", ".join(list(f.new_categories)[:3]),
                "" if f.importance is None else f"{f.importance:.0%}",
            )
            for f in rows
        ],
    )


def _spec(path: Path) -> ProjectSpec | None:
    from shipyard.core.spec import load_spec

    return load_spec(path) if path.is_file() else None
