"""`train()` on a small real data set: what it records, how it splits, that a seed fixes the
result, trials in worker processes, failing trials, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

from projects import (
    LABEL,
    LOGISTIC,
    TIME,
    TREE,
    Project,
    customers,
    ingest_project,
    write_project,
)
from shipyard.core.errors import Invalid
from shipyard.core.records import DatasetVersion, RunStatus
from shipyard.store.workspace import Workspace
from shipyard.train import (
    LocalProcesses,
    TrialResult,
    get_run,
    metric_history,
    search_runs,
    train,
    trainer,
)
from shipyard.train.search import Problem, TrialSpec, score_trial
from shipyard.train.split import folds

BAD_C = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": "high"}}


def _setup(ws: Workspace, tmp_path: Path, **options: Any) -> tuple[Project, DatasetVersion]:
    project = write_project(tmp_path / "project", **options)
    return project, ingest_project(ws, project.spec)


def _trial_runs(ws: Workspace, run_id: str) -> list[Any]:
    return search_runs(ws, parent_id=run_id, limit=None, order_by="name")


# -- what a training records --------------------------------------------------------------------


def test_records_a_search_run_with_one_child_run_per_trial(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    ws = any_workspace
    project, version = _setup(ws, tmp_path, trials=4, cv=3)

    result = train(ws, project.spec, version)

    assert len(result.trials) == 4
    assert len(result.leaderboard) == 4
    scores = [t.score for t in result.leaderboard]
    assert scores == sorted(scores, reverse=True)  # roc_auc: higher is better
    assert result.best is result.leaderboard[0]
    assert not result.interrupted
    assert result.plan.features == ["tenure", "spend", "plan", "region"]

    run = get_run(ws, result.run_id)
    assert run.status is RunStatus.finished
    assert run.parent_id is None
    assert run.experiment == "churn"
    assert run.dataset_version_id == version.id
    assert run.seed == 7
    assert run.tags == {"dataset": "customers@1", "kind": "search"}
    assert run.params["task"] == "classification"
    assert run.params["metric"] == "roc_auc"
    assert run.params["trials"] == 4
    assert run.params["cv"] == 3
    assert run.params["candidates"] == [LOGISTIC["estimator"], TREE["estimator"]]
    assert run.params["features"] == result.plan.features
    assert run.params["split"] == result.split.how
    assert run.params["best.estimator"] == result.best.estimator
    for key, value in result.best.params.items():
        assert run.params[f"best.{key}"] == value
    assert run.metrics["cv_roc_auc"] == pytest.approx(result.best.score)
    assert run.metrics["cv_roc_auc_std"] == pytest.approx(result.best.std)
    assert run.metrics["test_roc_auc"] == pytest.approx(result.report.metrics["roc_auc"])
    assert 0.6 < run.metrics["test_roc_auc"] < 1.0
    (artifact,) = run.artifacts
    assert artifact.name == "evaluation.json"
    stored = json.loads(ws.artifacts.get_bytes(artifact.digest))
    assert stored["metrics"] == pytest.approx(result.report.metrics)

    children = _trial_runs(ws, result.run_id)
    assert [c.name for c in children] == [f"trial {n}" for n in range(4)]
    by_number = {t.number: t for t in result.trials}
    for child in children:
        trial = by_number[int(child.tags["trial"])]
        assert child.id == trial.run_id
        assert child.parent_id == result.run_id
        assert child.status is RunStatus.finished
        assert child.note is None
        assert child.params == {"estimator": trial.estimator, **trial.params}
        assert child.metrics["cv_roc_auc"] == pytest.approx(trial.score)
        assert child.metrics["fit_seconds"] > 0
        folds_logged = metric_history(ws, child.id, "cv_roc_auc_fold")
        assert [p.step for p in folds_logged] == [0, 1, 2]
        assert [p.value for p in folds_logged] == pytest.approx(trial.scores)
        assert child.metrics["cv_roc_auc_fold"] == pytest.approx(trial.scores[-1])
    assert [r.id for r in search_runs(ws, top_level=True)] == [result.run_id]


def test_a_time_column_means_train_on_the_past_and_validate_on_the_future(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, trials=2)

    result = train(workspace, project.spec, version)

    train_times, test_times = result.split.train[TIME], result.split.test[TIME]
    assert (len(result.split.train), len(result.split.test)) == (160, 40)
    assert test_times.min() >= train_times.max()
    assert result.split.how.startswith(f"time-ordered on {TIME!r}: trained on 160 rows up to")
    # The cross-validation folds inside the training rows are time-ordered too.
    cv = folds(task="classification", time=TIME, n=3, seed=7)
    assert isinstance(cv, TimeSeriesSplit)
    for fit_rows, check_rows in cv.split(result.split.train):
        fit_times = result.split.train[TIME].iloc[fit_rows]
        assert result.split.train[TIME].iloc[check_rows].min() >= fit_times.max()


def test_without_a_time_column_the_split_is_stratified(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, time=False, trials=2)

    result = train(workspace, project.spec, version)

    def share(frame: Any) -> float:
        return float((frame[LABEL] == "yes").mean())

    whole = share(customers())
    assert 0.3 < whole < 0.7
    assert share(result.split.test) == pytest.approx(whole, abs=1 / len(result.split.test))
    assert share(result.split.train) == pytest.approx(whole, abs=1 / len(result.split.train))
    # Shuffled: test rows come from the whole time range, not just its end.
    assert result.split.test[TIME].min() < result.split.train[TIME].max()
    assert result.split.how == "stratified random split: 160 training rows, 40 test rows (seed 7)"
    assert isinstance(folds(task="classification", time=None, n=3, seed=7), StratifiedKFold)
    assert TIME in result.plan.excluded  # a plain timestamp is not a feature (yet)


def test_the_same_spec_data_and_seed_give_the_same_model(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, trials=4)

    first = train(workspace, project.spec, version)
    second = train(workspace, project.spec, version)
    reseeded = write_project(tmp_path / "reseeded", trials=4, seed=8)
    other = train(workspace, reseeded.spec, version)

    assert second.run_id != first.run_id
    assert [(t.estimator, t.params) for t in second.trials] == [
        (t.estimator, t.params) for t in first.trials
    ]
    assert [t.scores for t in second.trials] == [t.scores for t in first.trials]
    assert (second.best.estimator, second.best.params) == (first.best.estimator, first.best.params)
    assert second.report.metrics == first.report.metrics
    np.testing.assert_array_equal(
        second.pipeline.predict_proba(first.split.test),
        first.pipeline.predict_proba(first.split.test),
    )
    # The seed is what fixes it: another seed samples other parameters.
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


# -- executors ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_trials_in_local_processes_are_all_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, trials=4, parallel=2)

    result = train(workspace, project.spec, version, executor=LocalProcesses(2))

    assert sorted(t.number for t in result.trials) == [0, 1, 2, 3]
    assert all(t.ok for t in result.trials)
    children = _trial_runs(workspace, result.run_id)
    assert sorted(c.id for c in children) == sorted(t.run_id for t in result.trials if t.run_id)
    assert {c.status for c in children} == {RunStatus.finished}
    assert get_run(workspace, result.run_id).status is RunStatus.finished


class _Reversed:
    """An executor that scores every trial first and hands the results back last-first."""

    def __init__(self) -> None:
        self.capacity: int | None = None

    def run(
        self, problem: Problem, trials: Iterator[TrialSpec], capacity: int
    ) -> Iterator[TrialResult]:
        self.capacity = capacity
        results = [score_trial(problem, trial) for trial in trials]
        yield from reversed(results)


def test_an_executor_may_return_trials_in_any_order(workspace: Workspace, tmp_path: Path) -> None:
    project, version = _setup(workspace, tmp_path, trials=3)
    executor = _Reversed()

    result = train(workspace, project.spec, version, executor=executor)

    assert executor.capacity == 1
    assert [t.number for t in result.trials] == [2, 1, 0]
    children = {c.name: c for c in _trial_runs(workspace, result.run_id)}
    for trial in result.trials:
        child = children[f"trial {trial.number}"]
        assert child.params == {"estimator": trial.estimator, **trial.params}
        assert child.metrics["cv_roc_auc"] == pytest.approx(trial.score)


# -- failing trials -----------------------------------------------------------------------------


def test_a_trial_that_fails_in_fit_is_recorded_failed_and_the_others_go_on(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, candidates=[BAD_C, TREE], trials=4)

    result = train(workspace, project.spec, version)

    failed = [t for t in result.trials if not t.ok]
    succeeded = [t for t in result.trials if t.ok]
    assert failed and succeeded  # the seed picks both candidates
    assert result.leaderboard == sorted(succeeded, key=lambda t: t.score, reverse=True)
    assert result.best.estimator == TREE["estimator"]
    children = {c.id: c for c in _trial_runs(workspace, result.run_id)}
    for trial in failed:
        assert trial.params == {"C": "high"}
        child = children[trial.run_id or ""]
        assert child.status is RunStatus.failed
        assert child.note is not None
        assert child.note.startswith("InvalidParameterError: The 'C' parameter")
        assert "Got 'high' instead" in child.note
        assert "cv_roc_auc" not in child.metrics  # no score for what did not run
        assert child.metrics["fit_seconds"] >= 0
    for trial in succeeded:
        assert children[trial.run_id or ""].status is RunStatus.finished
    assert get_run(workspace, result.run_id).status is RunStatus.finished


def test_when_every_trial_fails_the_search_run_is_failed(
    workspace: Workspace, tmp_path: Path
) -> None:
    bad = {**BAD_C, "params": {"C": ["high", "low", "none"]}}
    project, version = _setup(workspace, tmp_path, candidates=[bad], trials=3)

    with pytest.raises(
        Invalid,
        match=r"^every one of the 3 trials failed; the first error: InvalidParameterError: "
        r"The 'C' parameter .* Got '(high|low|none)' instead\..* Check the candidates' "
        r"parameters in shipyard.yaml\.$",
    ):
        train(workspace, project.spec, version)

    (run,) = search_runs(workspace, top_level=True)
    assert run.status is RunStatus.failed
    assert run.note is not None and run.note.startswith("Invalid: every one of the 3 trials failed")
    assert "best.estimator" not in run.params
    assert run.metrics == {}
    children = _trial_runs(workspace, run.id)
    assert len(children) == 3
    assert {c.status for c in children} == {RunStatus.failed}


def test_when_the_only_configuration_fails_it_is_tried_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, candidates=[BAD_C], trials=3)

    with pytest.raises(Invalid, match=r"^the only trial failed; the first error: Invalid"):
        train(workspace, project.spec, version)

    (run,) = search_runs(workspace, top_level=True)
    assert len(_trial_runs(workspace, run.id)) == 1


# -- Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_keeps_the_finished_trials_and_marks_the_run_interrupted(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, trials=5)
    seen: list[int] = []

    def press_ctrl_c_after_two(
        result: TrialResult, done: int, total: int, best: TrialResult | None
    ) -> None:
        seen.append(done)
        assert total == 5 and best is not None
        if done == 2:
            raise KeyboardInterrupt

    result = train(workspace, project.spec, version, on_trial=press_ctrl_c_after_two)

    assert seen == [1, 2]
    assert result.interrupted
    assert [t.number for t in result.trials] == [0, 1]
    assert result.best in result.trials
    assert result.pipeline.predict(result.split.test[result.plan.features]).shape == (40,)
    run = get_run(workspace, result.run_id)
    assert run.status is RunStatus.interrupted
    assert run.note == "interrupted after 2 of 5 trials; the best so far was kept"
    assert run.metrics["cv_roc_auc"] == pytest.approx(result.best.score)
    assert "test_roc_auc" in run.metrics
    children = _trial_runs(workspace, run.id)
    assert [c.name for c in children] == ["trial 0", "trial 1"]
    assert {c.status for c in children} == {RunStatus.finished}


class _CtrlCBeforeAnyTrial:
    def run(
        self, problem: Problem, trials: Iterator[TrialSpec], capacity: int
    ) -> Iterator[TrialResult]:
        next(trials)  # the first trial is handed out, then the user presses Ctrl-C
        raise KeyboardInterrupt


def test_ctrl_c_before_any_trial_finishes_propagates_and_marks_the_run_interrupted(
    workspace: Workspace, tmp_path: Path
) -> None:
    project, version = _setup(workspace, tmp_path, trials=3)

    with pytest.raises(KeyboardInterrupt):
        train(workspace, project.spec, version, executor=_CtrlCBeforeAnyTrial())

    (run,) = search_runs(workspace, top_level=True)
    assert run.status is RunStatus.interrupted
    assert run.note == "interrupted before any trial finished"
    assert run.ended_at is not None
    assert _trial_runs(workspace, run.id) == []


def test_ctrl_c_after_the_search_says_so_in_the_run_note(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, version = _setup(workspace, tmp_path, trials=2)

    def ctrl_c_while_evaluating(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "evaluate_model", ctrl_c_while_evaluating)

    with pytest.raises(KeyboardInterrupt):
        train(workspace, project.spec, version)

    (run,) = search_runs(workspace, top_level=True)
    assert run.status is RunStatus.interrupted
    assert run.note == (
        "interrupted after the search (2 trials), while the best was refitted and evaluated"
    )
    assert len(_trial_runs(workspace, run.id)) == 2


SCRIPT = """\
import sys

