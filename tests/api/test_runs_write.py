"""Runs written over real HTTP: create, log in batches (one transaction each, committed before
the answer, NaN and ±inf kept), end; and the bad input, which stores nothing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from api_world import World, error_of

from shipyard.core.errors import Conflict, Invalid, NotFound
from shipyard.core.records import RunStatus
from shipyard.store import audit
from shipyard.store.tables import RunRow
from shipyard.store.workspace import Workspace
from shipyard.train import create_run, end_run, get_run, metric_history
from shipyard.train.tracking import log_batch

pytestmark = pytest.mark.timeout(120)


def _create(world: World, **body: object) -> str:
    with world.client("scientist") as c:
        r = c.post("/api/v1/runs", json={"experiment": "remote", **body})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["id"]
    return run_id


def test_create_log_and_end_a_run(world: World) -> None:
    with world.client("scientist") as c:
        created = c.post(
            "/api/v1/runs",
            json={"experiment": "remote", "name": "nb-1", "params": {"C": 0.5}, "tags": {"t": "x"}},
        )
        run_id = created.json()["id"]
        at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        logged = c.post(
            f"/api/v1/runs/{run_id}/log",
            json={
                "metrics": [
                    {"key": "loss", "value": 0.9, "step": 0, "timestamp": at.isoformat()},
                    {"key": "loss", "value": 0.5},  # step 1: the next after the latest
                    {"key": "auc", "value": 0.7, "step": 10},
                ],
                "params": {"depth": 3},
                "tags": {"team": "risk"},
            },
        )
        more = c.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "loss", "value": 1}]})
        ended = c.post(f"/api/v1/runs/{run_id}/end", json={"status": "finished"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "running"
    assert created.json()["created_by"] == world.token_ids["scientist"]
    assert logged.status_code == 200, logged.text
    assert logged.json() == {"run_id": run_id, "metrics": 3, "params": 1, "tags": 1}
    assert more.status_code == 200, more.text
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "finished"
    run = get_run(world.ws, run_id)  # committed: read back through the service the CLI calls
    assert run.status == RunStatus.finished
    assert run.params == {"C": 0.5, "depth": 3}
    assert run.tags == {"t": "x", "team": "risk"}
    assert run.metrics == {"loss": 1.0, "auc": 0.7}
    loss = metric_history(world.ws, run_id, "loss")
    assert [(p.step, p.value) for p in loss] == [(0, 0.9), (1, 0.5), (2, 1.0)]
    assert loss[0].at.replace(tzinfo=UTC) == at
    with world.ws.db.read() as s:
        actors = {(e.action, e.actor) for e in audit.events(s, object_id=run_id)}
    assert actors == {
        ("run.start", world.token_ids["scientist"]),
        ("run.finished", world.token_ids["scientist"]),
    }


def test_nan_and_infinity_round_trip(world: World) -> None:
    run_id = _create(world)
    values = ["NaN", "Infinity", "-Infinity", 0.25]
    with world.client("scientist") as c:
        logged = c.post(
            f"/api/v1/runs/{run_id}/log",
            json={
                "metrics": [{"key": "loss", "value": v, "step": i} for i, v in enumerate(values)]
            },
        )
        c.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "div", "value": "NaN"}]})
        history = c.get(f"/api/v1/runs/{run_id}/metrics/loss").json()
        shown = c.get(f"/api/v1/runs/{run_id}").json()
    assert logged.status_code == 200, logged.text
    assert [p["value"] for p in history["items"]] == values
    assert shown["run"]["metrics"] == {"loss": 0.25, "div": "NaN"}
    stored = [p.value for p in metric_history(world.ws, run_id, "loss")]
    assert math.isnan(stored[0]) and stored[1:] == [math.inf, -math.inf, 0.25]


def test_a_log_call_beats_the_heartbeat(world: World) -> None:
    run_id = _create(world)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with world.ws.db.write() as s:
        row = s.get(RunRow, run_id)
        assert row is not None and row.heartbeat_at is not None
        row.heartbeat_at = long_ago
    assert get_run(world.ws, run_id).status == RunStatus.killed  # read as dead: no heartbeat
    with world.client("scientist") as c:
        beat = c.post(f"/api/v1/runs/{run_id}/log", json={})  # an empty batch: a heartbeat
    assert beat.status_code == 200, beat.text
    assert get_run(world.ws, run_id).status == RunStatus.running


def test_a_batch_failing_its_schema_is_422_naming_the_field_and_stores_nothing(
    world: World,
) -> None:
    run_id = _create(world)
    bad = {
        "metrics": [
            {"key": "loss", "value": 0.5, "step": 0},
            {"key": "loss", "value": "0.4", "step": 1},  # a number in a string: refused
        ],
        "params": {"depth": 3},
    }
    with world.client("scientist") as c:
        r = c.post(f"/api/v1/runs/{run_id}/log", json=bad)
        typo = c.post(f"/api/v1/runs/{run_id}/log", json={"metric": []})
        nan = c.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "x", "value": "nan"}]})
    assert r.status_code == 422, r.text
    body = error_of(r)
    assert "body field 'metrics.1.value" in body["message"]
    assert "'0.4'" in body["message"]
    assert typo.status_code == 422
    assert "'metric'" in error_of(typo)["message"]
    assert nan.status_code == 422
    assert "'NaN', 'Infinity' or '-Infinity'" in error_of(nan)["message"]
    run = get_run(world.ws, run_id)
    assert run.metrics == {} and run.params == {}
    assert metric_history(world.ws, run_id, "loss") == []


def test_a_bad_step_refuses_the_whole_batch(world: World) -> None:
    run_id = _create(world)
    batch = {
        "metrics": [{"key": "a", "value": 1, "step": 0}, {"key": "b", "value": 2, "step": 2**40}]
    }
    with world.client("scientist") as c:
        r = c.post(f"/api/v1/runs/{run_id}/log", json=batch)
    assert r.status_code == 422
    assert "metrics.1.step" in error_of(r)["message"]
    assert get_run(world.ws, run_id).metrics == {}


def test_logging_to_an_unknown_run_is_404(world: World) -> None:
    with world.client("scientist") as c:
        r = c.post("/api/v1/runs/run_nope/log", json={"metrics": [{"key": "a", "value": 1}]})
        ended = c.post("/api/v1/runs/run_nope/end", json={})
        child = c.post("/api/v1/runs", json={"experiment": "remote", "parent_id": "run_gone"})
    assert r.status_code == 404
    assert "run 'run_nope' does not exist" in error_of(r)["message"]
    assert ended.status_code == 404
    assert child.status_code == 404
    assert "run_gone" in error_of(child)["message"]


def test_logging_to_an_ended_run_is_409_with_its_status(world: World) -> None:
    run_id = _create(world)
    with world.client("scientist") as c:
        c.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "a", "value": 1}]})
        c.post(f"/api/v1/runs/{run_id}/end", json={"status": "failed", "note": "OOM"})
        late = c.post(f"/api/v1/runs/{run_id}/log", json={"metrics": [{"key": "a", "value": 2}]})
        again = c.post(f"/api/v1/runs/{run_id}/end", json={"status": "finished"})
    assert late.status_code == 409, late.text
    body = error_of(late)
    assert "with status 'failed'" in body["message"]
    assert body["details"] == {"run_id": run_id, "status": "failed"}
    assert again.status_code == 409
    run = get_run(world.ws, run_id)
    assert run.status == RunStatus.failed and run.note == "OOM"
    assert [p.value for p in metric_history(world.ws, run_id, "a")] == [1.0]


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("viewer", "POST", "/api/v1/runs", {"experiment": "nope"}),
        ("deployer", "POST", "/api/v1/runs/{run}/log", {"metrics": [{"key": "a", "value": 1}]}),
        ("predictor", "POST", "/api/v1/runs/{run}/log", {"params": {"p": 1}}),
        ("viewer", "POST", "/api/v1/runs/{run}/end", {"status": "killed"}),
    ],
)
def test_the_wrong_role_is_403_and_changes_nothing(
    world: World, role: str, method: str, path: str, body: dict[str, object]
) -> None:
    run_id = _create(world)
    before = get_run(world.ws, run_id)
    with world.client(role) as c:
        r = c.request(method, path.format(run=run_id), json=body)
    assert r.status_code == 403, r.text
    assert get_run(world.ws, run_id) == before
    assert [r.id for r in _experiment(world, "nope")] == []


def _experiment(world: World, name: str) -> list[RunRow]:
    with world.ws.db.read() as s:
        return list(s.query(RunRow).filter(RunRow.experiment == name))


# -- the service the log route calls, on SQLite and PostgreSQL ------------------------------------


def test_log_batch_is_one_transaction_on_both_backends(any_workspace: Workspace) -> None:
    ws = any_workspace
    run_id = create_run(ws, experiment="svc", heartbeat=True)
    points = [("loss", math.nan, None, None), ("loss", math.inf, None, None), ("auc", 0.5, 7, None)]
    assert log_batch(ws, run_id, points, {"C": 1}, {"t": "x"}) == 3
    with pytest.raises(Invalid, match=r"metric 'x': step 'soon' must be a whole number"):
        log_batch(ws, run_id, [("x", 1.0, 0, None), ("x", 2.0, "soon", None)], {"C": 2})  # type: ignore[list-item]
    run = get_run(ws, run_id)
    assert run.params == {"C": 1} and set(run.metrics) == {"loss", "auc"}
    history = metric_history(ws, run_id, "loss")
    assert [p.step for p in history] == [0, 1]
    assert math.isnan(history[0].value) and history[1].value == math.inf


def test_a_run_presumed_dead_lives_again_when_it_logs_but_an_ended_one_refuses(
    any_workspace: Workspace,
) -> None:
    ws = any_workspace
    dead = create_run(ws, experiment="svc", heartbeat=True)
    with ws.db.write() as s:
        row = s.get(RunRow, dead)
        assert row is not None
        row.heartbeat_at = datetime.now(UTC) - timedelta(hours=1)
    create_run(ws, experiment="svc")  # records the stale run as killed (mark_killed)
    assert get_run(ws, dead).status == RunStatus.killed
    log_batch(ws, dead, [("a", 1.0, 0, None)])  # only slow: its next write revives it
    assert get_run(ws, dead).status == RunStatus.running

    end_run(ws, dead, RunStatus.killed, "by hand", if_open=True)
    with pytest.raises(Conflict, match=r"with status 'killed'; an ended run takes no more"):
        log_batch(ws, dead, [("a", 2.0, 1, None)])
    with pytest.raises(Conflict, match="with status 'killed'"):
        end_run(ws, dead, RunStatus.finished, if_open=True)
    assert [p.value for p in metric_history(ws, dead, "a")] == [1.0]
    with pytest.raises(NotFound, match="run 'run_gone' does not exist"):
        log_batch(ws, "run_gone", [])
