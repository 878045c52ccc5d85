"""The tracking API: buffered writes that lose nothing acknowledged, run statuses, search."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

import shipyard
from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import RunStatus
from shipyard.store.tables import MetricRow
from shipyard.store.workspace import Workspace
from shipyard.train import get_run, metric_history, plot_histories, search_runs


def _count_metrics(ws: Workspace, run_id: str) -> int:
    with ws.db.read() as s:
        return int(
            s.scalar(select(func.count()).select_from(MetricRow).where(MetricRow.run_id == run_id))
            or 0
        )


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
    env = {"SHIPYARD_HOME": str(workspace.home), "PATH": "/usr/bin:/bin"}
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
