"""Training from the project spec: data → features → split → search → refit → evaluate.

`train()` is the one implementation behind `shipyard train`, the REST API and the retrain
loop. It records a search run (params, the leaderboard's best scores, held-out metrics, the
evaluation report as an artifact) with one child run per trial.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from shipyard.core.errors import Invalid
from shipyard.core.records import Dataset, DatasetVersion, RunStatus
from shipyard.core.spec import ProjectSpec
from shipyard.data import get_dataset, read_pandas
from shipyard.evaluate import EvaluationReport, check_metric, evaluate_model
from shipyard.store.workspace import Workspace
from shipyard.train.estimators import check_candidate, make_estimator
from shipyard.train.preprocess import FeaturePlan, build_pipeline, plan_features
from shipyard.train.search import Executor, OnTrial, Problem, SearchOutcome, TrialResult, search
from shipyard.train.split import Split, check_target, folds, given, holdout
from shipyard.train.tracking import RunLogger, create_run, end_run

DEFAULT_METRIC = {"classification": "f1", "regression": "rmse", "clustering": "silhouette"}


@dataclass
class TrainResult:
    run_id: str
    dataset: Dataset
    version: DatasetVersion
    plan: FeaturePlan
    split: Split
    metric: str
    trials: list[TrialResult]
    best: TrialResult
    pipeline: Pipeline
    report: EvaluationReport
    interrupted: bool
    seconds: float
    note: str | None = None  # what the search run's note says (or will say, if left open)
    exhausted: bool = False  # the search space had fewer configurations than trials asked

    @property
    def run_status(self) -> RunStatus:
        return RunStatus.interrupted if self.interrupted else RunStatus.finished

    @property
    def target(self) -> str | None:
        return self.dataset.target

    @property
    def leaderboard(self) -> list[TrialResult]:
        ok = [t for t in self.trials if t.ok]
        return sorted(ok, key=lambda t: t.score, reverse=self.report_higher_is_better)

    @property
    def report_higher_is_better(self) -> bool:
        from shipyard.evaluate import greater_is_better

        return greater_is_better(self.metric)


def check_spec(spec: ProjectSpec) -> str:
    """Validate the train section up front (before any data is read); returns the metric."""
    task = spec.train.task
    if not spec.train.candidates:
        raise Invalid(
            "shipyard.yaml has no train.candidates; list at least one estimator to train."
        )
    metric = spec.train.metric or DEFAULT_METRIC[task]
    check_metric(task, metric)
    for candidate in spec.train.candidates:
        check_candidate(candidate, task=task, project_dir=spec.base_dir)
    return metric


def train(
    ws: Workspace,
    spec: ProjectSpec,
    version: DatasetVersion,
    *,
    on_trial: OnTrial | None = None,
    executor: Executor | None = None,
    trials: int | None = None,
    test: pd.DataFrame | None = None,
    test_label: str = "given rows",
    close: bool = True,
) -> TrainResult:
    """Search, refit the best on the training split, evaluate it on the held-out split.

    `test` replaces the held-out split: every row of `version` is trained on and the model is
    evaluated on `test` (a retrain passes the newest labelled production rows).

    The search run ends `failed` if anything raises. With `close=False` a successful search run
    is left `running` for the caller to end (`end_run(ws, result.run_id, result.run_status,
    result.note)`) once what it does with the model (registering it) has succeeded too.
    """
    started = time.perf_counter()
    metric = check_spec(spec)
    task = spec.train.task
    dataset = get_dataset(ws, version.dataset)
    frame = read_pandas(ws, version)
    cv = spec.train.search.cv
    check_target(frame, dataset.target, task, cv)
    plan = plan_features(version.schema_, version.profile)
    if not plan.features:
        raise Invalid(
            f"dataset {version.ref} has no usable feature columns (excluded: {plan.excluded})."
        )
    if test is None:
        split = holdout(
            frame,
            target=dataset.target,
            time=dataset.time_column,
            task=task,
            test_size=spec.train.test_size,
            seed=spec.train.seed,
        )
    else:
        split = given(frame, test, time=dataset.time_column, label=test_label)
    check_target(split.train, dataset.target, task, cv)
    # A clustering model learns from the features alone (a declared target is left out).
    target = dataset.target if task != "clustering" else None
    problem = Problem(
        X=split.train[plan.features],
        y=split.train[target] if target else None,
        plan=plan,
        folds=folds(task=task, time=dataset.time_column, n=cv, seed=spec.train.seed),
        task=task,
        metric=metric,
        seed=spec.train.seed,
        project_dir=spec.base_dir,
    )
    n_trials = trials or spec.train.search.trials
    run_id = create_run(
        ws,
        experiment=spec.project,
        name=f"train {version.ref}",
        dataset_version_id=version.id,
        seed=spec.train.seed,
        params={
            "task": task,
            "metric": metric,
            "trials": n_trials,
            "cv": cv,
            "candidates": [c.estimator for c in spec.train.candidates],
            "split": split.how,
            "features": plan.features,
        },
        tags={"dataset": version.ref, "kind": "search"},
        heartbeat=True,
    )
    # Open until the run ends (`end_run` closes it, here or in the caller): its writer beats
    # the run's heartbeat, so a train whose process dies is read `killed`, not `running`.
    RunLogger(ws, run_id)
    status, note = RunStatus.failed, None
    outcome: SearchOutcome | None = None
    try:
        outcome = search(
            ws,
            problem,
            spec.train.candidates,
            trials=n_trials,
            parent_run=run_id,
            experiment=spec.project,
            executor=executor,
            parallel=spec.train.search.parallel,
            on_trial=on_trial,
            timeout_s=spec.train.search.timeout_s,
        )
        best = outcome.best
        pipeline = build_pipeline(
            plan,
            make_estimator(best.estimator, best.params, spec.train.seed, project_dir=spec.base_dir),
        )
        pipeline.fit(problem.X, problem.y)
        X_test = split.test[
            [*plan.features, *[c for c in dataset.sensitive if c not in plan.features]]
        ]
        report = evaluate_model(
            pipeline,
            X_test,
            split.test[target] if target else None,
            task=task,
            sensitive=list(dataset.sensitive),
            seed=spec.train.seed,
        )
        _log_outcome(ws, run_id, best, report, metric)
        status = RunStatus.interrupted if outcome.interrupted else RunStatus.finished
        if outcome.interrupted:
            note = (
                f"interrupted after {len(outcome.trials)} of {n_trials} trials; "
                "the best so far was kept"
            )
        result = TrainResult(
            run_id,
            dataset,
            version,
            plan,
            split,
            metric,
            outcome.trials,
            best,
            pipeline,
            report,
            outcome.interrupted,
            time.perf_counter() - started,
            note,
            outcome.exhausted,
        )
        if not close:
            status = RunStatus.running  # the caller ends it
        return result
    except KeyboardInterrupt:
        status = RunStatus.interrupted
        note = (
            "interrupted before any trial finished"
            if outcome is None
            else f"interrupted after the search ({len(outcome.trials)} trials), while the best "
            "was refitted and evaluated"
        )
        raise
    except Exception as exc:
        note = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        if status is not RunStatus.running:
            end_run(ws, run_id, status, note)


def _log_outcome(
    ws: Workspace, run_id: str, best: TrialResult, report: EvaluationReport, metric: str
) -> None:
    logger = RunLogger(ws, run_id)
    try:
        logger.log_params(
            {"best.estimator": best.estimator, **{f"best.{k}": v for k, v in best.params.items()}}
        )
        logger.log_metrics({f"cv_{metric}": best.score, f"cv_{metric}_std": best.std})
        logger.log_metrics({f"test_{k}": v for k, v in report.metrics.items() if _finite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "evaluation.json"
            path.write_text(json.dumps(report.model_dump(mode="json"), indent=1))
            logger.log_artifact(path)
    finally:
        logger.close()


def _finite(value: Any) -> bool:
    try:
        return pd.notna(value) and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False
