"""`shipyard flags`: switch an endpoint's behaviour or version without a restart."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Invalid
from shipyard.core.records import Endpoint
from shipyard.serve.endpoints import FLAGS, get_endpoint, set_flags

app = typer.Typer(
    help="Endpoint flags: explain, log_inputs, strict_ranges (on|off), extra_columns "
    "(refuse|ignore) and pin (a version).",
    no_args_is_help=True,
)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    pairs: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="e.g. explain=on pin=credit@2")
    ],
    json: _output.JsonFlag = False,
) -> None:
    """Set flags; running servers pick them up within a second."""
    updates: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise Invalid(
                f"{pair!r} is not KEY=VALUE; e.g. `shipyard flags set {name} explain=on`. "
                f"The flags are {', '.join(sorted(FLAGS))}."
            )
        updates[key.strip()] = value.strip()
    with _output.workspace(ctx) as ws:
        endpoint = set_flags(ws, name, updates)
    _done(endpoint, json)


@app.command("unset")
def unset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Flags to remove.")],
    json: _output.JsonFlag = False,
) -> None:
    """Remove flags (back to the default behaviour; `unset NAME pin` un-pins)."""
    with _output.workspace(ctx) as ws:
        endpoint = set_flags(ws, name, dict.fromkeys(keys))
    _done(endpoint, json)


@app.command("ls")
def ls(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint.")],
    json: _output.JsonFlag = False,
) -> None:
    """An endpoint's flags."""
    with _output.workspace(ctx) as ws:
        endpoint = get_endpoint(ws, name)
    _output.emit(endpoint.flags, json_mode=json, table=_table(endpoint))


def _table(endpoint: Endpoint) -> RenderableType:
    if not endpoint.flags:
        return Text(
            f"Endpoint {endpoint.name} has no flags set (known: {', '.join(sorted(FLAGS))})."
        )
    return _output.table(
        f"Flags of {endpoint.name}",
        [_output.ident("FLAG"), "VALUE"],
        sorted(endpoint.flags.items()),
    )


def _done(endpoint: Endpoint, json: bool) -> None:
    if json:
        _output.print_json(endpoint)
        return
    flags = ", ".join(f"{k}={v}" for k, v in sorted(endpoint.flags.items())) or "none"
    _output.console().print(
        f"endpoint {endpoint.name} (revision {endpoint.revision}) flags: {flags}", markup=False
    )