from shipyard.core.settings import Settings
from shipyard.core.spec import load_spec
from shipyard.data import get_version
from shipyard.store.workspace import Workspace
from shipyard.train import train


def on_trial(result, done, total, best):
    print(f"trial {done} finished", flush=True)


ws = Workspace.open(Settings.load())
spec = load_spec(sys.argv[1])
result = train(ws, spec, get_version(ws, "customers@latest"), on_trial=on_trial)
print(f"interrupted={result.interrupted} trials={len(result.trials)}", flush=True)
"""
FOREST = {
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": {"low": 30, "high": 60}},
}


def _train_in_a_child(
    workspace: Workspace, tmp_path: Path, spec_file: Path
) -> subprocess.Popen[str]:
    """`train()` in a process of its own (SCRIPT), printing a line per finished trial."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(spec_file)],
        env={"SHIPYARD_HOME": str(workspace.home), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_real_ctrl_c_keeps_the_finished_trials(workspace: Workspace, tmp_path: Path) -> None:
    project, _version = _setup(workspace, tmp_path, candidates=[FOREST], trials=100)
    child = _train_in_a_child(workspace, tmp_path, project.spec_file)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "trial 1 finished\n"
        assert child.stdout.readline() == "trial 2 finished\n"
        child.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err

    (run,) = search_runs(workspace, top_level=True)
    trials = _trial_runs(workspace, run.id)
    assert out.strip().splitlines()[-1] == f"interrupted=True trials={len(trials)}"
    assert 2 <= len(trials) < 100
    assert {t.status for t in trials} == {RunStatus.finished}
    assert run.status is RunStatus.interrupted
    assert run.note == f"interrupted after {len(trials)} of 100 trials; the best so far was kept"
    assert "test_roc_auc" in run.metrics


@pytest.mark.slow
def test_a_train_whose_process_is_killed_reads_killed_not_running(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 #24: SIGKILL (no handler runs) mid-search; the search run's heartbeat stops,
    so it is read `killed` instead of `running` forever."""
    from shipyard.train import tracking

    project, _version = _setup(workspace, tmp_path, candidates=[FOREST], trials=100)
    child = _train_in_a_child(workspace, tmp_path, project.spec_file)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "trial 1 finished\n"
        (run,) = search_runs(workspace, top_level=True)
        assert run.status is RunStatus.running  # alive, beating
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    finally:
        child.kill()

    monkeypatch.setattr(tracking, "KILLED_AFTER_SECONDS", 0.5)
    deadline = time.monotonic() + 30
    while get_run(workspace, run.id).status is not RunStatus.killed:
        assert time.monotonic() < deadline, "the killed train's run still reads running"
        time.sleep(0.1)
    assert get_run(workspace, run.id).note.startswith("no heartbeat since")


def test_a_small_search_space_is_not_scored_twice(workspace: Workspace, tmp_path: Path) -> None:
    tree = {"estimator": TREE["estimator"], "params": {"max_depth": [2, 3, 4]}}
    project, version = _setup(workspace, tmp_path, candidates=[tree], trials=8, cv=3)

    result = train(workspace, project.spec, version)

    depths = sorted(t.params["max_depth"] for t in result.trials)
    assert depths == [2, 3, 4]  # each configuration once, then the search stops
    assert result.exhausted
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert len(_trial_runs(workspace, result.run_id)) == 3


def test_an_exception_in_the_refit_ends_the_search_run_failed(
    workspace: Workspace, tmp_path: Path
) -> None:
    module = f"refit_fails_{tmp_path.name.replace('-', '_')}"
    own = {"estimator": f"{module}.Small", "params": {"C": [0.5, 1.0]}}
    project, version = _setup(workspace, tmp_path, candidates=[own], trials=2, cv=2)
    (project.dir / f"{module}.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n\n"
        "class Small(LogisticRegression):\n"
        "    def fit(self, X, y, sample_weight=None):\n"
        "        if len(X) > 150:  # the folds have fewer rows; the refit on all has more\n"
        "            raise ValueError(f'{len(X)} rows is more than this model takes')\n"
        "        return super().fit(X, y, sample_weight)\n"
    )

    with pytest.raises(ValueError, match="160 rows is more than this model takes"):
        train(workspace, project.spec, version)

    (run,) = search_runs(workspace, top_level=True)
    assert run.status is RunStatus.failed  # never left `running`
    assert run.note == "ValueError: 160 rows is more than this model takes"
    assert {c.status for c in _trial_runs(workspace, run.id)} == {RunStatus.finished}
