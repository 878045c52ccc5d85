"""Hyperparameter search over the spec's candidates with Optuna, trials tracked as runs.

Trials run in this process by default, or in worker processes through an `Executor`
(`search.parallel` in the spec; Ray plugs in through the same interface). Each finished trial
is recorded at once as a child run of the search run, so Ctrl-C loses nothing that finished.
"""

from __future__ import annotations

import secrets
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import cross_val_score

from shipyard.core.errors import Invalid
from shipyard.core.records import RunStatus
from shipyard.core.spec import Candidate
from shipyard.evaluate import greater_is_better, sklearn_scorer
from shipyard.store.tables import LatestMetricRow, MetricRow, RunRow
from shipyard.store.workspace import Workspace
from shipyard.train.estimators import make_estimator, suggest
from shipyard.train.preprocess import FeaturePlan, build_pipeline


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to score one configuration."""

    number: int
    estimator: str
    params: dict[str, Any]


@dataclass
class TrialResult:
    number: int
    estimator: str
    params: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    run_id: str | None = None

    @property
    def score(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.scores)) if self.scores else float("nan")

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Problem:
    """The fixed part of every trial: data, features, folds, metric, seed."""

    X: pd.DataFrame
    y: pd.Series | None  # None for clustering
    plan: FeaturePlan
    folds: Any
    task: str
    metric: str
    seed: int
    project_dir: Path | None = None  # where the project's own estimator modules are

    @property
    def higher_is_better(self) -> bool:
        return greater_is_better(self.metric)

    def objective(self, result: TrialResult) -> float:
        """What the study maximises: the score, or minus a loss."""
        return result.score if self.higher_is_better else -result.score


def score_trial(problem: Problem, trial: TrialSpec) -> TrialResult:
    """Cross-validate one configuration (runs in a worker or in this process)."""
    started = time.perf_counter()
    result = TrialResult(trial.number, trial.estimator, trial.params)
    try:
        estimator = make_estimator(
            trial.estimator, trial.params, problem.seed, project_dir=problem.project_dir
        )
        pipeline = build_pipeline(problem.plan, estimator)
        scores = cross_val_score(
            pipeline,
            problem.X,
            problem.y,
            cv=problem.folds,
            scoring=sklearn_scorer(problem.task, problem.metric),
            error_score="raise",
        )
        # scikit-learn scorers return losses negated; keep the metric's own units.
        sign = 1.0 if problem.higher_is_better else -1.0
        result.scores = [float(s) * sign for s in scores]
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.scores = []
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        if last:
            result.error += f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})"
    result.seconds = time.perf_counter() - started
    return result


# -- executors ----------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs trials; yields results in the order they finish."""

    def run(
        self, problem: Problem, trials: Iterator[TrialSpec], capacity: int
    ) -> Iterator[TrialResult]: ...


class InProcess:
    def run(
        self, problem: Problem, trials: Iterator[TrialSpec], capacity: int
    ) -> Iterator[TrialResult]:
        for trial in trials:
            yield score_trial(problem, trial)


_WORKER_PROBLEM: Problem | None = None


def _init_worker(problem: Problem) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem


def _score_in_worker(trial: TrialSpec) -> TrialResult:
    assert _WORKER_PROBLEM is not None
    return score_trial(_WORKER_PROBLEM, trial)


