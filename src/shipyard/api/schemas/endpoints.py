"""Endpoints on the wire: their routing, and the changes a deployer makes to it.

Every change carries the `revision` the client last read; the server applies it only if the
endpoint is still at that revision (else 409 naming the current one), so two deployers who
change the same endpoint at once cannot overwrite each other unknowingly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireRequest, WireResult
from shipyard.core.records import Canary, Challenger, Endpoint, ShadowTarget

_REF = "A model version: NAME@N or NAME@ALIAS (resolved now: a later alias move changes nothing)."
_REVISION = "The endpoint's revision this change is based on (from GET); 409 if it moved on."


class EndpointState(WireResult):
    name: str
    revision: int = Field(description="Bumped by every change; send it back with a change.")
    champion_id: str
    champion_ref: str
    challengers: list[Challenger]
    shadows: list[ShadowTarget]
    canary: Canary | None
    flags: dict[str, str]
    pinned: ShadowTarget | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str | None

    @classmethod
    def of(cls, e: Endpoint) -> EndpointState:
        return cls(
            name=e.name,
            revision=e.revision,
            champion_id=e.champion_id,
            champion_ref=e.champion_ref,
            challengers=list(e.challengers),
            shadows=list(e.shadows),
            canary=e.canary,
            flags=dict(e.flags),
            pinned=e.pinned,
            created_at=e.created_at,
            created_by=e.created_by,
            updated_at=e.updated_at,
            updated_by=e.updated_by,
        )


class EndpointQuery(ListQuery):
    pass


class EndpointPage(PageResult):
    items: list[EndpointState]


class EndpointCreate(WireRequest):
    name: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=300, description=_REF)


class ChallengerIn(WireRequest):
    model: str = Field(min_length=1, max_length=300, description=_REF)
    weight: float = Field(gt=0, le=100, description="Percent of all traffic.")


class CanaryIn(WireRequest):
    model: str = Field(min_length=1, max_length=300, description=_REF)
    steps: list[int] = Field(
        default=[10, 50, 100], min_length=1, description="Traffic percent per step, increasing."
    )
    guard: dict[str, float] | None = Field(
        default=None, description="error_rate, p99_ms, agreement, min_requests."
    )


class RouteChange(WireRequest):
    """The route becomes exactly this (besides the champion)."""

    revision: int = Field(ge=1, description=_REVISION)
    challengers: list[ChallengerIn] = Field(default=[], max_length=100)
    shadows: list[str] = Field(default=[], max_length=100, description="Model refs.")
    canary: CanaryIn | None = None


class ChampionChange(WireRequest):
    revision: int = Field(ge=1, description=_REVISION)
    model: str = Field(min_length=1, max_length=300, description=_REF)


class FlagsChange(WireRequest):
    revision: int = Field(ge=1, description=_REVISION)
    flags: dict[str, str | None] = Field(
        description="explain, log_inputs, strict_ranges (on|off), pin (a model ref); null "
        "removes a flag."
    )


class CanaryAction(WireRequest):
    revision: int = Field(ge=1, description=_REVISION)
    action: Literal["promote", "rollback", "stop"]
    reason: str | None = Field(default=None, max_length=500)
