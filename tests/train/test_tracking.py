"""The tracking API: buffered writes that lose nothing acknowledged, run statuses, search."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import shipyard
from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import RunStatus
from shipyard.core.settings import Settings
from shipyard.store import audit
from shipyard.store.tables import MetricRow, RunRow
from shipyard.store.workspace import Workspace
from shipyard.train import (
    RunLogger,
    create_run,
    end_run,
    get_run,
    metric_history,
    plot_histories,
    search_runs,
    tracking,
)


def _count_metrics(ws: Workspace, run_id: str) -> int:
    with ws.db.read() as s:
        return int(
            s.scalar(select(func.count()).select_from(MetricRow).where(MetricRow.run_id == run_id))
            or 0
        )


def _child_env(ws: Workspace) -> dict[str, str]:
    """A child process's environment: this workspace, and the shipyard under test (not
    whichever one the interpreter has installed)."""
    source = str(Path(shipyard.__file__).parents[1])
    return {"SHIPYARD_HOME": str(ws.home), "PATH": "/usr/bin:/bin", "PYTHONPATH": source}


def test_run_records_params_metrics_tags_and_ends_finished(any_workspace: Workspace) -> None:
    ws = any_workspace
    with shipyard.start_run("exp", name="first", workspace=ws, seed=7) as run:
        shipyard.log_params({"C": 0.5, "layers": [64, 32]})
        shipyard.log_param("solver", "lbfgs")
        for step in range(50):
            shipyard.log_metric("loss", 1.0 / (step + 1), step=step)
        shipyard.log_metrics({"acc": 0.8, "f1": 0.7})
        shipyard.set_tag("team", "risk")
    got = get_run(ws, run.id)
    assert got.status is RunStatus.finished
    assert got.params == {"C": 0.5, "layers": [64, 32], "solver": "lbfgs"}
    assert got.tags == {"team": "risk"}
    assert got.metrics["loss"] == pytest.approx(1 / 50)
    assert got.metrics["acc"] == 0.8
    assert got.seed == 7
    assert "numpy" in got.packages
    history = metric_history(ws, run.id, "loss")
    assert [p.step for p in history] == list(range(50))
    assert _count_metrics(ws, run.id) == 52


def test_steps_default_to_a_counter_per_key(workspace: Workspace) -> None:
    with shipyard.start_run("exp", workspace=workspace) as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
    assert [(p.step, p.value) for p in metric_history(workspace, run.id, "loss")] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
    ]


def test_exception_marks_the_run_failed_and_keeps_what_was_logged(workspace: Workspace) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        shipyard.start_run("exp", workspace=workspace) as run,
    ):
        for i in range(1000):
            shipyard.log_metric("m", i)
        raise RuntimeError("boom")
    got = get_run(workspace, run.id)
    assert got.status is RunStatus.failed
    assert got.note is not None and "boom" in got.note
    assert _count_metrics(workspace, run.id) == 1000


def test_ctrl_c_marks_the_run_interrupted(workspace: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), shipyard.start_run("exp", workspace=workspace) as run:
        shipyard.log_metric("m", 1)
        raise KeyboardInterrupt
    assert get_run(workspace, run.id).status is RunStatus.interrupted


def test_logging_outside_a_run_and_bad_values_are_refused(workspace: Workspace) -> None:
    with pytest.raises(Invalid, match="no active run"):
        shipyard.log_metric("m", 1.0)
    with shipyard.start_run("exp", workspace=workspace):
        with pytest.raises(Invalid, match="'abc' is not a number"):
            shipyard.log_metric("m", "abc")  # type: ignore[arg-type]
        with pytest.raises(Invalid, match="param name"):
            shipyard.log_params({"": 1})
        with pytest.raises(NotFound, match="does not exist"):
            shipyard.log_artifact("no-such-file.txt")


def test_artifacts_are_content_addressed(workspace: Workspace, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("hello")
    with shipyard.start_run("exp", workspace=workspace) as run:
        digest = shipyard.log_artifact(file)
    got = get_run(workspace, run.id)
    assert [(a.name, a.digest, a.size) for a in got.artifacts] == [("notes.txt", digest, 5)]
    assert workspace.artifacts.get_bytes(digest) == b"hello"


def test_a_process_that_dies_by_exception_loses_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent("""
        import shipyard
        with shipyard.start_run("crash", name="dies"):
            for i in range(5000):
                shipyard.log_metric("m", i)
            raise SystemExit("dying on purpose")
    """)
    )
    env = _child_env(workspace)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    (run,) = search_runs(workspace, experiment="crash")
    assert run.status is RunStatus.failed
    assert _count_metrics(workspace, run.id) == 5000


def test_search_filters_and_orders_on_metrics_params_and_status(any_workspace: Workspace) -> None:
    ws = any_workspace
    for i in range(6):
        with shipyard.start_run(
            "grid", name=f"r{i}", workspace=ws, params={"model": "lgbm" if i % 2 else "lr"}
        ):
            shipyard.log_metric("auc", 0.5 + i / 20)
    found = search_runs(
        ws, experiment="grid", filter="metrics.auc >= 0.65", order_by="metrics.auc desc"
    )
    assert [r.name for r in found] == ["r5", "r4", "r3"]
    found = search_runs(
        ws, filter="params.model = 'lgbm' and status = 'finished'", order_by="metrics.auc"
    )
    assert [r.name for r in found] == ["r1", "r3", "r5"]
    assert search_runs(ws, filter="metrics.auc > 2") == []


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("metrics.auc >> 1", "does not parse"),
        ("metrics.auc > high", "compares with a number"),
        ("drop table runs", "does not parse"),
        ("metrics.auc > 1; delete from runs", "does not parse"),
    ],
)
def test_bad_filters_are_refused(workspace: Workspace, text: str, match: str) -> None:
    with pytest.raises(Invalid, match=match):
        search_runs(workspace, filter=text)


def test_history_plot_is_written(workspace: Workspace, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        with shipyard.start_run("plot", name=name, workspace=workspace) as run:
            for step in range(10):
                shipyard.log_metric("loss", 1 / (step + 1))
        runs.append(get_run(workspace, run.id))
    out = plot_histories(workspace, runs, tmp_path / "plot.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- NaN and infinities ------------------------------------------------------------------------


def test_nan_and_infinities_are_stored_and_read_back(any_workspace: Workspace) -> None:
    """A NaN used to be bound as NULL on SQLite: the flush failed, the run's whole history was
    lost and an IntegrityError replaced the user's own exception."""
    ws = any_workspace
    with (
        pytest.raises(ValueError, match="diverged") as raised,
        shipyard.start_run(
            "nan", workspace=ws, params={"lr": math.nan, "grid": [1.0, math.inf]}
        ) as run,
    ):
        for step, value in enumerate([1.0, 0.5, math.nan]):
            shipyard.log_metric("loss", value, step=step)
        shipyard.log_metrics({"up": math.inf, "down": -math.inf})
        raise ValueError("diverged")
    assert not getattr(raised.value, "__notes__", None)  # the end was recorded without trouble
    got = get_run(ws, run.id)
    assert got.status is RunStatus.failed
    assert math.isnan(got.metrics["loss"])
    assert (got.metrics["up"], got.metrics["down"]) == (math.inf, -math.inf)
    history = [p.value for p in metric_history(ws, run.id, "loss")]
    assert history[:2] == [1.0, 0.5] and math.isnan(history[2])
    # JSON (and so PostgreSQL) has no NaN or infinity: params keep them as text.
    assert got.params == {"lr": "nan", "grid": [1.0, "inf"]}


