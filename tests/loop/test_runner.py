"""The closed loop: policies, retrain, shadow, canary, promotion, stop, and the audit trail.

The servers' part (answering, shadowing, ramping the canary) is played by writing the
prediction log and calling the same endpoint service the server's canary guard calls.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loop_cases import ENDPOINT, drifted, label, log_traffic, served
from projects import customers
from shipyard.core.errors import SpecError
from shipyard.core.records import Endpoint, Rollout
from shipyard.core.spec import DecayPolicy, DecaySpec, DriftPolicy, DriftWhen
from shipyard.data import get_version as get_dataset_version
from shipyard.loop.rollout import progress, stop
from shipyard.loop.rollouts import list_rollouts
from shipyard.loop.runner import LoopProcess, Scheduler, Turn, run_once
from shipyard.registry import get_version
from shipyard.serve.endpoints import (
    advance_canary,
    get_endpoint,
    pause_loop,
    resume_loop,
    rollback_canary,
)
from shipyard.store import audit
from shipyard.store.workspace import Workspace


def _drift_and_labels(ws: Workspace, version_id_ref: str, rows: int = 1_500) -> None:
    shifted = drifted(rows)
    ids = log_traffic(ws, get_version(ws, version_id_ref), shifted)
    label(ws, ids, shifted)


def test_steady_endpoint_is_only_watched(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    same = customers(300, seed=4)
    label(workspace, log_traffic(workspace, setup.champion, same), same)

    turns = run_once(workspace, setup.spec)

    assert [(t.endpoint, t.action) for t in turns] == [(ENDPOINT, "watched")]
    assert "no retrain policy holds" in turns[0].reason
    assert list_rollouts(workspace) == []


def test_drift_retrains_shadows_canaries_and_promotes(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p")
    _drift_and_labels(ws, "churn@1")

    first = run_once(ws, setup.spec)[0]

    assert first.action == "retrained"
    rollout = first.rollout
    assert rollout is not None, first.reason
    assert rollout.stage == "shadow", rollout.reason
    assert rollout.trigger in ("drift", "decay")
    assert rollout.candidate_ref == "churn@2"
    training = get_dataset_version(ws, rollout.dataset_ref or "")
    assert training.ref == "customers@2"
    assert training.lineage.parent == setup.champion.dataset_version_id
    assert "labelled rows of endpoint churn" in training.lineage.source
    assert training.rows == 600 + 1_050  # the newest 30% of the labels are held out to compare
    route = get_endpoint(ws, ENDPOINT)
    assert [s.ref for s in route.shadows] == ["churn@2"]
    assert route.champion_ref == "churn@1"

    # Too early to judge: the shadow has seen nothing yet.
    assert progress(ws, setup.spec, rollout).stage == "shadow"

    # The server copies requests to the shadow; the champion answers them.
    more = drifted(60, seed=12)
    at = datetime.now(UTC)
    log_traffic(ws, setup.champion, more, at=at, prefix="s")
    log_traffic(ws, get_version(ws, "churn@2"), more, at=at, prefix="s", shadow=True)
    second = run_once(ws, setup.spec)[0]
    assert second.rollout is not None and second.rollout.stage == "canary", second.reason
    shadow_note = [e for e in second.rollout.events if e.message.startswith("shadow passed")]
    assert shadow_note and shadow_note[0].details["requests"] == 60
    route = get_endpoint(ws, ENDPOINT)
    assert route.shadows == []
    assert route.canary is not None and route.canary.ref == "churn@2"
    assert route.canary.steps == [50, 100] and route.canary.guard["min_requests"] == 20

    # The servers' canary guard passes each step (as serve.runtime does).
    advance_canary(ws, ENDPOINT)
    assert run_once(ws, setup.spec)[0].rollout.stage == "canary"  # type: ignore[union-attr]
    advance_canary(ws, ENDPOINT)
    done = run_once(ws, setup.spec)[0].rollout
    assert done is not None and done.stage == "promoted", done
    assert get_endpoint(ws, ENDPOINT).champion_ref == "churn@2"
    assert "champion" in get_version(ws, "churn@2").aliases
    # Statuses tell the truth (issue 17 #15): the champion is deployed, the one it replaced is
    # approved again (a rollback to it is one command), and the canary is over.
    assert get_version(ws, "churn@2").status == "deployed"
    assert get_version(ws, "churn@1").status == "approved"
    assert get_endpoint(ws, ENDPOINT).targets() == {done.candidate_id: "churn@2"}

    stages = [e.stage for e in done.events]
    assert stages[0] == "retraining" and stages[-1] == "promoted"
    assert "shadow" in stages and "canary" in stages
    with ws.db.read() as s:
        actions = [e.action for e in audit.events(s, action="loop.", limit=None)]
    assert {"loop.retraining", "loop.shadow", "loop.canary", "loop.promoted"} <= set(actions)


def test_a_rolled_back_canary_ends_the_rollout_and_the_champion_stays(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p", retrain={"when": ["drift"], "rollout": {"shadow": 0}})
    _drift_and_labels(ws, "churn@1")
    rollout = run_once(ws, setup.spec)[0].rollout
    assert rollout is not None and rollout.stage == "canary", rollout

    rollback_canary(ws, ENDPOINT, "error rate 9% is above the guard error_rate=0.01")
    ended = run_once(ws, setup.spec)[0].rollout

    assert ended is not None and ended.stage == "rolled_back"
    assert "error rate 9%" in ended.reason
    assert get_endpoint(ws, ENDPOINT).champion_ref == "churn@1"
    # Within a window of the last rollout, a policy that still holds waits.
    waiting = run_once(ws, setup.spec)[0]
    assert waiting.action == "waiting" and "less than the cooldown (1h) ago" in waiting.reason


def test_a_person_can_stop_the_loop(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p")
    _drift_and_labels(ws, "churn@1")
    rollout = run_once(ws, setup.spec)[0].rollout
    assert rollout is not None and rollout.stage == "shadow"

    stopped = stop(ws, ENDPOINT, "not during the sale")

    assert isinstance(stopped, Rollout) and stopped.stage == "stopped"
    assert "not during the sale" in stopped.reason and "churn@1 stays champion" in stopped.reason
    route = get_endpoint(ws, ENDPOINT)
    assert route.shadows == [] and route.champion_ref == "churn@1"
    paused = stop(ws, ENDPOINT)  # nothing left to stop: the loop is paused for the endpoint
    assert isinstance(paused, Endpoint) and paused.loop_paused == f"by {ws.actor}"


def test_a_paused_endpoint_is_watched_but_its_rollout_waits(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Issue 17 #14: `shipyard loop pause` is honoured by run-once (and so the scheduler)."""
    ws = workspace
    setup = served(ws, tmp_path / "p")
    _drift_and_labels(ws, "churn@1")
    pause_loop(ws, ENDPOINT, "quarter-end freeze")
    [turn] = run_once(ws, setup.spec)
    assert turn.action == "paused" and turn.rollout is None and turn.report is not None
    assert turn.reason.startswith("loop paused (quarter-end freeze; `shipyard loop resume churn`)")
    assert "would retrain: " in turn.reason
    assert list_rollouts(ws) == []

    resume_loop(ws, ENDPOINT)
    rollout = run_once(ws, setup.spec)[0].rollout
    assert rollout is not None and rollout.stage == "shadow"
    pause_loop(ws, ENDPOINT)
    more = drifted(60, seed=12)  # enough shadowed requests to judge, but nobody may
    log_traffic(ws, get_version(ws, "churn@2"), more, prefix="s", shadow=True)
    [turn] = run_once(ws, setup.spec)
    assert turn.action == "paused" and f"rollout {rollout.id} waits at shadow" in turn.reason
    assert list_rollouts(ws)[0].stage == "shadow"


