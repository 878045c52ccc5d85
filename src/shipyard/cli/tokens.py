"""`shipyard tokens`: create, list and revoke API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import RenderableType
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.records import Role, Token
from shipyard.security import create_token, list_tokens, revoke_token

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)

_ROLES = ", ".join(r.value for r in Role)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A label for the token, e.g. 'ci-deployer'.")],
    role: Annotated[str, typer.Option("--role", metavar="ROLE", help=f"One of: {_ROLES}.")],
    json: _output.JsonFlag = False,
) -> None:
    """Create a token; its secret is printed once and never stored."""
    with _output.workspace(ctx) as ws:
        token, secret = create_token(ws, name, role)
    if json:
        _output.print_json({"token": token, "secret": secret})
    else:
        _output.show_secret(token, secret)


@app.command("ls")
def ls(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    wide: _output.WideFlag = False,
    json: _output.JsonFlag = False,
) -> None:
    """List active tokens (never their secrets)."""
    with _output.workspace(ctx) as ws:
        found = list_tokens(ws, include_revoked=all_)
    _output.emit(found, json_mode=json, table=_table(found, all_=all_))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...), from `tokens ls`.")],
    json: _output.JsonFlag = False,
) -> None:
    """Revoke a token: requests that send it are refused from now on."""
    with _output.workspace(ctx) as ws:
        token = revoke_token(ws, token_id)
    if json:
        _output.print_json(token)
        return
    _output.console().print(
        f"Token {token.id} ({token.name!r}, role {token.role.value}) is revoked "
        f"since {_output.when(token.revoked_at)}.",
        markup=False,
    )


def _table(found: list[Token], *, all_: bool = False) -> RenderableType:
    if not found:
        return Text("No tokens. Create one with `shipyard tokens create NAME --role ROLE`.")
    return _output.table(
        "API tokens",
        [
            _output.ident("ID", min_width=20),  # whole where it fits: `tokens revoke ID`
            _output.ident("NAME", min_width=8),
            "ROLE",
            _output.ident("PREFIX", min_width=8),
            _output.when_column("CREATED (UTC)"),
            _output.when_column("LAST USED (UTC)"),  # to the minute: use is recorded ±1 min
            *(["STATUS"] if all_ else []),  # without --all every token listed is active
        ],
        [
            (
                t.id,
                t.name,
                t.role,
                t.prefix,
                t.created_at,
                t.last_used_at,
                *(["active" if t.active else "revoked"] if all_ else []),
            )
            for t in found
        ],
    )
