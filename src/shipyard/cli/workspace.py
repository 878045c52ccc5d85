"""`shipyard init`: create a workspace and its first admin token."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from shipyard.cli import _output
from shipyard.security import init_workspace


def init(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Metadata database URL (default sqlite:///<home>/shipyard.db).",
        ),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            "--artifacts",
            metavar="URL",
            help="Artifact store path or fsspec URL (default <home>/artifacts).",
        ),
    ] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Create a workspace at --home and print its admin token (shown once)."""
    settings = _output.settings(ctx, db=db, artifacts=artifacts)
    ws, token, secret = init_workspace(settings)
    try:
        where = {"home": str(ws.home), "db": ws.db.safe_url, "artifacts": ws.artifacts.url}
    finally:
        ws.close()
    if json:
        _output.print_json({**where, "token": token, "secret": secret})
        return
    out = _output.console()
    out.print(f"Created a Shipyard workspace at {where['home']}", style="bold", markup=False)
    grid = Table.grid(padding=(0, 2))
    grid.add_row("  database", where["db"])
    grid.add_row("  artifacts", where["artifacts"])
    out.print(grid)
    out.print()
    _output.show_secret(token, secret)
