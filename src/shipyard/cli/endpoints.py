"""`shipyard endpoints`: create endpoints and route their traffic (A/B, shadow, canary)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Invalid
from shipyard.core.records import Endpoint
from shipyard.serve.endpoints import (
    advance_canary,
    create_endpoint,
    get_endpoint,
    list_endpoints,
    promote_canary,
    rollback_canary,
    set_champion,
    set_route,
    stop_canary,
)
from shipyard.serve.router import Router

app = typer.Typer(
    help="Create endpoints and route their traffic: champion, challengers, shadows, canary.",
    no_args_is_help=True,
)

_CANARY_ACTIONS = ("advance", "rollback", "promote", "stop")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name, e.g. credit.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            metavar="REF",
            help="Its champion: NAME@ALIAS follows the alias when it moves; NAME@N stays on "
            "that version.",
        ),
    ],
    json: _output.JsonFlag = False,
) -> None:
    """Create an endpoint served by one model version (its champion)."""
    with _output.workspace(ctx) as ws:
        endpoint = create_endpoint(ws, name, model)
    _done(
        endpoint,
        f"endpoint {endpoint.name} serves {endpoint.champion_ref} ({_follows(endpoint)})",
        json,
    )


@app.command("ls")
def ls(ctx: typer.Context, wide: _output.WideFlag = False, json: _output.JsonFlag = False) -> None:
    """Every endpoint with its champion, challengers, shadows, canary and flags."""
    with _output.workspace(ctx) as ws:
        found = list_endpoints(ws)
    table: RenderableType
    if not found:
        table = Text("No endpoints yet. `shipyard endpoints create NAME --model REF` makes one.")
    else:
        heads: list[Any] = [
            _output.ident("NAME"),
            _output.ident("CHAMPION"),
            "CHALLENGERS",
            "SHADOWS",
            "CANARY",
            "FLAGS",
            "REV",
            _output.when_column("UPDATED (UTC)"),
        ]
        rows = [
            [
                e.name,
                e.champion_ref + (f" (@{_alias(e)})" if e.champion_follows else ""),
                ", ".join(f"{c.ref} {c.weight:g}%" for c in e.challengers),
                ", ".join(s.ref for s in e.shadows),
                _canary(e),
                ", ".join(f"{k}={v}" for k, v in sorted(e.flags.items())),
                e.revision,
                e.updated_at,
            ]
            for e in found
        ]
        # Roles no endpoint has take no room, so the champion's ref stays whole at 80 columns.
        keep = [i for i in range(len(heads)) if i not in (2, 3, 4, 5) or any(r[i] for r in rows)]
        table = _output.table(
            "Endpoints", [heads[i] for i in keep], [[r[i] for i in keep] for r in rows]
        )
    _output.emit(found, json_mode=json, table=table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    json: _output.JsonFlag = False,
) -> None:
    """An endpoint's routing and the share of traffic each version gets."""
    with _output.workspace(ctx) as ws:
        e = get_endpoint(ws, name)
    loop = (
        f"paused ({e.loop_paused})"
        if e.loop_paused
        else "on here (it acts under `serve --loop` and `loop run-once`)"
    )
    head = Text.assemble(
        (e.name, "bold"),
        f"  revision {e.revision}  updated {_output.when(e.updated_at)} UTC by {e.updated_by}\n",
        f"created {_output.when(e.created_at)} UTC by {e.created_by}\n",
        f"champion → {e.champion_ref} ({_follows(e)})\n",
        f"retrain loop: {loop}",
    )
    shares = Router(e).shares()
    rows: list[tuple[object, ...]] = [
        (e.champion_ref, "champion", f"{shares.get(e.champion_id, 0):g}%", "")
    ]
    rows += [(c.ref, "challenger", f"{shares.get(c.version_id, 0):g}%", "") for c in e.challengers]
    rows += [(s.ref, "shadow", "copy", "") for s in e.shadows]
    c = e.canary
    if c is not None and c.state == "running":
        detail = f"step {c.step + 1} of {','.join(map(str, c.steps))}%"
        if c.guard:
            detail += "; guard " + " ".join(f"{k}={v:g}" for k, v in c.guard.items())
        rows.append((c.ref, "canary", f"{shares.get(c.version_id, 0):g}%", detail))
    if e.pinned is not None:
        rows.append((e.pinned.ref, "pinned", "100%", "the pin flag overrides the route"))
    traffic = _output.table("Traffic", [_output.ident("VERSION"), "ROLE", "SHARE", "DETAIL"], rows)
    parts: list[RenderableType] = [head, traffic]
    if c is not None and c.state != "running":  # over: history, not a live role
        why = f" ({c.reason})" if c.reason else ""
        parts.append(Text(f"last canary: {c.ref} {c.state.replace('_', ' ')}{why}", style="dim"))
    flags = Text(
        "flags: " + (", ".join(f"{k}={v}" for k, v in sorted(e.flags.items())) or "-"),
        style="dim",
    )
    _output.emit(e, json_mode=json, table=Group(*parts, flags))


