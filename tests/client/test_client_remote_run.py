"""`shipyard.start_run()` with SHIPYARD_URL set: the run is tracked on that (real) server,
through the module functions, with the local run's semantics."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
from api_world import World

import shipyard
from shipyard.client import Client
from shipyard.client.remote import RemoteRun
from shipyard.core.errors import Conflict, NotSupported, Unavailable
from shipyard.core.records import RunStatus
from shipyard.train import get_run, metric_history

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def remote(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "no-workspace"))
    monkeypatch.setenv("SHIPYARD_URL", world.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", world.tokens["scientist"])


def test_a_run_logged_through_the_module_functions_lands_on_the_server(
    world: World, tmp_path: Path
) -> None:
    with shipyard.start_run("sdk-remote", name="r", params={"C": 0.1}, tags={"a": 1}) as run:
        assert isinstance(run, RemoteRun) and shipyard.active_run() is run
        shipyard.log_metric("loss", 0.5)
        shipyard.log_metric("loss", math.nan)
        shipyard.log_metrics({"loss": 0.25, "auc": 0.8}, step=5)
        shipyard.log_param("depth", 3)
        shipyard.log_params({"lr": math.inf})
        shipyard.set_tag("team", "risk")

    stored = get_run(world.ws, run.id)
    assert stored.status is RunStatus.finished and stored.created_by == world.token_ids["scientist"]
    assert stored.params == {"C": 0.1, "depth": 3, "lr": "inf"}
    assert stored.tags == {"a": "1", "team": "risk"}
    points = [(p.step, p.value) for p in metric_history(world.ws, run.id, "loss")]
    assert points[0] == (0, 0.5) and points[1][0] == 1 and math.isnan(points[1][1])
    assert points[2] == (5, 0.25) and len(points) == 3  # each point once
    assert stored.metrics["auc"] == 0.8
    assert not (tmp_path / "no-workspace").exists()  # no local workspace was made


def test_the_users_exception_propagates_and_the_run_fails_with_its_points(world: World) -> None:
    with pytest.raises(ValueError, match="diverged"), shipyard.start_run("sdk-remote") as run:
        shipyard.log_metric("loss", 9.0)
        raise ValueError("diverged")

    stored = get_run(world.ws, run.id)
    assert stored.status is RunStatus.failed and stored.note == "ValueError: diverged"
    assert stored.metrics["loss"] == 9.0


def test_an_explicit_flush_sends_at_once_and_a_refusal_is_raised_by_the_next_call(
    world: World,
) -> None:
    with (
        pytest.raises(Conflict, match="an ended run takes no more"),
        shipyard.start_run("sdk-remote") as run,
    ):
        assert isinstance(run, RemoteRun)
        shipyard.log_metric("loss", 1.0)
        run.flush()
        assert get_run(world.ws, run.id).metrics == {"loss": 1.0}
        run.client.runs.end(run.id, "killed", note="by someone else")
        shipyard.log_metric("loss", 2.0)
        run.flush()  # refused: the run ended
    stored = get_run(world.ws, run.id)
    assert stored.status is RunStatus.killed and stored.metrics == {"loss": 1.0}


def test_artifacts_are_not_supported_remotely(tmp_path: Path) -> None:
    file = tmp_path / "model.txt"
    file.write_text("x")
    with (
        shipyard.start_run("sdk-remote"),
        pytest.raises(NotSupported, match="takes no run artifacts yet"),
    ):
        shipyard.log_artifact(file)


def test_a_workspace_given_keeps_the_run_local(world: World) -> None:
    with shipyard.start_run("sdk-local", workspace=world.ws) as run:
        shipyard.log_metric("loss", 0.1)
    assert not isinstance(run, RemoteRun)
    assert get_run(world.ws, run.id).metrics == {"loss": 0.1}


def test_a_batch_the_server_was_not_reached_for_is_kept_and_sent_once_later(
    world: World,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Client(world.url, world.tokens["scientist"]) as client, Client(dead, "t") as gone:
        made = client.runs.create("sdk-remote")
        run = RemoteRun(gone, made.id, owns_client=False)
        run.log_metric("loss", 0.5)
        run.log_params({"depth": 3})
        with pytest.raises(Unavailable, match="cannot reach the Shipyard server"):
            run.flush()
        run.client = client  # the server is back
        run.log_metric("loss", 0.25)
        run.end()

    stored = get_run(world.ws, made.id)
    assert stored.status is RunStatus.finished and stored.params == {"depth": 3}
    assert [(p.step, p.value) for p in metric_history(world.ws, made.id, "loss")] == [
        (0, 0.5),
        (1, 0.25),
    ]
