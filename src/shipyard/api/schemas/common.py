"""What every wire schema shares: the request and result bases, list queries, the error body.

Requests forbid unknown fields (a typo is a 422 naming it, never silently ignored); results
are what the server sends. Neither is a stored row (`store.tables`) or a domain record
(`core.records`): routes convert at the edge with each result's `of()`. Small value types that
have no identity of their own (a schema, a profile, a signature, a gate result) are the domain
records themselves, nested.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE = 500


class WireRequest(BaseModel):
    """A request body or query: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WireResult(BaseModel):
    """A response body. Non-finite floats (NaN, ±inf) are sent as null."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="null")


class ListQuery(WireRequest):
    """Paging of every list: `limit` items from `cursor` (the previous page's `next_cursor`)."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description="Items per page.")
    cursor: str | None = Field(
        default=None,
        max_length=4096,
        description="The `next_cursor` of the previous page; leave out for the first page.",
    )


class PageResult(WireResult):
    next_cursor: str | None = Field(
        description="Send as `cursor` (with the same filters) for the next page; null on the "
        "last page."
    )


class ApiError(WireResult):
    """Every error answer of /api/v1."""

    error: str = Field(description="The error class, such as 'Invalid' or 'Forbidden'.")
    message: str = Field(description="What was received, what was expected, what to do.")
    details: dict[str, Any] = Field(description="Machine-readable facts, such as the field.")
    request_id: str = Field(description="Quote it when reporting a problem; also X-Request-ID.")
