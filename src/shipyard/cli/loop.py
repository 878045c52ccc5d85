"""`shipyard loop`: run the retrain policies, see where each rollout stands, stop one, and
pause or resume the loop for one endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.records import Endpoint
from shipyard.loop.rollouts import list_rollouts

app = typer.Typer(
    help="The closed loop: retrain when the monitor says so, then shadow, canary and promote.",
    no_args_is_help=True,
)


@app.command("run-once")
def run_once_command(
    ctx: typer.Context,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Only these endpoints (default: the project's)."),
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Search trials for a retrain (spec).")
    ] = None,
    spec: Annotated[Path, typer.Option("--spec", help="The project spec.")] = Path("shipyard.yaml"),
    json: _output.JsonFlag = False,
) -> None:
    """Evaluate every retrain policy and advance every rollout now (cron-friendly)."""
    from shipyard.core.spec import load_spec
    from shipyard.loop.runner import run_once  # retraining: the model libraries load only here

    project = load_spec(spec)
    total = trials or project.train.search.trials
    with _output.workspace(ctx) as ws, _output.progress(unit="trials", disable=json) as bar:
        task = bar.add_task("watching", total=None)

        def on_trial(result: Any, done: int, _total: int, best: Any) -> None:
            shown = f"best {best.score:.4f}" if best else "no trial succeeded yet"
            bar.update(
                task,
                total=total,
                completed=done,
                description=f"retrain: trial {done}/{total}, {shown}",
            )

        turns = run_once(ws, project, endpoints=endpoint, trials=trials, on_trial=on_trial)
    data = [
        {
            "endpoint": t.endpoint,
            "action": t.action,
            "reason": t.reason,
            "rollout": t.rollout,
        }
        for t in turns
    ]
    table: RenderableType = (
        _output.table(
            "Loop",
            [_output.ident("ENDPOINT"), "ACTION", "STAGE", "REASON"],
            [(t.endpoint, t.action, t.rollout.stage if t.rollout else "", t.reason) for t in turns],
        )
        if turns
        else Text(f"No endpoint serves a version of {project.project!r}; nothing to watch.")
    )
    _output.emit(data, json_mode=json, table=table)


@app.command("status")
def status(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Argument(help="One endpoint (default: all).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rollouts to list.")] = 10,
    json: _output.JsonFlag = False,
) -> None:
    """Where each rollout stands and why, with the latest one's timeline."""
    with _output.workspace(ctx) as ws:
        if endpoint is not None:
            from shipyard.serve.endpoints import get_endpoint

            get_endpoint(ws, endpoint)  # NotFound names the known endpoints
        found = list_rollouts(ws, endpoint, limit=limit)
    table: RenderableType
    if not found:
        table = Text("No rollouts yet: `shipyard loop run-once` starts one when a policy holds.")
    else:
        summary = _output.table(
            "Rollouts",
            [
                _output.ident("ID", min_width=24),
                _output.ident("ENDPOINT"),
                "STAGE",
                "TRIGGER",
                _output.ident("CHAMPION"),
                _output.ident("CANDIDATE"),
                _output.when_column("UPDATED (UTC)"),
            ],
            [
                (
                    r.id,
                    r.endpoint,
                    Text(r.stage, style=_STYLE.get(r.stage, "")),
                    r.trigger,
                    r.champion_ref,
                    r.candidate_ref,
                    r.updated_at,
                )
                for r in found
            ],
        )
        latest = found[0]
        timeline = _output.table(
            f"Timeline of {latest.id} ({latest.endpoint})",
            [_output.when_column("AT (UTC)"), "STAGE", "DECISION"],
            [(e.at, e.stage, e.message) for e in latest.events],
        )
        table = Group(summary, timeline)
    _output.emit(found, json_mode=json, table=table)


@app.command("stop")
def stop(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose rollout to halt.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept and audited).")] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Halt the endpoint's rollout (the champion stays), or with none, pause the loop there."""
    from shipyard.loop.rollout import stop as stop_rollout  # NumPy and the registry: only here

    with _output.workspace(ctx) as ws:
        done = stop_rollout(ws, endpoint, reason)
    if isinstance(done, Endpoint):
        _output.emit(done, json_mode=json, table=_paused(done, "no rollout was in progress; "))
    else:
        _output.emit(done, json_mode=json, table=Text(f"{done.id}: {done.reason}"))


@app.command("pause")
def pause(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint the loop must leave alone.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept and audited).")] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Switch the loop off for one endpoint: still watched, not retrained; rollouts wait."""
    from shipyard.serve.endpoints import pause_loop

    with _output.workspace(ctx) as ws:
        found = pause_loop(ws, endpoint, reason)
    _output.emit(found, json_mode=json, table=_paused(found, ""))


@app.command("resume")
def resume(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint the loop may act on again.")],
    json: _output.JsonFlag = False,
) -> None:
    """Switch the retrain loop back on for one endpoint."""
    from shipyard.serve.endpoints import resume_loop

    with _output.workspace(ctx) as ws:
        found = resume_loop(ws, endpoint)
    message = (
        f"retrain loop on for {found.name}: the next turn may retrain it and roll the result out."
    )
    _output.emit(found, json_mode=json, table=Text(message))


def _paused(endpoint: Endpoint, prefix: str) -> Text:
    return Text(
        f"{prefix}retrain loop paused for {endpoint.name} ({endpoint.loop_paused}): no retrain "
        f"and no rollout step until `shipyard loop resume {endpoint.name}`."
    )


_STYLE = {
    "promoted": "green",
    "rejected": "yellow",
    "rolled_back": "red",
    "failed": "red",
    "stopped": "yellow",
}
