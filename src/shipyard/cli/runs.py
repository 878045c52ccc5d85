"""`shipyard runs`: list, show and compare tracked runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Column
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import NotFound, ShipyardError
from shipyard.core.records import Run
from shipyard.store.workspace import Workspace
from shipyard.train import get_run, plot_histories, search_runs

app = typer.Typer(help="List, show and compare experiment runs.", no_args_is_help=True)


@app.command("ls")
def ls(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", metavar="NAME", help="Only this experiment."),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="FILTER",
            help="e.g. \"metrics.test_roc_auc > 0.7 and status = 'finished'\"",
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option(
            "--order-by",
            metavar="KEY",
            help="e.g. 'metrics.test_f1 desc' (default: newest first).",
        ),
    ] = None,
    trials: Annotated[
        bool,
        typer.Option("--trials", help="Include the search trials (child runs) and their params."),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1)] = 20,
    wide: _output.WideFlag = False,
    json: _output.JsonFlag = False,
) -> None:
    """List runs, newest first (search trials are hidden unless --trials).

    The metric columns lead with the primary metric each run records (`params.metric` of a
    search, its parent's for a trial), else the one of ./shipyard.yaml.
    """
    with _output.workspace(ctx) as ws:
        found = search_runs(
            ws,
            experiment=experiment,
            filter=filter_,
            order_by=order_by,
            top_level=not trials,
            limit=limit,
        )
        primary = _primary_metrics(ws, found)
    if not found:
        table: RenderableType = Text(
            "No runs. `shipyard train` or `shipyard.start_run()` records them."
        )
    else:
        experiments = sorted({r.experiment for r in found})
        one = len(experiments) == 1  # then the title names it and the column goes
        width = _output.console().width
        most = 6 if wide else max(2, (width - (80 if trials else 70)) // 10)
        keys = _top_metrics(found, primary, most=most, trials=trials)
        # Trials give the run id's width to their params first (`--wide` shows it whole).
        columns: list[str | Column] = [_output.ident("RUN", min_width=14 if trials else 24)]
        if not one:
            columns.append(_output.ident("EXPERIMENT", min_width=10))
        columns += [_output.ident("NAME", min_width=10), "STATUS"]
        if not trials:  # a search's trials start seconds apart: their params matter more
            columns.append(_output.when_column("STARTED (UTC)"))
        columns += [Column(_header(k), justify="right") for k in keys]
        if trials:  # wraps between params; a long class name is cut, not split
            columns.append(Column("PARAMS", no_wrap=False, overflow="ellipsis"))
        table = _output.table(
            f"Runs of {experiments[0]}" if one else "Runs",
            columns,
            [
                (
                    r.id,
                    *([] if one else [r.experiment]),
                    r.name,
                    r.status.value,
                    *([] if trials else [r.started_at]),
                    *[_fmt(r.metrics.get(k)) for k in keys],
                    *([_params(r)] if trials else []),
                )
                for r in found
            ],
        )
    _output.emit(found, json_mode=json, table=table)


def _primary_metrics(ws: Workspace, runs: list[Run]) -> list[str]:
    """The primary metrics of these runs, most common first: what their searches record
    (a trial asks its parent), else the one of the project spec in the working directory."""
    parents = {r.id: r for r in runs}
    counts: dict[str, int] = {}
    for r in runs:
        source = r
        if "metric" not in r.params and r.parent_id:
            if r.parent_id not in parents:
                try:
                    parents[r.parent_id] = get_run(ws, r.parent_id)
                except NotFound:  # a parent deleted by hand: no primary metric from it
                    continue
            source = parents[r.parent_id]
        metric = source.params.get("metric")
        if isinstance(metric, str):
            counts[metric] = counts.get(metric, 0) + 1
    if not counts:
        metric = _spec_metric()
        return [metric] if metric else []
    return sorted(counts, key=lambda m: -counts[m])


def _spec_metric(path: Path = Path("shipyard.yaml")) -> str | None:
    if not path.is_file():
        return None
    from shipyard.core.spec import load_spec

    try:
        spec = load_spec(path)
    except ShipyardError:  # a broken spec is `train`'s to report; listing runs still works
        return None
    return spec.train.metric if spec.train else None


def _top_metrics(
    runs: list[Run], primary: list[str], most: int = 4, *, trials: bool = False
) -> list[str]:
    """Metric keys for the columns: the primary metric's held-out and CV scores first (CV
    first when trials are listed: a trial has only its CV score), then the held-out metrics
    most runs have, then the rest (per-fold series left out)."""
    counts: dict[str, int] = {}
    for r in runs:
        for k in r.metrics:
            if not k.endswith("_fold"):
                counts[k] = counts.get(k, 0) + 1
    order = (
        ("cv_{}", "test_{}", "{}", "cv_{}_std")
        if trials
        else ("test_{}", "cv_{}", "{}", "cv_{}_std")
    )
    lead = [k.format(p) for p in primary for k in order]
    rank = {k: i for i, k in enumerate(lead)}
    preferred = sorted(
        counts,
        key=lambda k: (rank.get(k, len(lead)), not k.startswith("test_"), -counts[k], k),
    )
    return preferred[:most]


def _header(key: str) -> str:
    # Words wrap where underscores cannot: TEST_BALANCED_ACCURACY would fold mid-word.
    return key.upper().replace("_", " ")


def _params(run: Run) -> str:
    """A trial's own params; for a search, the best trial's (`best.*`)."""
    if run.parent_id:
        params = run.params
    else:
        params = {k[5:]: v for k, v in run.params.items() if k.startswith("best.")}
    return " ".join(
        str(v).rsplit(".", 1)[-1] if k == "estimator" else f"{k}={_cell(v)}"
        for k, v in params.items()
    )


def _fmt(value: float | None) -> str:
    """Four decimals, so that a column of scores lines up (1.0000 next to 0.9796)."""
    if value is None:
        return ""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.4g}"


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
        _output.table(
            "Params",
            [_output.ident("PARAM", min_width=16), "VALUE"],
            [(k, v) for k, v in run.params.items()],
        )
    )
    parts.append(
        _output.table(
            "Metrics (latest)",
            [_output.ident("METRIC", min_width=16), Column("VALUE", justify="right")],
            [(k, _fmt(v)) for k, v in sorted(run.metrics.items())],
        )
    )
    if run.tags:
        parts.append(_output.table("Tags", [_output.ident("TAG"), "VALUE"], list(run.tags.items())))
    if run.artifacts:
        parts.append(
            _output.table(
                "Artifacts",
                [_output.ident("NAME"), _output.ident("DIGEST"), Column("BYTES", justify="right")],
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
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN", help="Two or more run ids.")],
    all_: Annotated[
        bool, typer.Option("--all", help="Show every param, not only those that differ.")
    ] = False,
    plot: Annotated[
        Path,
        typer.Option("--plot", metavar="PATH", help="Where to save the metric-history plot."),
    ] = Path("runs-compare.png"),
    json: _output.JsonFlag = False,
) -> None:
    """The params that differ (--all: every one), the metrics side by side, and a plot of the
    metric histories; for searches without step histories, each trial's CV score."""
    with _output.workspace(ctx) as ws:
        runs = [get_run(ws, r) for r in run_ids]
        saved = plot_histories(ws, runs, plot)
        trials = {
            r.id: search_runs(ws, parent_id=r.id, limit=None, order_by="started_at") for r in runs
        }
    names = [r.name or r.id for r in runs]
    heads = [r.id if names.count(n) > 1 else n for r, n in zip(runs, names, strict=True)]
    values = [{**r.params, **({"seed": r.seed} if r.seed is not None else {})} for r in runs]
    params = sorted({k for v in values for k in v})
    differ = [k for k in params if len({repr(v.get(k)) for v in values}) > 1]
    metrics = sorted({k for r in runs for k in r.metrics})
    parts: list[RenderableType] = [
        _output.table(
            "Params" if all_ else "Params that differ",
            [_output.ident("PARAM", min_width=16), *heads],
            [
                (
                    k,
                    *[
                        Text(_cell(v.get(k)), style="bold yellow" if k in differ else "")
                        for v in values
                    ],
                )
                for k in (params if all_ else differ)
            ],
        )
        if differ or all_
        else Text("Every param is the same in these runs.")
    ]
    same = len(params) - len(differ)
    if same and not all_ and differ:
        are = "param is" if same == 1 else "params are"
        parts.append(Text(f"{same} more {are} the same in every run (--all).", style="dim"))
    parts.append(
        _output.table(
            "Metrics (latest)",
            [_output.ident("METRIC", min_width=16), *[Column(h, justify="right") for h in heads]],
            [(k, *[_fmt(r.metrics.get(k)) for r in runs]) for k in metrics],
        )
    )
    cv = None if saved else _cv_table(runs, trials, heads)
    if cv is not None:
        parts.append(cv)
    parts.append(
        Text(
            f"metric histories: {saved}"
            if saved
            else "no metric has more than one step: nothing to plot",
            style="dim",
        )
    )
    _output.emit(
        {
            "runs": runs,
            "differing_params": differ,
            "trials": {k: [_trial_summary(t) for t in v] for k, v in trials.items() if v},
            "plot": str(saved) if saved else None,
        },
        json_mode=json,
        table=Group(*parts),
    )


