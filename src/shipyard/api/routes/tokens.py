"""/api/v1/tokens (admin): list, create, revoke."""

from __future__ import annotations

from shipyard.api.access import ADMIN
from shipyard.api.cursor import page_after, scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.tokens import (
    TokenCreate,
    TokenCreated,
    TokenPage,
    TokenQuery,
    TokenView,
)
from shipyard.core.records import Token
from shipyard.security import create_token, list_tokens, revoke_token


def _key(token: Token) -> list[str]:
    return [token.created_at.isoformat(), token.id]


def list_(call: Call) -> TokenPage:
    q: TokenQuery = call.query
    scope = scope_of("tokens", include_revoked=q.include_revoked)
    found = list_tokens(call.ws, include_revoked=q.include_revoked)
    chosen, last = page_after(found, _key, call.position(scope), q.limit)
    return TokenPage(
        items=[TokenView.of(t) for t in chosen], next_cursor=call.next_cursor(scope, last)
    )


def create(call: Call) -> TokenCreated:
    body: TokenCreate = call.body
    token, secret = create_token(call.ws, body.name, body.role)
    return TokenCreated(token=TokenView.of(token), secret=secret)


def revoke(call: Call) -> TokenView:
    return TokenView.of(revoke_token(call.ws, call.path["token_id"]))


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/tokens", list_, ADMIN, "List API tokens (never their secrets).",
        result=TokenPage, query=TokenQuery, tag="tokens",
    ),
    Operation(
        "POST", f"{PREFIX}/tokens", create, ADMIN,
        "Create a token; its secret is in this answer only.",
        result=TokenCreated, body=TokenCreate, status=201, tag="tokens",
    ),
    Operation(
        "DELETE", f"{PREFIX}/tokens/{{token_id}}", revoke, ADMIN,
        "Revoke a token: requests sending it are refused from now on (within a second).",
        result=TokenView, errors=(404,), tag="tokens",
    ),
]  # fmt: skip
