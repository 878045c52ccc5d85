"""`shipyard runs`: list, show and compare tracked runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.records import Run
from shipyard.train import get_run, plot_histories, search_runs

app = typer.Typer(help="List, show and compare experiment runs.", no_args_is_help=True)


@app.command("ls")
def ls(
    ctx: typer.Context,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", help="e.g. \"metrics.test_roc_auc > 0.7 and status = 'finished'\""
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option("--order-by", help="e.g. 'metrics.test_f1 desc' (default: newest first)."),
    ] = None,
    trials: Annotated[
        bool, typer.Option("--trials", help="Include the search trials (child runs).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    json: _output.JsonFlag = False,
) -> None:
    """List runs, newest first (search trials are hidden unless --trials)."""
    with _output.workspace(ctx) as ws:
        found = search_runs(
            ws,
            experiment=experiment,
            filter=filter_,
            order_by=order_by,
            top_level=not trials,
            limit=limit,
        )
    if not found:
        table: RenderableType = Text(
            "No runs. `shipyard train` or `shipyard.start_run()` records them."
        )
    else:
        keys = _top_metrics(found)
        table = _output.table(
            "Runs",
            ["RUN", "EXPERIMENT", "NAME", "STATUS", "STARTED (UTC)", *[k.upper() for k in keys]],
            [
                (
                    r.id,
                    r.experiment,
                    r.name,
                    r.status.value,
                    r.started_at,
                    *[_fmt(r.metrics.get(k)) for k in keys],
                )
                for r in found
            ],
        )
    _output.emit(found, json_mode=json, table=table)


def _top_metrics(runs: list[Run], most: int = 4) -> list[str]:
    counts: dict[str, int] = {}
    for r in runs:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    preferred = sorted(counts, key=lambda k: (not k.startswith("test_"), -counts[k], k))
    return preferred[:most]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id (run_...).")],
    json: _output.JsonFlag = False,
) -> None:
    """A run's params, latest metrics, tags, artifacts and environment."""
    with _output.workspace(ctx) as ws:
        run = get_run(ws, run_id)
        children = search_runs(ws, parent_id=run.id, limit=None, order_by="started_at")
    head = Text.assemble(
        (run.id, "bold"),
        f"  {run.experiment} / {run.name or '-'}  status {run.status.value}\n",
        f"started {_output.when(run.started_at)}  ended {_output.when(run.ended_at)}  by "
        f"{run.created_by}\n",
        f"seed {run.seed}  git {run.git_commit or '-'}  parent {run.parent_id or '-'}",
        *([f"\nnote: {run.note}"] if run.note else []),
    )
    parts: list[RenderableType] = [head]
    parts.append(
        _output.table("Params", ["PARAM", "VALUE"], [(k, v) for k, v in run.params.items()])
    )
    parts.append(
        _output.table(
            "Metrics (latest)",
            ["METRIC", "VALUE"],
            [(k, _fmt(v)) for k, v in sorted(run.metrics.items())],
        )
    )
    if run.tags:
        parts.append(_output.table("Tags", ["TAG", "VALUE"], list(run.tags.items())))
    if run.artifacts:
        parts.append(
            _output.table(
                "Artifacts",
                ["NAME", "DIGEST", "BYTES"],
                [(a.name, a.digest[:12], f"{a.size:,}") for a in run.artifacts],
            )
        )
    if run.packages:
        parts.append(
            Text("packages: " + ", ".join(f"{k} {v}" for k, v in run.packages.items()), style="dim")
        )
    if children:
        parts.append(
            Text(
                f"{len(children)} child runs (trials): shipyard runs ls --trials --filter ...",
                style="dim",
            )
        )
    _output.emit(
        {"run": run, "children": [c.id for c in children]}, json_mode=json, table=Group(*parts)
    )


@app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    plot: Annotated[
        Path, typer.Option("--plot", help="Where to save the metric-history plot.")
    ] = Path("runs-compare.png"),
    json: _output.JsonFlag = False,
) -> None:
    """Params and metrics side by side, and a plot of the metric histories."""
    with _output.workspace(ctx) as ws:
        runs = [get_run(ws, r) for r in run_ids]
        saved = plot_histories(ws, runs, plot)
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({k for r in runs for k in r.metrics})
    heads = ["", *[r.name or r.id for r in runs]]
    rows = [
        (Text(f"param {k}", style="cyan"), *[_cell(r.params.get(k)) for r in runs]) for k in params
    ]
    rows += [
        (Text(f"metric {k}", style="magenta"), *[_fmt(r.metrics.get(k)) for r in runs])
        for k in metrics
    ]
    table = Group(
        _output.table("Runs side by side", heads, rows),
        Text(
            f"metric histories: {saved}"
            if saved
            else "no metric has more than one step: nothing to plot",
            style="dim",
        ),
    )
    _output.emit({"runs": runs, "plot": str(saved) if saved else None}, json_mode=json, table=table)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