@app.command("route")
def route(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    challenger: Annotated[
        list[str] | None,
        typer.Option(
            "--challenger",
            metavar="REF:WEIGHT",
            help="A version and its percent of traffic, e.g. credit-risk@4:10 (repeat).",
        ),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option("--shadow", metavar="REF", help="A version that sees a copy (repeat)."),
    ] = None,
    canary: Annotated[
        str | None, typer.Option("--canary", metavar="REF", help="A version to ramp up.")
    ] = None,
    steps: Annotated[
        str, typer.Option("--steps", metavar="P,P,...", help="Canary traffic percents.")
    ] = "10,50,100",
    guard: Annotated[
        list[str] | None,
        typer.Option(
            "--guard",
            metavar="KEY=VALUE",
            help="Canary limit: error_rate, p99_ms, agreement, min_requests (repeat).",
        ),
    ] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Set the route besides the champion; what is not given is taken off the route."""
    parsed_challengers = [_challenger(text) for text in challenger or []]
    with _output.workspace(ctx) as ws:
        endpoint = set_route(
            ws,
            name,
            challengers=parsed_challengers,
            shadows=shadow or [],
            canary=canary,
            steps=_steps(steps),
            guard=_guard(guard or []),
        )
    _done(endpoint, _summary(endpoint), json)


@app.command("champion")
def champion(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    ref: Annotated[
        str,
        typer.Argument(help="The new champion: NAME@N (pinned) or NAME@ALIAS (follows it)."),
    ],
    json: _output.JsonFlag = False,
) -> None:
    """Make a version the endpoint's champion."""
    with _output.workspace(ctx) as ws:
        endpoint = set_champion(ws, name, ref)
    message = (
        f"endpoint {endpoint.name}: champion is {endpoint.champion_ref} ({_follows(endpoint)})"
    )
    _done(endpoint, message, json)


@app.command("canary")
def canary_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    action: Annotated[str, typer.Argument(help="advance, rollback, promote or stop.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit log).")
    ] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Move the canary on by hand: advance a step, roll back, promote to champion, or stop."""
    if action not in _CANARY_ACTIONS:
        raise Invalid(f"canary action {action!r} is not one of {', '.join(_CANARY_ACTIONS)}.")
    with _output.workspace(ctx) as ws:
        if action == "advance":
            endpoint = advance_canary(ws, name)
        elif action == "promote":
            endpoint = promote_canary(ws, name)
        elif action == "rollback":
            endpoint = rollback_canary(ws, name, reason or f"rolled back by hand by {ws.actor}")
        else:
            endpoint = stop_canary(ws, name, reason)
    _done(endpoint, _summary(endpoint), json)


# -- parsing and rendering ----------------------------------------------------------------------


def _challenger(text: str) -> tuple[str, float]:
    ref, sep, weight = text.rpartition(":")
    try:
        if not sep or not ref:
            raise ValueError
        return ref, float(weight)
    except ValueError:
        raise Invalid(
            f"--challenger {text!r} is not REF:WEIGHT; give the version and its percent of "
            "traffic, e.g. --challenger credit-risk@4:10."
        ) from None


def _steps(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise Invalid(
            f"--steps {text!r} is not a comma-separated list of percents, e.g. 10,50,100."
        ) from None


def _guard(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise Invalid(
                f"--guard {item!r} is not KEY=NUMBER, e.g. --guard error_rate=0.01."
            ) from None
    return out


def _canary(e: Endpoint) -> str:
    """The live canary (a finished one is history: `endpoints show` says how it ended)."""
    c = e.canary
    if c is None or c.state != "running":
        return ""
    return f"{c.ref} {c.percent}% (step {c.step + 1}/{len(c.steps)})"


def _alias(e: Endpoint) -> str:
    return (e.champion_follows or "").partition("@")[2]


def _follows(e: Endpoint) -> str:
    """Whether the champion follows an alias, in words."""
    if e.champion_follows:
        return f"follows alias {e.champion_follows}"
    return "pinned: moving an alias does not move it"


def _summary(e: Endpoint) -> str:
    shares = Router(e).shares()
    parts = [f"{e.champion_ref} {shares.get(e.champion_id, 0):g}%"]
    parts += [f"{c.ref} {shares.get(c.version_id, 0):g}%" for c in e.challengers]
    if _canary(e):
        parts.append(f"canary {_canary(e)}")
    parts += [f"shadow {s.ref}" for s in e.shadows]
    if e.pinned is not None:
        parts.append(f"pinned to {e.pinned.ref}")
    return f"endpoint {e.name} (revision {e.revision}): " + ", ".join(parts)


def _done(endpoint: Endpoint, message: str, json: bool) -> None:
    if json:
        _output.print_json(endpoint)
    else:
        _output.console().print(message, markup=False)
