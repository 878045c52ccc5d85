"""Alerts: a monitoring threshold crossed for an endpoint, kept, acknowledged and delivered.

One implementation behind the CLI, the REST API and the SDK. Raising is idempotent by `key`
(the monitor raises "drift on credit in window 10:00 to 11:00" each time it looks at that window,
and only the first raise stores anything), so several servers and a cron job may judge the same
window. Raising, acknowledging and recording deliveries are audited in the same transaction.

    >>> alert = raise_alert(ws, "credit", "drift", "income drifted (PSI 0.31 > 0.2)",
    ...                     key="credit:drift:2025-01-01T10:00")
    >>> deliver_alert(ws, alert, ["https://hooks.example.com/alerts"]).deliveries[0]["ok"]
    True
    >>> ack_alert(ws, alert.id).acked_by
    'local:ana'
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import Alert, AlertKind
from shipyard.store import audit
from shipyard.store.tables import AlertRow
from shipyard.store.workspace import Workspace

KINDS: tuple[str, ...] = get_args(AlertKind)
KEY_CHARS = 200
ENDPOINT_CHARS = 64
MESSAGE_CHARS = 2000


def raise_alert(
    ws: Workspace,
    endpoint: str,
    kind: AlertKind,
    message: str,
    *,
    key: str,
    details: dict[str, Any] | None = None,
) -> Alert | None:
    """Store a new alert, or None when one with the same ``key`` was raised before.

    ``key`` names the occurrence (e.g. endpoint, kind and window start), so raising it again
    from a retry or another server stores nothing. ``details`` is plain JSON data.
    """
    if kind not in KINDS:
        raise Invalid(f"alert kind {kind!r} is not known; expected one of {', '.join(KINDS)}.")
    key = key.strip()
    if not key or len(key) > KEY_CHARS:
        raise Invalid(
            f"alert key {key[:40]!r} must be 1 to {KEY_CHARS} characters (e.g. "
            f"'{endpoint}:{kind}:<window start>'); it makes raising the alert idempotent."
        )
    if not endpoint or len(endpoint) > ENDPOINT_CHARS:
        raise Invalid(f"alert endpoint {endpoint!r} must be 1 to {ENDPOINT_CHARS} characters.")
    text = message.strip()
    if not text:
        raise Invalid("an alert needs a message that says what crossed which threshold.")
    text = text[:MESSAGE_CHARS]
    try:
        with ws.db.write() as s:
            if s.scalars(select(AlertRow.id).where(AlertRow.key == key)).first() is not None:
                return None
            row = AlertRow(
                id="alr_" + secrets.token_hex(10),
                endpoint=endpoint,
                kind=kind,
                key=key,
                message=text,
                details=_plain(details or {}),
                created_at=datetime.now(UTC),
                acked_at=None,
                acked_by=None,
                deliveries=[],
            )
            s.add(row)
            s.flush()
            audit.append(
                s,
                actor=ws.actor,
                action="alert.raise",
                object_type="alert",
                object_id=row.id,
                after=row.id,
                details={"endpoint": endpoint, "kind": kind, "key": key, "message": text},
            )
            return to_record(row)
    except IntegrityError:  # raised by another writer between the check and the insert
        return None


def list_alerts(
    ws: Workspace,
    endpoint: str | None = None,
    *,
    include_acked: bool = False,
    limit: int = 100,
    before: tuple[datetime, str] | None = None,
) -> list[Alert]:
    """Alerts, newest first: open ones only unless ``include_acked``; with ``before`` (the
    created_at and id of the last alert of a page), the ones after it in that order."""
    if limit < 1:
        raise Invalid(f"limit={limit}: expected at least 1.")
    query = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
    if before is not None:
        at, last = before
        query = query.where(
            or_(AlertRow.created_at < at, and_(AlertRow.created_at == at, AlertRow.id < last))
        )
    if endpoint is not None:
        query = query.where(AlertRow.endpoint == endpoint)
    if not include_acked:
        query = query.where(AlertRow.acked_at.is_(None))
    with ws.db.read() as s:
        return [to_record(r) for r in s.scalars(query)]


def alerts_with_keys(ws: Workspace, keys: Sequence[str]) -> list[Alert]:
    """The alerts raised under any of ``keys`` (acknowledged or not), oldest first: what a
    window's findings raised, whoever raised them (the loop, `monitor watch`)."""
    if not keys:
        return []
    query = (
        select(AlertRow)
        .where(AlertRow.key.in_(list(keys)))
        .order_by(AlertRow.created_at, AlertRow.id)
    )
    with ws.db.read() as s:
        return [to_record(r) for r in s.scalars(query)]


