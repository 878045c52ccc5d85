"""The root `shipyard` command, its global options, and the one exception → exit code mapping.

Sub-apps register here, one line each:

    app.add_typer(tokens.app, name="tokens")

Exit codes come from the exception class (`ShipyardError.exit_code`, see core/errors.py), and
are read only in `main()`: 0 ok, 1 internal error, 2 usage or invalid input, 3 not found or
not initialised, 4 conflict, 5 unauthorised/forbidden, 6 validation failed, 7 integrity,
8 unavailable, 9 storage full, 130 interrupted.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import typer
from rich.text import Text
from rich.traceback import Traceback
from typer.core import TyperArgument, TyperGroup, TyperOption

from shipyard.cli import (
    _output,
    alerts,
    audit,
    data,
    endpoints,
    flags,
    loop,
    models,
    monitor,
    runs,
    tokens,
    workspace,
)
from shipyard.cli._output import State
from shipyard.cli.predict import predict
from shipyard.cli.serve import serve
from shipyard.cli.train import train
from shipyard.core.errors import ShipyardError


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # its name already says what it is (REF, FILE); `<str>` adds nothing


# Placeholders of options that name none themselves, by annotation.
_WORDS: dict[object, str] = {int: "INTEGER", float: "NUMBER", Path: "PATH"}


def _placeholders(command: Any) -> Any:
    """Words for every placeholder in --help (TEXT, PATH, REF), never Typer's `<list[str]>`.

    An argument shows its metavar or its name in capitals; an option its metavar, or a word
    for its type; a flag nothing. Applied to the command tree `main()` runs."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
            param.metavar = param.metavar or (param.name or "value").upper()
            if param.nargs != 1:  # Typer adds the "..." itself: KEY..., not KEY......
                param.metavar = param.metavar.removesuffix("...")
        elif isinstance(param, TyperOption) and param.metavar is None:
            described = param.type_descriptor
            if param.is_flag or param.count:
                param.metavar = ""
            elif not described.is_choice:
                element = get_args(described.annotation) or (described.annotation,)
                param.metavar = "PATH" if described.is_path else _WORDS.get(element[0], "TEXT")
    help_option = command.get_help_option(typer.Context(command))  # made once, then kept
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _placeholders(sub)
    return command


class _Interrupted(Exception):
    """Ctrl-C inside a command; Click would otherwise turn it into a silent exit 130."""


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted from exc


app = typer.Typer(
    name="shipyard",
    cls=_Group,
    help="Take a model from a notebook to a secured, monitored production service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() reports errors; never dump locals (secrets)
)

app.command()(workspace.init)
app.add_typer(tokens.app, name="tokens")
app.add_typer(audit.app, name="audit")
app.add_typer(data.app, name="data")
app.command()(train)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(flags.app, name="flags")
app.add_typer(monitor.app, name="monitor")
app.add_typer(alerts.app, name="alerts")
app.add_typer(loop.app, name="loop")
app.command()(predict)
app.command()(serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {importlib.metadata.version('shipyard')}")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            metavar="PATH",
            help="Workspace directory; overrides SHIPYARD_HOME (default ./.shipyard).",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback when a command fails.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    state = _output.state_of(ctx)
    state.home = home
    state.debug = debug


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `shipyard` console script: run the app, map errors to exit codes.

    Click keeps handling its own usage errors (exit 2), `--help` and `--version`; everything a
    command raises propagates to here.
    """
    state = State()
    command = _placeholders(typer.main.get_command(app))
    bound = _output.current_state.set(state)
    try:
        command.main(args=argv, prog_name="shipyard", obj=state)
    except ShipyardError as exc:
        _report(state, exc, exc.to_dict())
        sys.exit(exc.exit_code)
    except (_Interrupted, KeyboardInterrupt):
        _output.err_console().print("interrupted", style="red")
        sys.exit(130)
    except Exception as exc:
        hint = "" if state.debug else "; re-run as `shipyard --debug ...` for the traceback"
        message = f"unexpected {type(exc).__name__}: {exc}{hint}"
        _report(state, exc, {"error": "InternalError", "message": message, "details": {}})
        sys.exit(1)
    finally:
        _output.current_state.reset(bound)
    sys.exit(0)  # not reached: Click exits itself in standalone mode


def _report(state: State, exc: BaseException, payload: dict[str, Any]) -> None:
    err = _output.err_console()
    if state.debug:
        err.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
    if state.json:
        _output.print_json(payload)
    else:
        err.print(Text(f"error: {payload['message']}", style="red"), soft_wrap=True)
