"""Train, evaluate, gate and register: what `shipyard train` and a retrain both do."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from shipyard.core.errors import NotFound
from shipyard.core.records import GateResult, ModelVersion, Profile
from shipyard.core.spec import ProjectSpec
from shipyard.data import get_dataset, get_version
from shipyard.evaluate import check_gates, model_card, report_html, validate_gates
from shipyard.registry import list_models, list_versions, register, signature_from_schema
from shipyard.store.workspace import Workspace
from shipyard.train import TrainResult, check_spec, train
from shipyard.train.search import Executor, OnTrial

GATE_SAMPLE = 2_000


@dataclass
class TrainOutcome:
    result: TrainResult
    gates: list[GateResult]
    model: ModelVersion


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
) -> TrainOutcome:
    """Search, refit the best, evaluate on held-out data, apply the gates and register the model.

    A model that fails a gate is registered with status `rejected` (and can never be champion).
    `test` replaces the held-out split (see `shipyard.train.train`).
    """
    check_spec(spec)
    validate_gates(spec.gates, spec.train.task, base_dir=spec.base_dir)
    ref = dataset or f"{spec.dataset_name}@latest"
    try:
        version = get_version(ws, ref)
    except NotFound as exc:
        raise NotFound(
            f"{exc.message} Ingest the data first: `shipyard data ingest` (reads shipyard.yaml)."
        ) from exc
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
    )
    target = result.target
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
    )
    return TrainOutcome(result, gates, model)


def _next_ref(ws: Workspace, name: str) -> str:
    """The reference the model is about to get (for its card; registration assigns it)."""
    count = len(list_versions(ws, name)) if name in list_models(ws) else 0
    return f"{name}@{count + 1}"
