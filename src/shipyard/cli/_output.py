"""What every command shares: per-invocation state, the workspace, JSON, tables, progress.

Human output is Rich on stdout; errors, progress bars and notes go to stderr, so that
`--json` leaves stdout as one JSON document a script can parse.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderableType, RenderResult
from rich.measure import Measurement
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
    wide: bool = False


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


def _wide_flag(ctx: typer.Context, value: bool) -> bool:
    if value:
        state_of(ctx).wide = True
    return value


WideFlag = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Show ids, names and hashes whole (lines may run past the terminal's width).",
        callback=_wide_flag,
    ),
]


def _wide() -> bool:
    state = current_state.get()
    return state is not None and state.wide


# The invocation's state, for code that renders without a Click context at hand (`emit`);
# `app.main()` sets it for the length of one command.
current_state: ContextVar[State | None] = ContextVar("shipyard_cli_state", default=None)


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
    """Plain JSON-able data: pydantic models dumped in JSON mode, containers walked, and NaN
    and ±infinity as the strings "NaN", "Infinity", "-Infinity" (JSON has neither; the REST
    API writes them the same way)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else _NON_FINITE[str(data)]
    if isinstance(data, BaseModel):
        return plain(data.model_dump(mode="json", by_alias=True))
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


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def print_json(data: Any) -> None:
    text = json.dumps(plain(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit(data: Any, *, json_mode: bool, table: RenderableType | None = None) -> None:
    """Print `data` as JSON for scripts, or its human rendering (`table`) for people."""
    if json_mode or table is None:
        print_json(data)
        return
    out = console()
    if _wide():  # as wide as the widest line needs, so nothing is cut
        need = out.measure(table, options=out.options.update_width(1_000_000)).maximum
        out = Console(highlight=False, width=max(out.width, need))
    out.print(table)


@dataclass
class _IdColumn(Column):
    floor: int = 8  # how far a terminal too narrow for every minimum may cut it


def ident(
    header: str, *, min_width: int = 12, floor: int = 8, justify: JustifyMethod = "left"
) -> Column:
    """A column of identifiers (ids, refs, hashes, names): never wrapped mid-token.

    When the terminal is too narrow the value is cut with an ellipsis, not below `min_width`
    (below `floor` when even the minimums do not fit); `--wide` shows it whole.
    """
    return _IdColumn(
        header,
        no_wrap=True,
        overflow="ellipsis",
        min_width=min_width,
        justify=justify,
        floor=floor,
    )


def when_column(header: str) -> Column:
    """A column of `when()` timestamps: whole, on one line."""
    return ident(header, min_width=16, floor=16)


def table(
    title: str | None, columns: Sequence[str | Column], rows: Sequence[Sequence[Any]]
) -> RenderableType:
    """A compact Rich table; cells are plain text (None is blank).

    Text columns named by a string fold onto more lines when the terminal is narrow (a long
    path or message folds rather than disappears); a `Column` given keeps its own overflow;
    `ident()` columns stay on one line (see `_FittedTable` for how the width is shared).
    """
    heads = [Column(c, overflow="fold") if isinstance(c, str) else c for c in columns]
    out = Table(
        *heads,
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,  # flush left, and Rich then counts the padding as it draws it
        collapse_padding=True,
    )
    for row in rows:
        out.add_row(*(cell if isinstance(cell, Text) else Text(_cell(cell)) for cell in row))
    return _FittedTable(out)


class _FittedTable:
    """A table that shares a narrow terminal's width between its columns itself.

    Rich shrinks wrappable columns to nothing before it touches `no_wrap` ones (a NAME column
    vanished at 80 columns) and ignores `min_width` when it shrinks. Here every column first
    gets its least width (an identifier column its `min_width`, a text column its header's
    longest word or 12), then identifier columns grow until they are whole, then text columns
    until their longest word fits (up to 24), then text columns take the rest; at each step
    the columns nearest their target are served first. When even the minimums do not fit,
    identifiers are cut down to their `floor`, then the widest column gives way.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self._least = [column.min_width for column in table.columns]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = self.table.columns
        for column in columns:
            column.width, column.min_width = None, None  # measured as the cells are
        natural = [_longest(column, str.splitlines) for column in columns]
        whole = Measurement.get(console, options.update_width(1_000_000), self.table).maximum
        budget = options.max_width - (whole - sum(natural))  # less borders and padding
        if sum(natural) > budget:
            widths = _share(columns, natural, self._least, budget)
            for column, width in zip(columns, widths, strict=True):
                column.width = width
        yield self.table


def _longest(column: Column, split: Callable[[str], list[str]], *, header: bool = True) -> int:
    cells = [column.header] if header else []
    cells += list(column.cells)
    texts = (c.plain if isinstance(c, Text) else str(c) for c in cells)
    return max((cell_len(part) for text in texts for part in split(text)), default=1)


def _share(
    columns: Sequence[Column], natural: list[int], minimums: Sequence[int | None], budget: int
) -> list[int]:
    """Content widths for `columns` summing to at most `budget` where the minimums allow."""
    words = [min(n, max(_longest(c, str.split), 1)) for c, n in zip(columns, natural, strict=True)]
    least = [
        min(n, m or 12)
        if c.no_wrap
        else min(n, max(_head_word(c), min(_longest(c, str.split, header=False), 12)))
        for c, n, m in zip(columns, natural, minimums, strict=True)
    ]
    over = sum(least) - budget
    if over > 0:  # too narrow even for the minimums: identifiers give way, down to a floor
        room = [
            max(0, w - min(n, c.floor)) if isinstance(c, _IdColumn) else 0
            for c, n, w in zip(columns, natural, least, strict=True)
        ]
        if sum(room):
            cut = [min(r, -(-over * r // sum(room))) for r in room]
            least = [w - c for w, c in zip(least, cut, strict=True)]
    targets = [  # identifiers whole, then text columns' words whole (up to 24), then the rest
        [n if c.no_wrap else 0 for c, n in zip(columns, natural, strict=True)],
        [0 if c.no_wrap else min(w, 24) for c, w in zip(columns, words, strict=True)],
        [0 if c.no_wrap else n for c, n in zip(columns, natural, strict=True)],
    ]
    widths = list(least)
    spare = budget - sum(widths)
    for target in targets:
        wanted = [max(0, t - w) for t, w in zip(target, widths, strict=True)]
        total = sum(wanted)
        if spare <= 0 or not total:
            continue
        grant = wanted if total <= spare else _fair(wanted, spare)
        widths = [w + g for w, g in zip(widths, grant, strict=True)]
        spare -= sum(grant)
    # Narrower still: take from the widest column (timestamps last) rather than from all alike.
    fixed = [isinstance(c, _IdColumn) and c.floor >= 16 for c in columns]
    while sum(widths) > budget:
        widest = max(range(len(widths)), key=lambda i: (not fixed[i], widths[i]))
        if widths[widest] <= 1:
            break
        widths[widest] -= 1
    return widths


def _fair(wanted: list[int], spare: int) -> list[int]:
    """Share `spare` so that small wants are met whole (a value one character short of whole
    gets it) and the rest split what is left evenly."""
    grant = [0] * len(wanted)
    waiting = [i for i in sorted(range(len(wanted)), key=wanted.__getitem__) if wanted[i]]
    for n, i in enumerate(waiting):
        grant[i] = min(wanted[i], spare // (len(waiting) - n))
        spare -= grant[i]
    return grant


def _head_word(column: Column) -> int:
    return max((cell_len(w) for w in str(column.header).split()), default=1)


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
