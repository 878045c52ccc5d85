"""The audit log on the wire: events (newest first) and the chain check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireRequest, WireResult
from shipyard.core.records import AuditEvent


class AuditEventView(WireResult):
    seq: int
    id: str
    at: datetime
    actor: str = Field(description="Who acted: a token id (tok_...) over the API.")
    action: str
    object_type: str
    object_id: str
    before: str | None
    after: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventView:
        return cls(**event.model_dump())


class AuditQuery(ListQuery):
    action: str | None = Field(default=None, max_length=200, description="Action prefix.")
    object_id: str | None = Field(default=None, max_length=500, description="One object.")


class AuditPage(PageResult):
    items: list[AuditEventView]


class VerifyQuery(WireRequest):
    head: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="A head hash kept earlier: also detects events deleted from the end.",
    )


class ChainView(WireResult):
    ok: bool
    events: int
    head: str
    problems: list[str]
