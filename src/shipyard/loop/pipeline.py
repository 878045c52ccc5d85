"""Train, evaluate, gate and register: what `shipyard train` and a retrain both do."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from shipyard.core.errors import GateFailed, NotFound
from shipyard.core.records import DatasetVersion, GateResult, ModelVersion, Profile, Ref, RunStatus
from shipyard.core.spec import ProjectSpec
from shipyard.data import get_dataset, get_version, list_datasets
from shipyard.evaluate import check_gates, model_card, report_html, validate_gates
from shipyard.registry import list_models, list_versions, register, signature_from_schema
from shipyard.store.workspace import Workspace
from shipyard.train import TrainResult, check_spec, end_run, train
from shipyard.train.search import Executor, OnTrial

GATE_SAMPLE = 2_000


@dataclass
class TrainOutcome:
    result: TrainResult
    gates: list[GateResult]
    model: ModelVersion
    dataset_reason: str = ""  # which dataset version was trained on, and why that one

    def rejection(self) -> GateFailed | None:
        """The error to exit with when the model was rejected by its gates, else None."""
        failed = self.model.failed_gates
        if not failed:
            return None
        names = "; ".join(
            g.gate if g.value is None else f"{g.gate} (got {g.value:.4g})" for g in failed
        )
        return GateFailed(
            f"{self.model.ref} failed {len(failed)} of {len(self.gates)} gate(s): {names}. It is "
            "registered as rejected and can never be deployed. Improve the model or the data and "
            "train again (pass --allow-rejected to exit 0 anyway).",
            details={"model": self.model.ref, "failed_gates": [g.gate for g in failed]},
        )


def train_and_register(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    dataset: str | None = None,
    on_trial: OnTrial | None = None,
    executor: Executor | None = None,
    trials: int | None = None,
    description: str | None = None,
    test: pd.DataFrame | None = None,
    test_label: str = "given rows",
    on_dataset: Callable[[DatasetVersion, str], None] | None = None,
) -> TrainOutcome:
    """Search, refit the best, evaluate on held-out data, apply the gates and register the model.

    A model that fails a gate is registered with status `rejected` (and can never be champion).
    `test` replaces the held-out split (see `shipyard.train.train`). `on_dataset` is told the
    dataset version chosen and why (see `resolve_dataset`) before training starts.
    """
    check_spec(spec)
    validate_gates(spec.gates, spec.train.task, base_dir=spec.base_dir)
    version, reason = resolve_dataset(ws, spec, dataset)
    if on_dataset:
        on_dataset(version, reason)
    # Slice and fairness gates name the dataset's sensitive columns: check them before training,
    # so a gate that can never be checked does not leave a finished run and no model behind.
    sensitive = list(get_dataset(ws, version.dataset).sensitive)
    validate_gates(spec.gates, spec.train.task, sensitive=sensitive, base_dir=spec.base_dir)
    result = train(
        ws,
        spec,
        version,
        on_trial=on_trial,
        executor=executor,
        trials=trials,
        test=test,
        test_label=test_label,
        close=False,
    )
    # The search run stays open until the model is registered: if gating, the card or the
    # registration fails, the run ends `failed` with the cause instead of `finished` with no
    # model (and nothing references a half-written model).
    try:
        gates, model = _gate_and_register(ws, spec, version, result, description)
    except KeyboardInterrupt:
        end_run(ws, result.run_id, RunStatus.interrupted, "interrupted while registering")
        raise
    except BaseException as exc:
        end_run(ws, result.run_id, RunStatus.failed, f"registration failed: {_cause(exc)}")
        raise
    end_run(ws, result.run_id, result.run_status, result.note)
    return TrainOutcome(result, gates, model, reason)


def resolve_dataset(
    ws: Workspace, spec: ProjectSpec, dataset: str | None
) -> tuple[DatasetVersion, str]:
    """The dataset version to train on and a sentence saying why that one.

    `dataset` (`--dataset`) wins; else the spec's `data.name`, else the dataset named like the
    project. A name without a version means its newest version.
    """
    if dataset:
        source = "--dataset"
        ref = Ref.parse(dataset, what="dataset reference")
    else:
        source = "data.name in shipyard.yaml" if spec.data.name else "the project's name"
        ref = Ref.parse(spec.dataset_name, what="dataset reference")
    try:
        version = get_version(ws, ref)
    except NotFound as exc:
        raise NotFound(_missing_dataset(ws, spec, ref, dataset, exc)) from exc
    if ref.version is not None:
        return version, f"{version.ref}, as {source} says"
    return version, (
        f"{version.ref}, the newest version of {ref.name!r} ({source}; "
        f"--dataset {ref.name}@N picks another)"
    )


def _missing_dataset(
    ws: Workspace, spec: ProjectSpec, ref: Ref, given: str | None, exc: NotFound
) -> str:
    names = [d.name for d, _ in list_datasets(ws)]
    if given or ref.name in names:  # the name is right; the version is not (or --dataset was)
        return exc.message
    if not names:
        return (
            f"dataset {ref.name!r} does not exist (no datasets are stored yet). Ingest the data "
            "first: `shipyard data ingest` (reads shipyard.yaml)."
        )
    named = (
        f"data.name in shipyard.yaml is {ref.name!r}"
        if spec.data.name
        else f"shipyard.yaml sets no data.name, so the dataset is the one named after the "
        f"project ({ref.name!r})"
    )
    return (
        f"dataset {ref.name!r} does not exist (stored datasets: {', '.join(names)}): {named}. "
        f"Set data.name: {names[0]} in shipyard.yaml, or pass --dataset {names[0]}; or ingest "
        "this project's data first: `shipyard data ingest`."
    )


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _gate_and_register(
    ws: Workspace,
    spec: ProjectSpec,
    version: DatasetVersion,
    result: TrainResult,
    description: str | None,
) -> tuple[list[GateResult], ModelVersion]:
    target = result.target if spec.train.task != "clustering" else None
    sample = result.split.test.head(GATE_SAMPLE)
    gates = check_gates(
        spec.gates,
        result.report,
        model=result.pipeline,
        sample=sample[result.plan.features],
        target=sample[target] if target else None,
        base_dir=spec.base_dir,
        sensitive=list(result.dataset.sensitive),
    )
    classes = [str(c) for c in getattr(result.pipeline, "classes_", [])] or None
    signature = signature_from_schema(
        version.schema_, result.plan.features, task=spec.train.task, classes=classes
    )
    profile = Profile(
        rows=version.profile.rows,
        columns=[c for c in version.profile.columns if c.name in result.plan.features],
    )
    md, html = model_card(
        name=spec.project,
        version_ref=_next_ref(ws, spec.project),
        task=spec.train.task,
        description=description
        or f"{spec.train.task.capitalize()} model of project {spec.project}.",
        dataset_ref=version.ref,
        rows_train=len(result.split.train),
        rows_test=len(result.split.test),
        features=result.plan.features,
        target=target,
        metrics=result.report.metrics,
        report=result.report,
        gates=gates,
        period=result.split.how,
        estimator=result.best.estimator,
        params=result.best.params,
    )
    documents: dict[str, bytes | str] = {
        "evaluation.json": json.dumps(result.report.model_dump(mode="json"), indent=1),
        "evaluation.html": report_html(
            result.report, title=f"{spec.project}: evaluation on {version.ref}"
        ),
        "card.md": md,
        "card.html": html,
    }
    model = register(
        ws,
        spec.project,
        result.pipeline,
        task=spec.train.task,
        signature=signature,
        run_id=result.run_id,
        dataset_version_id=version.id,
        metrics=result.report.metrics,
        gates=gates,
        profile=profile.model_dump(mode="json"),
        documents=documents,
        description=description,
        code_dir=spec.base_dir,
    )
    return gates, model


def _next_ref(ws: Workspace, name: str) -> str:
    """The reference the model is about to get (for its card; registration assigns it)."""
    count = len(list_versions(ws, name)) if name in list_models(ws) else 0
    return f"{name}@{count + 1}"
