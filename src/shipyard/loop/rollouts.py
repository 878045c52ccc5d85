"""Rollouts: one retrain-and-rollout of an endpoint, every decision kept and audited.

A rollout moves through `retraining → shadow → canary → promoted`, or ends early as
`rejected` (the candidate failed a gate or did not beat the champion), `rolled_back` (a guard
failed), `stopped` (a person said so) or `failed` (an error). Each move appends an event to the
rollout and an `loop.<stage>` event to the audit chain, in the same transaction.

    >>> r = start_rollout(ws, "credit", trigger="drift", champion_ref="credit-risk@3")
    >>> advance(ws, r.id, "shadow", "candidate credit-risk@4 passed its gates ...")
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from shipyard.core.errors import Conflict, NotFound
from shipyard.core.records import ROLLOUT_ACTIVE, Rollout, RolloutEvent, RolloutStage
from shipyard.store import audit
from shipyard.store.tables import RolloutRow
from shipyard.store.workspace import Workspace


def start_rollout(
    ws: Workspace, endpoint: str, *, trigger: str, champion_ref: str, reason: str
) -> Rollout:
    """A new rollout in stage `retraining`; Conflict while another one is active."""
    now = datetime.now(UTC)
    with ws.db.write() as s:
        active = s.scalars(
            select(RolloutRow)
            .where(RolloutRow.endpoint == endpoint, RolloutRow.stage.in_(ROLLOUT_ACTIVE))
            .with_for_update()
        ).first()
        if active is not None:
            raise Conflict(
                f"endpoint {endpoint!r} already has a rollout in stage {active.stage} "
                f"({active.id}); wait for it or stop it with `shipyard loop stop {endpoint}`."
            )
        event = _event(now, "retraining", reason, {"trigger": trigger})
        row = RolloutRow(
            id="ro_" + secrets.token_hex(8),
            endpoint=endpoint,
            trigger=trigger,
            stage="retraining",
            champion_ref=champion_ref,
            candidate_ref=None,
            candidate_id=None,
            dataset_ref=None,
            reason=reason,
            events=[event],
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        s.flush()
        _audit(ws, s, row, "retraining", reason, {"trigger": trigger})
        return to_record(row)


def advance(
    ws: Workspace,
    rollout_id: str,
    stage: RolloutStage,
    reason: str,
    *,
    details: Mapping[str, Any] | None = None,
    expect: RolloutStage | None = None,
    **fields: str | None,
) -> Rollout:
    """Move a rollout to `stage` with the reason why; `fields` set candidate/dataset refs.

    With `expect`, nothing changes unless the rollout is still in that stage (a person may have
    stopped it meanwhile); the rollout is returned as it is.
    """
    now = datetime.now(UTC)
    with ws.db.write() as s:
        row = s.scalars(
            select(RolloutRow).where(RolloutRow.id == rollout_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"rollout {rollout_id!r} does not exist; see `shipyard loop status`.")
        if expect is not None and row.stage != expect:
            return to_record(row)
        for key, value in fields.items():
            if key not in ("candidate_ref", "candidate_id", "dataset_ref"):
                raise TypeError(f"unknown rollout field {key}")
            setattr(row, key, value)
        row.stage = stage
        row.reason = reason
        row.updated_at = now
        row.events = [*row.events, _event(now, stage, reason, details)]
        s.flush()
        _audit(ws, s, row, stage, reason, details)
        return to_record(row)


def note(ws: Workspace, rollout_id: str, message: str, **details: Any) -> None:
    """Add an event without changing the stage (e.g. a canary step the server took)."""
    now = datetime.now(UTC)
    with ws.db.write() as s:
        row = s.get(RolloutRow, rollout_id)
        if row is None:
            return
        row.events = [*row.events, _event(now, row.stage, message, details)]
        row.updated_at = now


def get_rollout(ws: Workspace, rollout_id: str) -> Rollout:
    with ws.db.read() as s:
        row = s.get(RolloutRow, rollout_id)
        if row is None:
            raise NotFound(f"rollout {rollout_id!r} does not exist; see `shipyard loop status`.")
        return to_record(row)


def list_rollouts(
    ws: Workspace, endpoint: str | None = None, *, active: bool | None = None, limit: int = 20
) -> list[Rollout]:
    """Rollouts, newest first."""
    query = select(RolloutRow).order_by(RolloutRow.created_at.desc(), RolloutRow.id)
    if endpoint is not None:
        query = query.where(RolloutRow.endpoint == endpoint)
    if active is True:
        query = query.where(RolloutRow.stage.in_(ROLLOUT_ACTIVE))
    elif active is False:
        query = query.where(RolloutRow.stage.not_in(ROLLOUT_ACTIVE))
    with ws.db.read() as s:
        return [to_record(r) for r in s.scalars(query.limit(limit))]


def active_rollout(ws: Workspace, endpoint: str) -> Rollout | None:
    found = list_rollouts(ws, endpoint, active=True, limit=1)
    return found[0] if found else None


def to_record(row: RolloutRow) -> Rollout:
    return Rollout(
        id=row.id,
        endpoint=row.endpoint,
        trigger=row.trigger,
        stage=row.stage,  # type: ignore[arg-type]
        champion_ref=row.champion_ref,
        candidate_ref=row.candidate_ref,
        candidate_id=row.candidate_id,
        dataset_ref=row.dataset_ref,
        reason=row.reason,
        events=[RolloutEvent.model_validate(e) for e in row.events],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _event(
    at: datetime, stage: str, message: str, details: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "stage": stage,
        "message": message,
        "details": json.loads(json.dumps(dict(details or {}), default=str)),
    }


def _audit(
    ws: Workspace,
    s: Any,
    row: RolloutRow,
    stage: str,
    reason: str,
    details: Mapping[str, Any] | None,
) -> None:
    audit.append(
        s,
        actor=ws.actor,
        action=f"loop.{stage}",
        object_type="rollout",
        object_id=row.id,
        after=row.candidate_ref,
        details={
            "endpoint": row.endpoint,
            "reason": reason,
            "champion": row.champion_ref,
            **(details or {}),
        },
    )
