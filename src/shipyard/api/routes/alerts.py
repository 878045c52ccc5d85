"""/api/v1/alerts: monitoring alerts, newest first (viewer); acknowledge one (deployer)."""

from __future__ import annotations

from datetime import datetime

from shipyard.api.access import DEPLOY, READ
from shipyard.api.cursor import scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.alerts import AlertPage, AlertQuery, AlertView
from shipyard.monitor.alerts import ack_alert, list_alerts


def list_(call: Call) -> AlertPage:
    q: AlertQuery = call.query
    scope = scope_of("alerts", endpoint=q.endpoint, open=q.open)
    after = call.position(scope)  # [created_at, id] of the previous page's last alert
    found = list_alerts(
        call.ws,
        q.endpoint,
        include_acked=not q.open,
        limit=q.limit + 1,
        before=(datetime.fromisoformat(after[0]), after[1]) if after else None,
    )
    chosen = found[: q.limit]
    last = [chosen[-1].created_at.isoformat(), chosen[-1].id] if len(found) > q.limit else None
    return AlertPage(
        items=[AlertView.of(a) for a in chosen], next_cursor=call.next_cursor(scope, last)
    )


def ack(call: Call) -> AlertView:
    return AlertView.of(ack_alert(call.ws, call.path["alert_id"]))


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/alerts", list_, READ,
        "Alerts, newest first: open ones unless `open` is false; one endpoint's with `endpoint`.",
        result=AlertPage, query=AlertQuery, tag="alerts",
    ),
    Operation(
        "POST", f"{PREFIX}/alerts/{{alert_id}}/ack", ack, DEPLOY,
        "Acknowledge an alert (audited under the token): it leaves the open list. Again: no "
        "change.",
        result=AlertView, errors=(404,), tag="alerts",
    ),
]  # fmt: skip
