"""Alerts on SQLite and PostgreSQL: idempotent raising, listing, acknowledging, delivering."""

from __future__ import annotations

import math
import threading

import pytest
from webhook_receiver import receiver

from shipyard.core.errors import Invalid, NotFound
from shipyard.monitor.alerts import (
    ack_alert,
    deliver_alert,
    get_alert,
    list_alerts,
    raise_alert,
    webhook_payload,
)
from shipyard.store import audit
from shipyard.store.workspace import Workspace


def test_raise_stores_an_audited_alert(any_workspace: Workspace) -> None:
    ws = any_workspace
    alert = raise_alert(
        ws, "credit", "drift", "income drifted", key="credit:drift:1", details={"psi": 0.31}
    )
    assert alert is not None
    assert alert.id.startswith("alr_")
    assert (alert.endpoint, alert.kind, alert.message) == ("credit", "drift", "income drifted")
    assert alert.details == {"psi": 0.31}
    assert alert.acked_at is None and alert.deliveries == []
    assert alert.created_at.tzinfo is not None
    assert get_alert(ws, alert.id) == alert
    with ws.db.read() as s:
        (event,) = audit.events(s, action="alert.raise")
    assert event.object_id == alert.id and event.actor == ws.actor
    assert event.details["key"] == "credit:drift:1"


def test_raising_the_same_key_again_stores_nothing(any_workspace: Workspace) -> None:
    ws = any_workspace
    first = raise_alert(ws, "credit", "decay", "f1 fell", key="credit:decay:w1")
    assert first is not None
    assert raise_alert(ws, "credit", "decay", "f1 fell again", key="credit:decay:w1") is None
    assert [a.id for a in list_alerts(ws)] == [first.id]
    with ws.db.read() as s:
        assert len(audit.events(s, action="alert.raise")) == 1


def test_concurrent_raises_of_one_key_store_one_alert(any_workspace: Workspace) -> None:
    ws = any_workspace
    results: list[object] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(raise_alert(ws, "credit", "slo", "p99 over 50 ms", key="credit:slo:w9"))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(list_alerts(ws)) == 1
    with ws.db.read() as s:
        assert audit.verify(s).ok


def test_details_become_plain_json(any_workspace: Workspace) -> None:
    alert = raise_alert(
        any_workspace,
        "credit",
        "drift",
        "m",
        key="k",
        details={"score": math.nan, "inf": [math.inf], "when": object},
    )
    assert alert is not None
    assert alert.details["score"] is None and alert.details["inf"] == [None]
    assert isinstance(alert.details["when"], str)
    assert get_alert(any_workspace, alert.id).details == alert.details


def test_list_newest_first_by_endpoint_and_open_only(any_workspace: Workspace) -> None:
    ws = any_workspace
    made = [raise_alert(ws, ep, "drift", f"m{i}", key=f"k{i}") for i, ep in enumerate("abab")]
    ids = [a.id for a in made if a is not None]
    assert [a.id for a in list_alerts(ws)] == ids[::-1]
    assert [a.id for a in list_alerts(ws, "a")] == [ids[2], ids[0]]
    assert [a.id for a in list_alerts(ws, limit=2)] == [ids[3], ids[2]]
    ack_alert(ws, ids[3])
    assert [a.id for a in list_alerts(ws)] == [ids[2], ids[1], ids[0]]
    assert [a.id for a in list_alerts(ws, include_acked=True)] == ids[::-1]
    assert list_alerts(ws, "nobody") == []
    with pytest.raises(Invalid, match="limit=0: expected at least 1"):
        list_alerts(ws, limit=0)


def test_ack_records_the_actor_and_is_idempotent(any_workspace: Workspace) -> None:
    ws = any_workspace
    alert = raise_alert(ws, "credit", "multivariate", "AUC 0.81", key="k")
    assert alert is not None
    acked = ack_alert(ws, alert.id)
    assert acked.acked_by == ws.actor and acked.acked_at is not None
    again = ack_alert(ws, alert.id)
    assert again == acked
    with ws.db.read() as s:
        events = audit.events(s, action="alert.ack")
        assert audit.verify(s).ok
    assert len(events) == 1
    assert (events[0].actor, events[0].object_id) == (ws.actor, alert.id)


def test_unknown_ids_say_how_to_list(any_workspace: Workspace) -> None:
    message = r"alert 'alr_nope' does not exist; `shipyard alerts ls --all` lists alerts"
    with pytest.raises(NotFound, match=message):
        ack_alert(any_workspace, "alr_nope")
    with pytest.raises(NotFound, match=message):
        get_alert(any_workspace, "alr_nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "weather"}, r"alert kind 'weather' is not known; expected one of drift, "),
        ({"key": " "}, r"alert key '' must be 1 to 200 characters"),
        ({"key": "k" * 201}, r"must be 1 to 200 characters"),
        ({"message": "  "}, r"an alert needs a message"),
        ({"endpoint": ""}, r"alert endpoint '' must be 1 to 64 characters"),
    ],
)
def test_bad_alerts_are_refused(workspace: Workspace, kwargs: dict[str, str], message: str) -> None:
    args = {"endpoint": "credit", "kind": "drift", "message": "m", "key": "k", **kwargs}
    with pytest.raises(Invalid, match=message):
        raise_alert(workspace, args["endpoint"], args["kind"], args["message"], key=args["key"])
    assert list_alerts(workspace) == []


def test_deliver_posts_and_records_each_webhook(any_workspace: Workspace) -> None:
    ws = any_workspace
    alert = raise_alert(ws, "credit", "drift", "income drifted", key="k", details={"psi": 0.3})
    assert alert is not None
    with receiver() as good, receiver(500, 500) as flaky:
        delivered = deliver_alert(
            ws, alert, [good.url, flaky.url], allow_private=True, retries=2, backoff=0.01
        )
    assert good.received == [webhook_payload(alert)]
    assert good.received[0]["id"] == alert.id
    assert good.received[0]["text"] == "[shipyard] drift on credit: income drifted"
    assert "deliveries" not in good.received[0]
    assert good.request_headers[0]["x-shipyard-alert"] == alert.id
    ok, retried = delivered.deliveries
    assert ok["ok"] is True and ok["status"] == 200 and ok["attempts"] == 1
    assert retried["ok"] is True and retried["attempts"] == 3
    assert "/hook" not in ok["url"]  # the path may hold the receiver's secret
    assert get_alert(ws, alert.id).deliveries == delivered.deliveries
    with ws.db.read() as s:
        (event,) = audit.events(s, action="alert.deliver")
    assert event.details["delivered"] == 2


def test_deliver_records_refusals_and_failures_without_stopping(
    any_workspace: Workspace,
) -> None:
    ws = any_workspace
    alert = raise_alert(ws, "credit", "slo", "error rate 5%", key="k")
    assert alert is not None
    with receiver(404) as missing:
        delivered = deliver_alert(
            ws, alert, ["http://169.254.169.254/hook", missing.url], allow_private=False
        )
    refused, not_sent = delivered.deliveries
    assert refused["ok"] is False and "cloud metadata address" in refused["error"]
    assert not_sent["ok"] is False and "loopback" in not_sent["error"]
    assert missing.received == []
    again = deliver_alert(ws, delivered, [])  # nothing to send: nothing changes
    assert again == delivered
    with receiver(404) as missing:
        later = deliver_alert(ws, delivered, [missing.url], allow_private=True)
    assert len(later.deliveries) == 3  # appended, history kept
    assert later.deliveries[-1]["error"] == "HTTP 404 Not Found"
