"""Tokens on the wire: list, create (the secret is in the answer once), revoke."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireRequest, WireResult
from shipyard.core.records import Role, Token


class TokenView(WireResult):
    id: str
    name: str
    role: Role
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    active: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="To within a minute.")

    @classmethod
    def of(cls, token: Token) -> TokenView:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            prefix=token.prefix,
            active=token.active,
            created_at=token.created_at,
            created_by=token.created_by,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class TokenQuery(ListQuery):
    include_revoked: bool = Field(default=False, description="Also list revoked tokens.")


class TokenPage(PageResult):
    items: list[TokenView]


class TokenCreate(WireRequest):
    name: str = Field(min_length=1, max_length=128, description="A label, e.g. 'ci-deployer'.")
    role: Role


class TokenCreated(WireResult):
    token: TokenView
    secret: str = Field(description="Shown this once; only its hash is stored.")