def test_filters_and_sorting_treat_nan_as_no_score(any_workspace: Workspace) -> None:
    ws = any_workspace
    for name, auc in [("good", 0.9), ("nan", math.nan), ("poor", 0.5), ("none", None)]:
        with shipyard.start_run("nan", name=name, workspace=ws):
            if auc is not None:
                shipyard.log_metric("auc", auc)

    def names(**query: str) -> list[str | None]:
        return [r.name for r in search_runs(ws, experiment="nan", **query)]

    assert names(filter="metrics.auc > 0.6") == ["good"]
    assert names(filter="metrics.auc >= -inf", order_by="metrics.auc") == ["poor", "good"]
    assert names(filter="metrics.auc < 1", order_by="metrics.auc") == ["poor", "good"]
    assert names(filter="metrics.auc = nan") == ["nan"]
    assert names(filter="metrics.auc != nan", order_by="metrics.auc") == ["poor", "good"]
    assert names(order_by="metrics.auc desc") == ["good", "poor", "nan", "none"]
    assert names(order_by="metrics.auc asc") == ["poor", "good", "nan", "none"]
    with pytest.raises(Invalid, match=r"nan compares only with = or !=.*metrics.auc = nan"):
        search_runs(ws, filter="metrics.auc > nan")


def test_a_storage_error_never_replaces_the_users_exception(workspace: Workspace) -> None:
    with (
        pytest.raises(ValueError, match="the user's own") as raised,
        shipyard.start_run("exp", workspace=workspace) as run,
    ):
        with workspace.db.write() as s:  # the store breaks under the run
            s.execute(text("DROP TABLE run_metrics"))
        shipyard.log_metric("m", 1.0)
        raise ValueError("the user's own")
    (note,) = raised.value.__notes__
    assert note.startswith(f"shipyard could not record the end of run {run.id}")
    assert "run_metrics" in note
    assert get_run(workspace, run.id).status is RunStatus.failed  # the end is still recorded


