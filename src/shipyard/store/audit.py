"""The hash-chained audit log.

Each event stores the hash of the one before it and a hash over its own fields, so editing an
event breaks its hash and deleting one breaks the next event's link. `verify()` walks the
chain; `head()` gives the newest hash, which can be kept elsewhere and checked later
(`shipyard audit verify --head HASH`) to detect a truncated tail too.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shipyard.core.records import AuditEvent
from shipyard.store.tables import AuditRow

GENESIS = "0" * 64


def _canonical(row: AuditRow) -> bytes:
    body = {
        "id": row.id,
        "at": row.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": row.actor,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "before": row.before,
        "after": row.after,
        "details": row.details,
        "prev_hash": row.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _hash(row: AuditRow) -> str:
    return hashlib.sha256(_canonical(row)).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: str | None = None,
    after: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRow:
    """Add an event to the chain inside the caller's write transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7215120031)"))
    last = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
    row = AuditRow(
        id="evt_" + secrets.token_hex(10),
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        details=_plain(details or {}),
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    row.hash = _hash(row)
    session.add(row)
    session.flush()
    return row


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def to_record(row: AuditRow) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=row.before,
        after=row.after,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def events(
    session: Session,
    *,
    limit: int | None = 50,
    action: str | None = None,
    object_id: str | None = None,
    before: int | None = None,
) -> list[AuditEvent]:
    """Newest first; `before`: only events older than that sequence number (the next page)."""
    query = select(AuditRow).order_by(AuditRow.seq.desc())
    if before is not None:
        query = query.where(AuditRow.seq < before)
    if action:
        query = query.where(AuditRow.action.startswith(action))
    if object_id:
        query = query.where(AuditRow.object_id == object_id)
    if limit:
        query = query.limit(limit)
    return [to_record(r) for r in session.scalars(query)]


class ChainReport(BaseModel):
    events: int
    ok: bool
    head: str
    problems: list[str]


def _walk(session: Session) -> Iterator[AuditRow]:
    yield from session.scalars(
        select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=1000)
    )


def verify(session: Session, *, expect_head: str | None = None) -> ChainReport:
    """Check every link and hash; optionally that the chain still contains `expect_head`."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    seen_expected = expect_head is None
    for row in _walk(session):
        count += 1
        if row.prev_hash != prev:
            problems.append(
                f"event #{row.seq} ({row.action}) links to {row.prev_hash[:12]}…, but the event "
                f"before it hashes to {prev[:12]}…: an event before it was deleted or changed."
            )
        actual = _hash(row)
        if actual != row.hash:
            problems.append(
                f"event #{row.seq} ({row.action} on {row.object_id}) was edited: its fields hash "
                f"to {actual[:12]}…, not the stored {row.hash[:12]}…."
            )
        if row.hash == expect_head:
            seen_expected = True
        prev = row.hash
    if not seen_expected:
        problems.append(
            f"the expected head {expect_head} is not in the chain: events at the end were deleted."
        )
    return ChainReport(events=count, ok=not problems, head=prev, problems=problems)