def get_alert(ws: Workspace, id: str) -> Alert:
    """One alert by id."""
    with ws.db.read() as s:
        row = s.get(AlertRow, id)
        if row is None:
            raise _unknown(id)
        return to_record(row)


def ack_alert(ws: Workspace, id: str) -> Alert:
    """Acknowledge an alert as ``ws.actor``: it leaves the open list. Again: no change."""
    with ws.db.write() as s:
        row = s.scalars(select(AlertRow).where(AlertRow.id == id).with_for_update()).first()
        if row is None:
            raise _unknown(id)
        if row.acked_at is not None:
            return to_record(row)
        row.acked_at = datetime.now(UTC)
        row.acked_by = ws.actor
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="alert.ack",
            object_type="alert",
            object_id=row.id,
            before="open",
            after="acked",
            details={"endpoint": row.endpoint, "kind": row.kind},
        )
        return to_record(row)


def deliver_alert(
    ws: Workspace,
    alert: Alert,
    urls: Sequence[str],
    *,
    allow_private: bool = False,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> Alert:
    """POST ``alert`` as JSON to each webhook and record every outcome in its `deliveries`.

    Each webhook gets one attempt and up to ``retries`` more (``backoff`` seconds, doubling) on
    connection errors, timeouts, 429 and 5xx (see `webhooks.post_json`). A webhook that fails
    (refused URL, no answer, an error status after the retries) does not stop the others; its
    outcome says why. The URLs are kept redacted (scheme, host, port),
    since webhook URLs often carry a secret. No URLs: nothing is sent or written.
    """
    if not urls:
        return alert
    # webhooks loads httpx (~0.15 s): only delivering needs it, not listing or acknowledging
    from shipyard.monitor.webhooks import post_json

    payload = webhook_payload(alert)
    headers = {"user-agent": "shipyard", "x-shipyard-alert": alert.id}
    outcomes = [
        post_json(
            url,
            payload,
            timeout=timeout,
            retries=retries,
            allow_private=allow_private,
            backoff=backoff,
            headers=headers,
        )
        for url in urls
    ]
    with ws.db.write() as s:
        row = s.scalars(select(AlertRow).where(AlertRow.id == alert.id).with_for_update()).first()
        if row is None:
            raise _unknown(alert.id)
        row.deliveries = [*row.deliveries, *outcomes]
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="alert.deliver",
            object_type="alert",
            object_id=row.id,
            details={
                "delivered": sum(1 for o in outcomes if o["ok"]),
                "failed": sum(1 for o in outcomes if not o["ok"]),
                "outcomes": [
                    {k: o[k] for k in ("url", "ok", "status", "error", "attempts")}
                    for o in outcomes
                ],
            },
        )
        return to_record(row)


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """What a webhook receives: the alert without its delivery history, and a `text` line
    (chat tools such as Slack show `text`)."""
    body = alert.model_dump(mode="json", exclude={"deliveries"})
    return {"text": f"[shipyard] {alert.kind} on {alert.endpoint}: {alert.message}", **body}


# -- plain data ⇄ records -----------------------------------------------------------------------


def to_record(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        endpoint=row.endpoint,
        kind=row.kind,  # type: ignore[arg-type]  # checked against AlertKind when raised
        message=row.message,
        details=row.details,
        created_at=row.created_at,
        acked_at=row.acked_at,
        acked_by=row.acked_by,
        deliveries=list(row.deliveries),
    )


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe details: NaN and infinities become None (PostgreSQL's JSON has neither), and
    anything JSON cannot hold becomes text."""
    plain: dict[str, Any] = _finite(json.loads(json.dumps(value, default=str)))
    return plain


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _unknown(id: str) -> NotFound:
    return NotFound(
        f"alert {id!r} does not exist; `shipyard alerts ls --all` lists alerts with their ids."
    )
