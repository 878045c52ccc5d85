"""Monitoring, alerts and the loop over real HTTP, on a server started with a project spec and a
served churn model with labelled production traffic (tests/loop_cases.py): the answers are the
services' (`loop.watch.endpoint_report`, `loop.runner.run_once`, `loop.rollout.stop`), the
changes are audited under the token's id, and the wrong role changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from api_world import World, error_of, running_world

from loop_cases import ENDPOINT, label, log_traffic, served
from projects import customers
from shipyard.api.routes import OPERATIONS
from shipyard.loop.rollouts import list_rollouts, start_rollout
from shipyard.loop.watch import endpoint_report
from shipyard.monitor import raise_alert
from shipyard.monitor.alerts import get_alert, list_alerts
from shipyard.serve.endpoints import get_endpoint
from shipyard.store import audit
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(300)
SPEC: dict[str, Any] = {}


def _served(world: World, tmp: Path) -> dict[str, Any]:
    setup = served(world.ws, tmp / "project")
    same = customers(300, seed=4)
    label(world.ws, log_traffic(world.ws, setup.champion, same), same)
    SPEC["spec"] = setup.spec
    return {"spec": setup.spec}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("loop-api"), _served) as w:
        yield w


@pytest.fixture(scope="module")
def document(world: World) -> dict[str, Any]:
    with world.client("viewer") as c:
        doc: dict[str, Any] = c.get("/openapi.json").json()
    return doc


def _as_documented(doc: dict[str, Any], r: httpx.Response) -> dict[str, Any]:
    """The answer's body, checked against the operation's documented response."""
    path = r.request.url.path
    op = next(o for o in OPERATIONS if re.fullmatch(re.sub(r"{\w+}", "[^/]+", o.path), path)
              and o.method == r.request.method)  # fmt: skip
    described = doc["paths"][op.path][op.method.lower()]["responses"][str(r.status_code)]
    schema = described["content"]["application/json"]["schema"]
    body: dict[str, Any] = r.json()
    jsonschema.Draft202012Validator({**doc, **schema}).validate(body)
    return body


def test_the_report_is_the_monitor_services(world: World, document: dict[str, Any]) -> None:
    with world.client("viewer") as c:
        r = c.get(f"/api/v1/endpoints/{ENDPOINT}/report", params={"window": "1h", "history": 3})
        bad = c.get(f"/api/v1/endpoints/{ENDPOINT}/report", params={"window": "90"})
        missing = c.get("/api/v1/endpoints/nope/report")
    assert r.status_code == 200, r.text
    body = _as_documented(document, r)
    expected = endpoint_report(world.ws, ENDPOINT, SPEC["spec"], window=timedelta(hours=1))
    got = body["report"]
    assert got["model_ref"] == expected.model_ref == "churn@1"
    assert got["drift"]["current_rows"] == expected.drift.current_rows == 300
    assert [f["column"] for f in got["drift"]["features"]] == [
        f.column for f in expected.drift.features
    ]
    assert got["drift"]["drifted"] is expected.drift.drifted
    assert len(got["traffic"]) == 3  # `history` windows, the judged one last
    assert bad.status_code == 422
    assert "query field 'window'" in error_of(bad)["message"]
    assert "'90' is not a duration" in error_of(bad)["message"]
    assert missing.status_code == 404
    assert "nope" in error_of(missing)["message"]


def test_alerts_page_filter_and_ack_under_the_token(world: World, document: dict[str, Any]) -> None:
    raised = [
        raise_alert(world.ws, "paged", "slo", f"paged: alert {i}", key=f"paged:slo:{i}")
        for i in range(5)
    ]
    ids = [a.id for a in raised if a is not None][::-1]  # newest first
    seen: list[str] = []
    cursor = None
    with world.client("viewer") as c:
        for _ in range(5):
            params = {"endpoint": "paged", "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = _as_documented(document, c.get("/api/v1/alerts", params=params))
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        tampered = c.get("/api/v1/alerts", params={"endpoint": "other", "cursor": "x.y"})
    assert seen == ids
    assert tampered.status_code == 422
    with world.client("scientist") as c:
        refused = c.post(f"/api/v1/alerts/{ids[0]}/ack")
    assert refused.status_code == 403
    assert get_alert(world.ws, ids[0]).acked_at is None
    with world.client("deployer") as c:
        acked = c.post(f"/api/v1/alerts/{ids[0]}/ack")
        unknown = c.post("/api/v1/alerts/alr_nope/ack")
    assert acked.status_code == 200, acked.text
    assert _as_documented(document, acked)["acked_by"] == world.token_ids["deployer"]
    assert unknown.status_code == 404
    with world.client("viewer") as c:
        still_open = c.get("/api/v1/alerts", params={"endpoint": "paged"}).json()["items"]
        every = c.get("/api/v1/alerts", params={"endpoint": "paged", "open": False}).json()
    assert [a["id"] for a in still_open] == ids[1:]
    assert [a["id"] for a in every["items"]] == ids
    with world.ws.db.read() as s:
        events = audit.events(s, action="alert.ack", object_id=ids[0])
    assert [e.actor for e in events] == [world.token_ids["deployer"]]


def test_run_once_answers_each_endpoints_turn(world: World, document: dict[str, Any]) -> None:
    with world.client("deployer") as c:
        one = c.post("/api/v1/loop/run-once", json={"endpoint": ENDPOINT})
        every = c.post("/api/v1/loop/run-once", json={})
        unknown = c.post("/api/v1/loop/run-once", json={"endpoint": "nope"})
    assert one.status_code == 200, one.text
    turns = _as_documented(document, one)["turns"]
    assert [(t["endpoint"], t["action"]) for t in turns] == [(ENDPOINT, "watched")]
    assert "no retrain policy holds" in turns[0]["reason"]
    assert turns[0]["report"]["model_ref"] == "churn@1"
    assert [t["endpoint"] for t in every.json()["turns"]] == [ENDPOINT]  # the project's
    assert unknown.status_code == 404
    assert list_rollouts(world.ws, ENDPOINT) == []


def test_pause_stop_resume_and_status(world: World, document: dict[str, Any]) -> None:
    deployer = world.token_ids["deployer"]
    with world.client("deployer") as c:
        paused = c.post(f"/api/v1/loop/{ENDPOINT}/pause", json={"reason": "freeze"})
        turn = c.post("/api/v1/loop/run-once", json={"endpoint": ENDPOINT}).json()["turns"][0]
        resumed = c.post(f"/api/v1/loop/{ENDPOINT}/resume")
    assert _as_documented(document, paused)["paused"] == "freeze"
    assert turn["action"] == "paused"
    assert "freeze" in turn["reason"]
    assert _as_documented(document, resumed)["paused"] is None

    rollout = start_rollout(
        world.ws, ENDPOINT, trigger="manual", champion_ref="churn@1", reason="by hand"
    )
    with world.client("deployer") as c:
        stopped = c.post(f"/api/v1/loop/{ENDPOINT}/stop", json={"reason": "not now"})
        no_rollout = c.post(f"/api/v1/loop/{ENDPOINT}/stop", json={})  # pauses instead
        c.post(f"/api/v1/loop/{ENDPOINT}/resume")
    with world.client("viewer") as c:
        status = c.get(f"/api/v1/loop/{ENDPOINT}", params={"limit": 5})
        unknown = c.get("/api/v1/loop/nope")
    state = _as_documented(document, stopped)
    assert state["paused"] is None
    assert [(r["id"], r["stage"]) for r in state["rollouts"]] == [(rollout.id, "stopped")]
    assert [e["stage"] for e in state["rollouts"][0]["events"]] == ["retraining", "stopped"]
    assert "not now" in state["rollouts"][0]["reason"]
    assert no_rollout.json()["paused"] == f"by {deployer}"  # the pause names the token
    shown = _as_documented(document, status)
    assert shown["rollouts"] == state["rollouts"]
    assert unknown.status_code == 404
    with world.ws.db.read() as s:
        actors = {e.action: e.actor for e in audit.events(s, object_id=ENDPOINT)}
    assert actors["endpoint.loop.pause"] == deployer
    assert actors["endpoint.loop.resume"] == deployer


@pytest.mark.parametrize(
    ("role", "path", "body"),
    [
        ("scientist", "/api/v1/loop/run-once", {"endpoint": ENDPOINT}),
        ("viewer", f"/api/v1/loop/{ENDPOINT}/pause", {"reason": "x"}),
        ("scientist", f"/api/v1/loop/{ENDPOINT}/stop", {}),
        ("predictor", f"/api/v1/loop/{ENDPOINT}/resume", None),
    ],
)
def test_the_wrong_role_changes_nothing_in_the_loop(
    world: World, role: str, path: str, body: dict[str, Any] | None
) -> None:
    before = get_endpoint(world.ws, ENDPOINT)
    rollouts = list_rollouts(world.ws, ENDPOINT)
    with world.ws.db.read() as s:
        events = len(audit.events(s, limit=None))
    with world.client(role) as c:
        r = c.post(path, json=body)
    assert r.status_code == 403, r.text
    assert f"role {role!r}" in error_of(r)["message"]
    assert get_endpoint(world.ws, ENDPOINT) == before
    assert list_rollouts(world.ws, ENDPOINT) == rollouts
    with world.ws.db.read() as s:
        assert len(audit.events(s, limit=None)) == events


def test_alerts_page_by_time_and_id_on_both_backends(any_workspace: Workspace) -> None:
    ws = any_workspace
    for i in range(5):
        raise_alert(ws, "e", "drift", f"e: drift {i}", key=f"e:drift:{i}")
    every = list_alerts(ws, "e")
    pages, before = [], None
    while True:
        page = list_alerts(ws, "e", limit=2, before=before)
        if not page:
            break
        pages.append([a.id for a in page])
        before = (page[-1].created_at, page[-1].id)
    assert [i for p in pages for i in p] == [a.id for a in every]
    assert [len(p) for p in pages] == [2, 2, 1]