class LocalProcesses:
    """A pool of worker processes; the data is sent to each worker once."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(
        self, problem: Problem, trials: Iterator[TrialSpec], capacity: int
    ) -> Iterator[TrialResult]:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(problem,)
        ) as pool:
            pending: set[Future[TrialResult]] = set()
            try:
                for trial in trials:
                    pending.add(pool.submit(_score_in_worker, trial))
                    while len(pending) >= capacity:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        yield from (f.result() for f in done)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            except BaseException:
                for f in pending:
                    f.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                raise


# -- the search ---------------------------------------------------------------------------------

OnTrial = Callable[[TrialResult, int, int, "TrialResult | None"], None]


@dataclass
class SearchOutcome:
    trials: list[TrialResult]
    best: TrialResult
    interrupted: bool = False
    exhausted: bool = False  # fewer trials than asked: every configuration was tried


# Proposals in a row that repeat a configuration already tried before the search space counts
# as exhausted (a continuous parameter makes a repeat practically impossible).
MAX_REPEATS = 25


def search(
    ws: Workspace,
    problem: Problem,
    candidates: Sequence[Candidate],
    *,
    trials: int,
    parent_run: str,
    experiment: str,
    executor: Executor | None = None,
    parallel: int = 1,
    on_trial: OnTrial | None = None,
    timeout_s: float | None = None,
) -> SearchOutcome:
    """Run the study; every trial becomes a child run of `parent_run` as soon as it finishes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=problem.seed)
    )
    asked: dict[int, optuna.trial.Trial] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    # Objective of each configuration tried (None while running, or if it failed): TPE proposes
    # a configuration again once a small discrete space is well explored; it is told the known
    # result instead of spending a trial (minutes, for a forest) on scoring it twice.
    scored: dict[str, float | None] = {}
    exhausted = False

    def specs() -> Iterator[TrialSpec]:
        nonlocal exhausted
        number = repeats = 0
        while number < trials:
            if deadline is not None and time.monotonic() > deadline:
                return
            trial = study.ask()
            candidate, params = suggest(trial, list(candidates))
            key = _config_key(candidate.estimator, params)
            if key in scored:
                known = scored[key]
                if known is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, known)
                repeats += 1
                if repeats >= MAX_REPEATS:  # nothing new left to propose
                    exhausted = True
                    return
                continue
            repeats = 0
            scored[key] = None
            asked[number] = trial
            yield TrialSpec(number, candidate.estimator, params)
            number += 1

    runner = executor or (LocalProcesses(parallel) if parallel > 1 else InProcess())
    done: list[TrialResult] = []
    best: TrialResult | None = None
    interrupted = False
    try:
        for result in runner.run(problem, specs(), capacity=max(parallel, 1)):
            trial = asked.pop(result.number)
            if result.ok and np.isfinite(result.score):
                study.tell(trial, problem.objective(result))
                scored[_config_key(result.estimator, result.params)] = problem.objective(result)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            result.run_id = record_trial(
                ws,
                result,
                parent=parent_run,
                experiment=experiment,
                metric=problem.metric,
                seed=problem.seed,
            )
            done.append(result)
            if result.ok and (best is None or problem.objective(result) > problem.objective(best)):
                best = result
            if on_trial:
                on_trial(result, len(done), trials, best)
    except KeyboardInterrupt:
        interrupted = True
    if best is None:
        if interrupted:
            raise KeyboardInterrupt
        first = next((t.error for t in done if t.error), "no trial ran")
        which = "the only trial" if len(done) == 1 else f"every one of the {len(done)} trials"
        raise Invalid(
            f"{which} failed; the first error: {first}. Check the candidates' parameters in "
            "shipyard.yaml."
        )
    return SearchOutcome(done, best, interrupted, exhausted)


def _config_key(estimator: str, params: dict[str, Any]) -> str:
    return repr((estimator, sorted((k, repr(_plain(v))) for k, v in params.items())))


def record_trial(
    ws: Workspace, result: TrialResult, *, parent: str, experiment: str, metric: str, seed: int
) -> str:
    """One transaction per trial: the child run, its params and its fold metrics."""
    now = datetime.now(UTC)
    run_id = "run_" + secrets.token_hex(10)
    status = RunStatus.finished if result.ok else RunStatus.failed
    key = f"cv_{metric}"
    with ws.db.write() as s:
        s.add(
            RunRow(
                id=run_id,
                experiment=experiment,
                name=f"trial {result.number}",
                status=status.value,
                parent_id=parent,
                dataset_version_id=None,
                seed=seed,
                git_commit=None,
                packages={},
                params={
                    "estimator": result.estimator,
                    **{k: _plain(v) for k, v in result.params.items()},
                },
                tags={"trial": str(result.number)},
                started_at=now,
                ended_at=now,
                created_by=ws.actor,
                note=result.error,
            )
        )
        for step, value in enumerate(result.scores):
            s.add(MetricRow(run_id=run_id, key=f"{key}_fold", value=value, step=step, at=now))
        if result.scores:  # every key with a history has a latest value, as RunLogger keeps it
            last = len(result.scores) - 1
            s.add(
                LatestMetricRow(
                    run_id=run_id, key=f"{key}_fold", value=result.scores[last], step=last, at=now
                )
            )
        latest = {"fit_seconds": result.seconds}
        if result.ok:
            latest.update({key: result.score, f"{key}_std": result.std})
        for k, v in latest.items():
            s.add(MetricRow(run_id=run_id, key=k, value=v, step=0, at=now))
            s.add(LatestMetricRow(run_id=run_id, key=k, value=v, step=0, at=now))
    return run_id


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