def test_bad_metric_names_and_steps_are_refused_as_they_are_logged(
    any_workspace: Workspace,
) -> None:
    """Refused by the call, not in the writer, where one bad point (a step past PostgreSQL's
    32-bit column) failed every later flush and lost the run's points."""
    ws = any_workspace
    with shipyard.start_run("exp", workspace=ws) as run:
        shipyard.log_metric("kept", 1.0, step=0)
        with pytest.raises(Invalid, match=r"step 1733616000000 must be a whole number from"):
            shipyard.log_metric("loss", 0.5, step=1_733_616_000_000)  # a timestamp in ms
        with pytest.raises(Invalid, match=r"step 1.5 must be a whole number"):
            shipyard.log_metric("loss", 0.5, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(Invalid, match=r"step inf must be a whole number"):
            shipyard.log_metric("loss", 0.5, step=math.inf)  # type: ignore[arg-type]
        with pytest.raises(Invalid, match=r"metric name 'x{251}' must be a non-empty string"):
            shipyard.log_metric("x" * 251, 0.5)
        with pytest.raises(Invalid, match="metric name '' must be"):
            shipyard.log_metric("", 0.5)
        shipyard.log_metric("kept", 2.0, step=1)
    assert [p.value for p in metric_history(ws, run.id, "kept")] == [1.0, 2.0]


# -- what a call acknowledges is committed ------------------------------------------------------


def _committed(ws: Workspace, run_id: str) -> tuple[int, RunStatus]:
    """What another process would see: read through a new engine."""
    other = Workspace.open(Settings.load(home=str(ws.home), db=ws.settings.db))
    try:
        return _count_metrics(other, run_id), get_run(other, run_id).status
    finally:
        other.close()


def test_leaving_the_block_commits_everything_before_returning(
    any_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)  # no background flush helps
    with shipyard.start_run("exp", workspace=any_workspace) as run:
        for i in range(25):
            shipyard.log_metric("m", i)
    assert _committed(any_workspace, run.id) == (25, RunStatus.finished)


def test_end_run_writes_what_an_open_logger_holds(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)
    run_id = create_run(workspace, experiment="exp")
    logger = RunLogger(workspace, run_id)
    for i in range(25):
        logger.log_metric("m", i)
    end_run(workspace, run_id)  # without logger.close(): end_run closes it first
    assert _committed(workspace, run_id) == (25, RunStatus.finished)


# -- processes that die -------------------------------------------------------------------------

_DYING = """
import sys, time
import shipyard
from shipyard.train import tracking
tracking.FLUSH_SECONDS = 0.05
with shipyard.start_run("sigkill", name="dies") as run:
    for i in range(500):
        shipyard.log_metric("m", i)
    shipyard.log_params({"lr": 0.1})
    print(run.id, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def dying(workspace: Workspace, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A process that logs 500 points, prints its run id, then sleeps until killed."""
    script = tmp_path / "dying.py"
    script.write_text(textwrap.dedent(_DYING))
    env = _child_env(workspace)
    process = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    with process, process.stdout:
        try:
            run_id = process.stdout.readline().strip()
            assert run_id.startswith("run_"), "the child process did not start its run"
            yield process, run_id
        finally:
            process.kill()


def _until(condition: object, what: str) -> None:
    """Poll `condition()` until true (the background writer runs on its own schedule)."""
    deadline = time.monotonic() + 20
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _heartbeat(ws: Workspace, run_id: str) -> object:
    with ws.db.read() as s:
        return s.scalar(select(RunRow.heartbeat_at).where(RunRow.id == run_id))


def _stored_status(ws: Workspace, run_id: str) -> str | None:
    with ws.db.read() as s:
        return s.scalar(select(RunRow.status).where(RunRow.id == run_id))


def test_points_logged_a_flush_interval_before_sigkill_survive_it(
    workspace: Workspace, dying: tuple[subprocess.Popen[str], str]
) -> None:
    process, run_id = dying
    time.sleep(20 * 0.05)  # twenty of the child's flush intervals after its last point
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    got = get_run(workspace, run_id)
    assert _count_metrics(workspace, run_id) == 500
    assert got.metrics == {"m": 499.0}
    assert got.params == {"lr": 0.1}


def test_a_run_whose_process_is_killed_reads_killed_and_the_next_writer_records_it(
    workspace: Workspace,
    dying: tuple[subprocess.Popen[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process, run_id = dying
    first = _heartbeat(workspace, run_id)
    _until(lambda: _heartbeat(workspace, run_id) != first, "the child's writer to beat")
    assert get_run(workspace, run_id).status is RunStatus.running  # alive, beating
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    monkeypatch.setattr(tracking, "KILLED_AFTER_SECONDS", 0.5)
    _until(lambda: get_run(workspace, run_id).status is RunStatus.killed, "the killed verdict")

    got = get_run(workspace, run_id)
    assert got.note is not None and got.note.startswith("no heartbeat since")
    assert got.ended_at == _heartbeat(workspace, run_id)
    assert [r.id for r in search_runs(workspace, filter="status = 'killed'")] == [run_id]
    assert search_runs(workspace, filter="status = 'running'") == []
    assert _stored_status(workspace, run_id) == "running"  # readers only report it

    create_run(workspace, experiment="next")  # a writer records it
    assert _stored_status(workspace, run_id) == "killed"
    with workspace.db.read() as s:
        (event,) = audit.events(s, action="run.killed")
    assert event.object_id == run_id


def test_a_live_run_wrongly_presumed_killed_comes_back_at_its_next_heartbeat(
    any_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = any_workspace
    monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)  # the test beats by hand
    with shipyard.start_run("exp", workspace=ws) as run:
        monkeypatch.setattr(tracking, "KILLED_AFTER_SECONDS", -60.0)  # every heartbeat is stale
        with ws.db.write() as s:
            assert tracking.mark_killed(s, "test") == [run.id]
        assert _stored_status(ws, run.id) == "killed"
        monkeypatch.setattr(tracking, "KILLED_AFTER_SECONDS", 60.0)
        run.logger.flush(beat=True)
        assert _stored_status(ws, run.id) == "running"
        assert get_run(ws, run.id).note is None
    assert get_run(ws, run.id).status is RunStatus.finished


def test_upgrading_a_workspace_adds_heartbeats_and_keeps_old_runs_as_they_were(
    any_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0006 on an existing workspace: a run from before it has no heartbeat and is
    never presumed killed; a downgrade records `killed` runs as `failed`."""
    from alembic import command

    ws = any_workspace

    def migrate(step: str, target: str) -> None:
        cfg = ws.db._alembic_config()
        with ws.db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, target)

    migrate("downgrade", "0005")
    with ws.db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, experiment, status, packages, params, tags, started_at, "
                "created_by) VALUES ('run_old', 'exp', 'running', '{}', '{}', '{}', "
                ":at, 'me')"
            ),
            {"at": "2025-01-01 00:00:00.000000"},
        )
    reopened = Workspace.open(ws.settings)  # opening upgrades
    try:
        assert reopened.db.current() == "0006"
        monkeypatch.setattr(tracking, "KILLED_AFTER_SECONDS", -60.0)
        create_run(reopened, experiment="new")  # a writer sweeps: the old run is not touched
        assert get_run(reopened, "run_old").status is RunStatus.running
        assert _stored_status(reopened, "run_old") == "running"
        with reopened.db.write() as s:
            s.execute(text("UPDATE runs SET status = 'killed' WHERE id = 'run_old'"))
    finally:
        reopened.close()
    migrate("downgrade", "0005")
    assert _stored_status(ws, "run_old") == "failed"
    migrate("upgrade", "head")