def test_a_candidate_that_does_not_beat_the_champion_is_rejected(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p", retrain={"when": [{"every": "1s"}], "margin": 0.5})
    same = customers(400, seed=9)
    label(ws, log_traffic(ws, setup.champion, same), same)

    turn = run_once(ws, setup.spec, now=datetime.now(UTC) + timedelta(seconds=5))[0]

    assert turn.rollout is not None and turn.rollout.trigger == "schedule"
    assert turn.rollout.stage == "rejected", turn.rollout.reason
    assert "does not beat the champion by the margin 0.5" in turn.rollout.reason
    assert get_endpoint(ws, ENDPOINT).shadows == []


def test_a_candidate_that_fails_a_gate_is_rejected(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p")
    _drift_and_labels(ws, "churn@1", rows=400)
    gated = setup.spec.model_copy(update={"gates": ["roc_auc >= 0.999"]})

    rollout = run_once(ws, gated)[0].rollout

    assert rollout is not None and rollout.stage == "rejected"
    assert "failed its gates: roc_auc >= 0.999" in rollout.reason
    assert get_version(ws, rollout.candidate_ref or "").status == "rejected"


def test_policies_naming_unknown_features_or_metrics_are_spec_errors(
    workspace: Workspace, tmp_path: Path
) -> None:
    setup = served(workspace, tmp_path / "p")
    retrain = setup.spec.retrain
    bad_feature = setup.spec.model_copy(
        update={
            "retrain": retrain.model_copy(
                update={"when": [DriftPolicy(drift=DriftWhen(features=["tenure", "shoe_size"]))]}
            )
        }
    )
    with pytest.raises(SpecError, match=r"retrain.when\[0\].drift.features: 'shoe_size'"):
        run_once(workspace, bad_feature)
    bad_metric = setup.spec.model_copy(
        update={
            "retrain": retrain.model_copy(
                update={"when": [DecayPolicy(decay=DecaySpec(metric="rmse"))]}
            )
        }
    )
    with pytest.raises(SpecError, match=r"retrain.when\[0\].decay.metric: metric 'rmse'"):
        run_once(workspace, bad_metric)


def test_a_webhook_to_the_metadata_address_is_a_spec_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    setup = served(
        workspace, tmp_path / "p", monitor={"webhooks": ["http://169.254.169.254/latest"]}
    )
    with pytest.raises(SpecError, match=r"monitor.webhooks\[0\].*169.254.169.254"):
        run_once(workspace, setup.spec)


def test_the_scheduler_runs_turns_until_stopped(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    _drift_and_labels(workspace, "churn@1", rows=400)
    seen: list[Turn] = []
    done = threading.Event()

    def on_turn(turn: Turn) -> None:
        seen.append(turn)
        done.set()

    scheduler = Scheduler(
        lambda: Workspace.open(workspace.settings, actor="loop-test"),
        setup.spec,
        interval=0.2,
        on_turn=on_turn,
    ).start()
    try:
        assert done.wait(120), "no turn within 120 s"
    finally:
        scheduler.stop(timeout=120)
    assert seen[0].endpoint == ENDPOINT and seen[0].action == "retrained"
    rollout = list_rollouts(workspace, ENDPOINT)[0]
    assert rollout.events[0].stage == "retraining"
    with workspace.db.read() as s:
        actors = {e.actor for e in audit.events(s, action="loop.", limit=None)}
    assert actors == {"loop-test"}  # the loop acts under its own name in the audit log


def test_the_loop_process_retrains_in_its_own_process_and_stops(
    workspace: Workspace, tmp_path: Path
) -> None:
    import os
    import time

    setup = served(workspace, tmp_path / "p")
    _drift_and_labels(workspace, "churn@1", rows=400)
    loop = LoopProcess(
        workspace.settings, setup.spec, interval=0.2, actor="loop-process-test"
    ).start()
    try:
        assert loop.pid is not None and loop.pid != os.getpid()
        deadline = time.monotonic() + 240
        while not list_rollouts(workspace, ENDPOINT) and time.monotonic() < deadline:
            assert loop.is_alive(), "the loop process died"
            time.sleep(0.5)
    finally:
        loop.stop(timeout=240)
    assert not loop.is_alive()
    rollout = list_rollouts(workspace, ENDPOINT)[0]
    assert rollout.events[0].stage == "retraining"
    with workspace.db.read() as s:
        actors = {e.actor for e in audit.events(s, action="loop.", limit=None)}
    assert actors == {"loop-process-test"}


def test_a_loop_process_that_dies_is_started_again(workspace: Workspace, tmp_path: Path) -> None:
    import os
    import signal
    import time

    setup = served(workspace, tmp_path / "p")
    loop = LoopProcess(workspace.settings, setup.spec, interval=3600, restart_delay=0.1).start()
    try:
        first = loop.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # the out-of-memory killer, say
        deadline = time.monotonic() + 60
        while (loop.restarts < 1 or not loop.is_alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loop.restarts == 1 and loop.is_alive() and loop.pid != first
    finally:
        loop.stop(timeout=60)
    assert not loop.is_alive()


def test_stopping_while_it_trains_keeps_the_candidate_out(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    setup = served(ws, tmp_path / "p")
    _drift_and_labels(ws, "churn@1", rows=400)
    stopped: list[str] = []

    def on_trial(*_: object) -> None:  # a person runs `shipyard loop stop` mid-search
        if not stopped:
            halted = stop(ws, ENDPOINT, "hold on")
            stopped.append(halted.stage if isinstance(halted, Rollout) else "paused")

    rollout = run_once(ws, setup.spec, on_trial=on_trial)[0].rollout

    assert stopped == ["stopped"]
    assert rollout is not None and rollout.stage == "stopped"
    route = get_endpoint(ws, ENDPOINT)
    assert route.shadows == [] and route.canary is None and route.champion_ref == "churn@1"


def test_a_decay_policy_on_its_own_metric_triggers(workspace: Workspace, tmp_path: Path) -> None:
    policy = {"decay": {"metric": "accuracy", "drop": 0.01, "min_labels": 50}}
    setup = served(workspace, tmp_path / "p", retrain={"when": [policy]})
    _drift_and_labels(workspace, "churn@1", rows=400)

    turn = run_once(workspace, setup.spec)[0]

    assert turn.rollout is not None and turn.rollout.trigger == "decay", turn.reason
    assert turn.rollout.events[0].message.startswith("decay: accuracy")
