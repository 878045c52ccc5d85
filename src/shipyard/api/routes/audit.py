"""/api/v1/audit (viewer): the log, newest first, and the chain check."""

from __future__ import annotations

from shipyard.api.access import READ
from shipyard.api.cursor import scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.audit import AuditEventView, AuditPage, AuditQuery, ChainView, VerifyQuery
from shipyard.store import audit


def log(call: Call) -> AuditPage:
    q: AuditQuery = call.query
    scope = scope_of("audit", action=q.action, object_id=q.object_id)
    before = call.position(scope)
    with call.ws.db.read() as session:
        found = audit.events(
            session, limit=q.limit + 1, action=q.action, object_id=q.object_id, before=before
        )
    chosen = found[: q.limit]
    last = chosen[-1].seq if len(found) > q.limit else None
    return AuditPage(
        items=[AuditEventView.of(e) for e in chosen], next_cursor=call.next_cursor(scope, last)
    )


def verify(call: Call) -> ChainView:
    q: VerifyQuery = call.query
    with call.ws.db.read() as session:
        report = audit.verify(session, expect_head=q.head)
    return ChainView(ok=report.ok, events=report.events, head=report.head, problems=report.problems)


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/audit", log, READ, "Audit events, newest first.",
        result=AuditPage, query=AuditQuery, tag="audit",
    ),
    Operation(
        "GET", f"{PREFIX}/audit/verify", verify, READ,
        "Check every event's hash and link (and that `head` is still in the chain); `ok` "
        "is false with the problems when the log was tampered with.",
        result=ChainView, query=VerifyQuery, tag="audit",
    ),
]  # fmt: skip
