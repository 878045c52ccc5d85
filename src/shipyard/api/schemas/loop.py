"""The retrain loop on the wire: one turn now, an endpoint's rollouts, stop, pause, resume."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shipyard.api.schemas.common import WireRequest, WireResult
from shipyard.core.records import Endpoint, MonitorReport, Rollout, RolloutEvent, RolloutStage


class RolloutView(WireResult):
    id: str
    endpoint: str
    trigger: str = Field(description="What started it: drift, decay, schedule or manual.")
    stage: RolloutStage
    champion_ref: str
    candidate_ref: str | None
    candidate_id: str | None
    dataset_ref: str | None
    reason: str = Field(description="The latest decision, in words.")
    events: list[RolloutEvent] = Field(description="Its timeline, oldest first.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutView:
        return cls(**dict(rollout))


class RunOnce(WireRequest):
    endpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Only this endpoint (default: every endpoint serving the project's model).",
    )
    trials: int | None = Field(
        default=None, ge=1, le=1000, description="Search trials of a retrain (default: the spec's)."
    )


class TurnView(WireResult):
    endpoint: str
    action: str = Field(description="watched, retrained, rollout, waiting, paused or error.")
    reason: str
    rollout: RolloutView | None
    report: MonitorReport | None = Field(description="The monitor's report the turn judged.")


class TurnsView(WireResult):
    turns: list[TurnView] = Field(description="One per endpoint, in the order they ran.")


class LoopQuery(WireRequest):
    limit: int = Field(default=10, ge=1, le=100, description="Rollouts to list, newest first.")


class LoopState(WireResult):
    endpoint: str
    paused: str | None = Field(description="Why the loop is paused here; null: it may act.")
    rollouts: list[RolloutView] = Field(description="Newest first, each with its timeline.")

    @classmethod
    def of(cls, endpoint: Endpoint, rollouts: list[Rollout]) -> LoopState:
        return cls(
            endpoint=endpoint.name,
            paused=endpoint.loop_paused,
            rollouts=[RolloutView.of(r) for r in rollouts],
        )


class LoopReason(WireRequest):
    reason: str | None = Field(default=None, max_length=500, description="Why (kept, audited).")