def _cv_table(
    runs: list[Run], trials: dict[str, list[Run]], heads: list[str]
) -> RenderableType | None:
    """Each search's trials by number: the CV score (± its spread over the folds)."""
    if not any(trials.values()):
        return None
    by_number: dict[str, dict[str, Run]] = {}
    for r in runs:
        for t in trials[r.id]:
            by_number.setdefault(t.tags.get("trial", t.name or t.id), {})[r.id] = t
    rows = []
    for number in sorted(by_number, key=lambda n: (len(n), n)):
        cells = []
        for r in runs:
            trial = by_number[number].get(r.id)
            cells.append(_cv_cell(trial, r.params.get("metric")) if trial else "")
        rows.append((number, *cells))
    return _output.table(
        "CV score per trial (± over the folds)",
        [Column("TRIAL", justify="right"), *[_output.ident(h) for h in heads]],
        rows,
    )


def _cv_cell(trial: Run, metric: object) -> str:
    key = f"cv_{metric}" if isinstance(metric, str) else None
    if key is None or key not in trial.metrics:
        key = next(
            (
                k
                for k in trial.metrics
                if k.startswith("cv_")
                and k[3:].isidentifier()
                and not k.endswith(("_std", "_fold"))
            ),
            None,
        )
    if key is None:
        return trial.status.value
    score = f"{trial.metrics[key]:.4f}"
    std = trial.metrics.get(f"{key}_std")
    return score + (f" ± {std:.4f}" if std is not None else "")


def _trial_summary(trial: Run) -> dict[str, object]:
    return {
        "id": trial.id,
        "trial": trial.tags.get("trial"),
        "params": trial.params,
        "metrics": trial.metrics,
    }


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
