"""`shipyard audit`: read and verify the hash-chained audit log."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.table import Column
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
    json: _output.JsonFlag = False,
) -> None:
    """List audit events, newest first."""
    with _output.workspace(ctx) as ws, ws.db.read() as session:
        found = audit.events(session, limit=limit, action=action, object_id=object_id)
    _output.emit(found, json_mode=json, table=_table(found))


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


def _table(found: list[AuditEvent]) -> RenderableType:
    if not found:
        return Text("No audit events match.")
    return _output.table(
        "Audit log (newest first)",
        [
            Column("#", justify="right"),
            "AT (UTC)",
            "ACTOR",
            "ACTION",
            "OBJECT",
            "DETAILS",
        ],
        [
            (
                e.seq,
                e.at,
                e.actor,
                e.action,
                e.object_id,
                " ".join(f"{k}={_value(v)}" for k, v in e.details.items()),
            )
            for e in found
        ],
    )


def _value(value: object) -> str:
    return value if isinstance(value, str) else jsonlib.dumps(value)
