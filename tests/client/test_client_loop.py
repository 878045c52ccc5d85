"""Monitoring, alerts and the loop from the client, against a real server started with a
project spec and a served churn model with labelled traffic (tests/loop_cases.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_world import World, running_world

from loop_cases import ENDPOINT, label, log_traffic, served
from projects import customers
from shipyard.client import Client
from shipyard.core.errors import Forbidden, NotFound
from shipyard.monitor import raise_alert
from shipyard.monitor.alerts import get_alert

pytestmark = pytest.mark.timeout(300)


def _served(world: World, tmp: Path) -> dict[str, Any]:
    setup = served(world.ws, tmp / "project")
    same = customers(300, seed=4)
    label(world.ws, log_traffic(world.ws, setup.champion, same), same)
    return {"spec": setup.spec}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("client-loop"), _served) as w:
        yield w


@pytest.fixture
def deployer(world: World) -> Iterator[Client]:
    with Client(world.url, world.tokens["deployer"]) as client:
        yield client


def test_the_report_of_the_served_endpoint(deployer: Client) -> None:
    found = deployer.endpoints.report(ENDPOINT, window="1h", history=3)

    assert found.endpoint == ENDPOINT and found.report.model_ref == "churn@1"
    assert found.report.drift.current_rows == 300
    assert len(found.report.traffic) == 3
    with pytest.raises(NotFound, match="nope"):
        deployer.endpoints.report("nope")


def test_alerts_are_paged_and_acked_under_the_token(world: World, deployer: Client) -> None:
    raised = [
        raise_alert(world.ws, "paged", "slo", f"paged: alert {i}", key=f"client:slo:{i}")
        for i in range(3)
    ]
    ids = [a.id for a in raised if a is not None][::-1]  # newest first
    listed = deployer.alerts.list(endpoint="paged")

    assert [a.id for a in listed.page(limit=2).items] == ids[:2]
    assert [a.id for a in listed] == ids  # every page
    acked = deployer.alerts.ack(ids[0])
    again = deployer.alerts.ack(ids[0])

    assert acked.acked_by == world.token_ids["deployer"] and acked.acked_at is not None
    assert again.acked_at == acked.acked_at  # no change
    assert [a.id for a in deployer.alerts.list(endpoint="paged")] == ids[1:]
    assert [a.id for a in deployer.alerts.list(endpoint="paged", open=False)] == ids
    with (
        Client(world.url, world.tokens["viewer"]) as viewer,
        pytest.raises(Forbidden, match="role 'viewer'"),
    ):
        viewer.alerts.ack(ids[1])
    assert get_alert(world.ws, ids[1]).acked_at is None


def test_pause_run_once_resume_stop_and_status(world: World, deployer: Client) -> None:
    paused = deployer.loop.pause(ENDPOINT, "freeze")
    turns = deployer.loop.run_once(ENDPOINT).turns
    resumed = deployer.loop.resume(ENDPOINT)
    watched = deployer.loop.run_once(ENDPOINT).turns
    status = deployer.loop.status(ENDPOINT, limit=5)

    assert paused.paused == "freeze"
    assert [(t.endpoint, t.action) for t in turns] == [(ENDPOINT, "paused")]
    assert "freeze" in turns[0].reason
    assert resumed.paused is None and status.paused is None
    assert [t.action for t in watched] == ["watched"]
    assert watched[0].report is not None and watched[0].report.model_ref == "churn@1"
    assert status.rollouts == []
    stopped = deployer.loop.stop(ENDPOINT)  # no rollout to halt: pauses the loop
    assert stopped.paused == f"by {world.token_ids['deployer']}"
    deployer.loop.resume(ENDPOINT)
    with pytest.raises(NotFound, match="nope"):
        deployer.loop.status("nope")
