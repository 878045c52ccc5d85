"""What every command shares: per-invocation state, the workspace, JSON, tables, progress.

Human output is Rich on stdout; errors, progress bars and notes go to stderr, so that
`--json` leaves stdout as one JSON document a script can parse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from shipyard.core.records import Token
from shipyard.core.settings import Settings
from shipyard.store.workspace import Workspace


@dataclass
class State:
    """Options that hold for one invocation: set by the root callback and `--json` flags."""

    home: Path | None = None
    debug: bool = False
    json: bool = False


def state_of(ctx: typer.Context) -> State:
    return ctx.find_root().ensure_object(State)


def _json_flag(ctx: typer.Context, value: bool) -> bool:
    # Recorded on the shared state so that `main()` also reports errors as JSON.
    if value:
        state_of(ctx).json = True
    return value


JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout (errors too) instead of tables.",
        callback=_json_flag,
        is_eager=True,
    ),
]


# -- consoles -----------------------------------------------------------------------------------


def console() -> Console:
    """Rich console on stdout (resolved at write time, so test runners can capture it)."""
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


# -- workspace ----------------------------------------------------------------------------------


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings for this invocation: `--home` beats SHIPYARD_HOME, which beats `./.shipyard`."""
    return Settings.load(home=state_of(ctx).home, **overrides)


@contextmanager
def workspace(ctx: typer.Context) -> Iterator[Workspace]:
    """The initialised workspace at `--home`, closed afterwards."""
    ws = Workspace.open(settings(ctx))
    try:
        yield ws
    finally:
        ws.close()


# -- data ---------------------------------------------------------------------------------------


def plain(data: Any) -> Any:
    """Plain JSON-able data: pydantic models dumped in JSON mode, containers walked."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", by_alias=True)
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [plain(v) for v in data]
    if isinstance(data, datetime):
        return data.isoformat()
    if isinstance(data, Enum):
        return data.value
    if isinstance(data, Path):
        return str(data)
    return data


def print_json(data: Any) -> None:
    text = json.dumps(plain(data), indent=2, ensure_ascii=False, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit(data: Any, *, json_mode: bool, table: RenderableType | None = None) -> None:
    """Print `data` as JSON for scripts, or its human rendering (`table`) for people."""
    if json_mode or table is None:
        print_json(data)
    else:
        console().print(table)


def table(
    title: str | None, columns: Sequence[str | Column], rows: Sequence[Sequence[Any]]
) -> Table:
    """A compact Rich table; cells are plain text (None is blank), folded rather than cut."""
    heads = [Column(c) if isinstance(c, str) else c for c in columns]
    for head in heads:
        head.overflow = "fold"  # long ids and paths stay whole (over two lines) at 80 columns
    out = Table(
        *heads,
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    for row in rows:
        out.add_row(*(cell if isinstance(cell, Text) else Text(_cell(cell)) for cell in row))
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def when(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the minute (JSON output keeps full precision)."""
    return "" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def show_secret(token: Token, secret: str) -> None:
    """Print a new token's secret: the only time anyone sees it."""
    out = console()
    out.print(f"Token {token.id} ({token.name!r}, role {token.role.value}):", markup=False)
    out.print(Text("  " + secret, style="bold green"), soft_wrap=True)
    out.print(
        "This secret is not stored and cannot be shown again: copy it now (for example into "
        "a password manager, or SHIPYARD_TOKEN for clients). If it is lost, create a new "
        "token and revoke this one.",
        style="yellow",
        markup=False,
    )


# -- progress -----------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="cyan")


def progress(*, unit: str = "rows", disable: bool = False) -> Progress:
    """A progress display on stderr that counts `unit`s read (total optional).

    with progress(disable=json_mode) as bar:
        task = bar.add_task("reading loans.csv", total=None)
        bar.advance(task, len(batch))
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} " + unit),
        _RateColumn(unit),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
        disable=disable,
    )
