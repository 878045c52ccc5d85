"""`shipyard alerts`: list monitoring alerts and acknowledge them."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.records import Alert
from shipyard.monitor.alerts import ack_alert, list_alerts

app = typer.Typer(
    help="List monitoring alerts (drift, decay, SLOs) and acknowledge them.",
    no_args_is_help=True,
)


@app.command("ls")
def ls(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", metavar="NAME", help="Only this endpoint's.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="At most N, newest first.")
    ] = 100,
    wide: _output.WideFlag = False,
    json: _output.JsonFlag = False,
) -> None:
    """Open alerts, newest first (with --all, acknowledged ones too)."""
    with _output.workspace(ctx) as ws:
        found = list_alerts(ws, endpoint, include_acked=all_, limit=limit)
    _output.emit(found, json_mode=json, table=_table(found, all_=all_))


@app.command("ack")
def ack(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id (alr_...), from `alerts ls`.")],
    json: _output.JsonFlag = False,
) -> None:
    """Acknowledge an alert: it leaves the open list (acknowledging twice changes nothing)."""
    with _output.workspace(ctx) as ws:
        alert = ack_alert(ws, alert_id)
    if json:
        _output.print_json(alert)
        return
    _output.console().print(
        f"Alert {alert.id} ({alert.kind} on {alert.endpoint}) acknowledged by {alert.acked_by} "
        f"at {_output.when(alert.acked_at)} UTC.",
        markup=False,
    )


def _table(found: list[Alert], *, all_: bool) -> RenderableType:
    """Alerts as a table that leaves the message room: the endpoint column only when the
    alerts span several (one endpoint is named in the title instead, and its name is not
    repeated at the start of each message), the acknowledgement only with --all."""
    if not found:
        what = "No alerts." if all_ else "No open alerts (`shipyard alerts ls --all` shows all)."
        return Text(what)
    endpoints = sorted({a.endpoint for a in found})
    title = "Alerts" if all_ else "Open alerts"
    heads: list[Any] = [
        _output.ident("ID", min_width=24),  # whole where it fits: `alerts ack ID`
        "KIND",
        _output.when_column("CREATED (UTC)"),
    ]
    if len(endpoints) == 1:
        title += f" on {endpoints[0]}"
    else:
        heads.insert(1, _output.ident("ENDPOINT", min_width=8))
    if all_:
        heads.append("ACKED")
    rows = []
    for a in found:
        row: list[object] = [a.id, a.kind, a.created_at]
        if len(endpoints) > 1:
            row.insert(1, a.endpoint)
        if all_:
            row.append(f"{_output.when(a.acked_at)} by {a.acked_by}" if a.acked_at else "no")
        row.append(a.message.removeprefix(f"{a.endpoint}: "))
        rows.append(row)
    return _output.table(title, [*heads, "MESSAGE"], rows)
