"""`shipyard serve`: serve every endpoint of the workspace over HTTP (uvicorn)."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli import _output
from shipyard.core.errors import Invalid
from shipyard.serve.endpoints import list_endpoints
from shipyard.serve.limits import DEFAULT_MAX_BODY

_LEVELS = ("debug", "info", "warning", "error")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free one).")
    ] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes sharing the port.")
    ] = 1,
    spec: Annotated[
        Path,
        typer.Option("--spec", help="Project spec whose `serve:` section gives the defaults."),
    ] = Path("shipyard.yaml"),
    max_batch: Annotated[
        int | None, typer.Option("--max-batch", min=1, help="Rows per micro-batch (spec: 64).")
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(
            "--max-wait-ms",
            min=0,
            help="Longest a batch waits for requests already being read (spec: 2).",
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1, help="Largest request body in bytes (413 above).")
    ] = DEFAULT_MAX_BODY,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Most rows per request (422 above).")
    ] = 10_000,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0, help="Requests a second per token (429 above; 0: no limit)."),
    ] = 1000.0,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    loop: Annotated[
        bool,
        typer.Option(
            "--loop/--no-loop",
            help="Also run the retrain loop: retrain when the spec's retrain.when holds and roll "
            "the result out (shadow, canary, champion) without asking. Off unless given.",
        ),
    ] = False,
    loop_interval: Annotated[
        float, typer.Option("--loop-interval", min=1, help="Seconds between loop turns.")
    ] = 60.0,
) -> None:
    """Serve every endpoint over HTTP: /v1 predict and feedback, OIP v2, metrics, health."""
    if log_level not in _LEVELS:
        raise Invalid(f"--log-level {log_level!r}: choose one of {', '.join(_LEVELS)}.")
    from shipyard.core.spec import ServeSpec, load_spec  # YAML and the spec models: only here

    project = load_spec(spec) if spec.is_file() else None
    defaults = project.serve if project is not None else ServeSpec()
    if loop and project is None:
        raise Invalid(f"--loop needs the project spec; {str(spec)!r} does not exist.")
    with _output.workspace(ctx) as ws:  # fails here, clearly, if there is no workspace
        endpoints = list_endpoints(ws)
    names = [e.name for e in endpoints]
    settings = _output.settings(ctx)
    options: dict[str, Any] = {
        "max_batch": max_batch or defaults.max_batch,
        "max_wait_ms": defaults.max_wait_ms if max_wait_ms is None else max_wait_ms,
        "max_body": max_body,
        "max_rows": max_rows,
        "rate": rate or None,
    }
    _logging(log_level)
    from shipyard.api.app import create_app  # the control plane beside every endpoint
    from shipyard.serve.server import run  # uvicorn and starlette load only for this command

    err = _output.err_console()

    def on_listen(url: str) -> None:
        served = ", ".join(names) if names else "none yet (new ones are picked up live)"
        sys.stdout.write(f"Shipyard serving on {url}\n")
        sys.stdout.flush()
        err.print(
            f"endpoints: {served}; workers {workers}, max_batch {options['max_batch']}, "
            f"max_wait {options['max_wait_ms']:g} ms. Ctrl-C stops (in-flight requests finish).",
            markup=False,
            highlight=False,
        )

    scheduler = None
    if loop and project is not None:
        from shipyard.loop.runner import LoopProcess

        scheduler = LoopProcess(
            settings,
            project,
            interval=loop_interval,
            setup_logging=functools.partial(_logging, log_level),
        ).start()
        err.print(
            _loop_banner(project, endpoints, loop_interval, scheduler.pid),
            markup=False,
            highlight=False,
            style="bold yellow",
        )
    elif project is not None and project.retrain.when:
        err.print(
            "retrain loop: off (the spec has retrain.when; `shipyard serve --loop` runs it, or "
            "`shipyard loop run-once` from cron).",
            markup=False,
            highlight=False,
        )
    try:
        run(
            settings,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level if log_level in ("debug", "warning", "error") else "warning",
            app_options={**options, "spec": project},  # the API's monitor and loop judge by it
            on_listen=on_listen,
            factory=create_app,
        )
    finally:
        if scheduler is not None:
            scheduler.stop()


def _loop_banner(project: Any, endpoints: list[Any], interval: float, pid: int | None) -> str:
    """What the loop will do on its own, said before it does it (lines fit 80 columns)."""
    mine = [e for e in endpoints if e.champion_ref.split("@")[0] == project.project]
    active = [e.name for e in mine if e.loop_paused is None]
    paused = [e.name for e in mine if e.loop_paused is not None]
    policies = [_policy(p) for p in project.retrain.when]
    when = (
        ", ".join(policies[:-1]) + " or " + policies[-1]
        if len(policies) > 1
        else (policies[0] if policies else "")
    )
    lines = [
        f"RETRAIN LOOP ON (process {pid}, a turn every {interval:g} s), project "
        f"{project.project!r}",
        f"endpoints: {', '.join(active) or 'none yet'}",
        f"When {when} holds, it retrains and, by itself,"
        if when
        else "No retrain.when policy: it only carries on rollouts,",
        "rolls the new model out: shadow, canary, then champion.",
        "Pause one endpoint: shipyard loop pause NAME. Off for all: serve without --loop.",
    ]
    if paused:
        lines.append(f"Paused: {', '.join(paused)} (shipyard loop resume NAME).")
    return "\n".join(lines)


def _policy(policy: Any) -> str:
    """A `retrain.when` entry in a few words: drift, decay, every 7d."""
    if isinstance(policy, str):
        return policy
    dumped: dict[str, Any] = policy.model_dump(exclude_none=True)
    return ", ".join(k if isinstance(v, dict) else f"{k} {v}" for k, v in dumped.items())


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("shipyard")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
