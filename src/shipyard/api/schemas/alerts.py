"""Monitoring alerts on the wire: the list (newest first) and an acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireResult
from shipyard.core.records import Alert, AlertKind


class AlertView(WireResult):
    id: str
    endpoint: str
    kind: AlertKind
    message: str
    details: dict[str, Any]
    created_at: datetime
    acked_at: datetime | None
    acked_by: str | None = Field(description="Who acknowledged it: a token id over the API.")
    deliveries: list[dict[str, Any]] = Field(
        description="Webhook attempts: url, status or error, at."
    )

    @classmethod
    def of(cls, alert: Alert) -> AlertView:
        return cls(**alert.model_dump())


class AlertQuery(ListQuery):
    endpoint: str | None = Field(default=None, max_length=64, description="Only this endpoint's.")
    open: bool = Field(default=True, description="Only alerts not yet acknowledged.")


class AlertPage(PageResult):
    items: list[AlertView] = Field(description="Newest first.")
