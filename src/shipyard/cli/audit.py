"""`shipyard audit`: read and verify the hash-chained audit log."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Integrity
from shipyard.core.records import AuditEvent
from shipyard.store import audit

app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


@app.command("log")
def log(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show at most N events (0: all).")
    ] = 50,
    action: Annotated[
        str | None,
        typer.Option("--action", metavar="PREFIX", help="Only actions starting with PREFIX."),
    ] = None,
    object_id: Annotated[
        str | None, typer.Option("--object", metavar="ID", help="Only events on this object.")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Also each event's details (as --json has them).")
    ] = False,
    wide: _output.WideFlag = False,
    json: _output.JsonFlag = False,
) -> None:
    """List audit events, newest first: one line each (who, when, what, on what, before → after).

    --full adds every event's details; --json prints the events whole, hashes included.
    """
    with _output.workspace(ctx) as ws, ws.db.read() as session:
        found = audit.events(session, limit=limit, action=action, object_id=object_id)
    _output.emit(found, json_mode=json, table=_table(found, full=full))


@app.command("verify")
def verify(
    ctx: typer.Context,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            metavar="HASH",
            help="A head hash recorded earlier; fails if it is no longer in the chain.",
        ),
    ] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Check every event's hash and link; exit 7 if the chain was tampered with."""
    with _output.workspace(ctx) as ws, ws.db.read() as session:
        report = audit.verify(session, expect_head=head)
    if not report.ok:
        problems = "".join(f"\n  - {p}" for p in report.problems)
        raise Integrity(
            f"the audit log failed verification ({len(report.problems)} problem(s) in "
            f"{report.events} events):{problems}\nRestore the database from a backup and find "
            "out who had write access to it.",
            details=report.model_dump(mode="json"),
        )
    if json:
        _output.print_json(report)
        return
    out = _output.console()
    out.print(f"audit log ok: {report.events} events, every hash and link checked.", markup=False)
    out.print(f"head {report.head}", soft_wrap=True, markup=False)
    out.print(
        "Keep the head hash somewhere else: `shipyard audit verify --head HASH` then also "
        "detects events deleted from the end.",
        markup=False,
    )


def _table(found: list[AuditEvent], *, full: bool = False) -> RenderableType:
    if not found:
        return Text("No audit events match.")
    if full:
        return Group(*(_block(e) for e in found))
    return _output.table(
        "Audit log (newest first)",
        [
            Column("#", justify="right"),
            _output.when_column("AT (UTC)"),
            _output.ident("ACTOR", min_width=12),
            _output.ident("ACTION", min_width=14),
            _output.ident("SUBJECT", min_width=14),
            _output.ident("BEFORE → AFTER", min_width=14),
        ],
        [(e.seq, e.at, e.actor, e.action, _subject(e), _change(e)) for e in found],
    )


def _block(e: AuditEvent) -> RenderableType:
    """One event whole: its summary line, then the object, the change and every detail."""
    fields = [("object", f"{e.object_type} {e.object_id}")]
    if e.before is not None or e.after is not None:
        fields.append(("change", _change(e)))
    fields += [(k, _value(v)) for k, v in e.details.items()]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in fields:
        grid.add_row(key, value)
    head = Text.assemble(
        (f"#{e.seq}", "bold"),
        f"  {_output.when(e.at)}  {e.actor}  ",
        (e.action, "bold"),
        f"  {_subject(e)}",
    )
    return Group(head, Padding(grid, (0, 0, 1, 4)))


def _subject(e: AuditEvent) -> str:
    """What the event is about, as people name it: a ref or a name where the event has one
    (the object's id is in `--full` and `--json`)."""
    alias = e.details.get("alias")
    if isinstance(alias, str) and alias:  # an alias moved: name it, the versions are the change
        return f"{e.object_id}@{alias}"
    for key in ("ref", "name", "endpoint"):
        value = e.details.get(key)
        if isinstance(value, str) and value:
            return value
    return e.object_id


def _change(e: AuditEvent) -> str:
    if e.before is None and e.after is None:
        return ""
    return f"{e.before or '-'} → {e.after or '-'}"


def _value(value: object) -> str:
    return value if isinstance(value, str) else jsonlib.dumps(value)
