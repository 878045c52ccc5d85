"""`train_and_register` end to end: search, evaluate, gate, register; then alias and load.

Real data, real models and a real workspace (SQLite, and PostgreSQL where marked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from projects import FEATURES, ingest_project, write_project
from shipyard.core.errors import Conflict, Integrity, NotFound, SpecError
from shipyard.core.records import ModelStatus, RunStatus
from shipyard.loop import TrainOutcome, train_and_register
from shipyard.registry import get_document, get_version, list_models, set_alias, set_status
from shipyard.store import audit
from shipyard.store.workspace import Workspace
from shipyard.train import get_run, search_runs

UNREACHABLE = "roc_auc >= 0.999"  # the churn label is noisy: no model gets near it


def _train(ws: Workspace, tmp_path: Path, **options: Any) -> TrainOutcome:
    project = write_project(tmp_path / "project", **options)
    ingest_project(ws, project.spec)
    return train_and_register(ws, project.spec)


def _nothing_recorded(ws: Workspace) -> None:
    assert search_runs(ws, limit=None) == []
    assert list_models(ws) == []


def test_registers_a_candidate_with_its_signature_and_documents(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    ws = any_workspace

    outcome = _train(ws, tmp_path, gates=["roc_auc >= 0.6", "recall[sex] >= 0.3"])

    model, result = outcome.model, outcome.result
    assert model.ref == "churn@1"
    assert model.status is ModelStatus.candidate
    assert [(g.gate, g.passed) for g in outcome.gates] == [
        ("roc_auc >= 0.6", True),
        ("recall[sex] >= 0.3", True),
    ]
    assert model.gates == outcome.gates
    assert model.signature.names == result.plan.features == FEATURES
    assert model.signature.classes == ["no", "yes"]
    assert model.signature.output == "class"
    assert model.run_id == result.run_id
    assert model.dataset_version_id == result.version.id
    assert model.metrics == pytest.approx(result.report.metrics)
    assert get_run(ws, result.run_id).status is RunStatus.finished

    stored = get_version(ws, "churn@1")
    assert stored.id == model.id
    assert sorted(stored.documents) == [
        "card.html",
        "card.md",
        "evaluation.html",
        "evaluation.json",
    ]
    evaluation = json.loads(get_document(ws, "churn@1", "evaluation.json"))
    assert evaluation["metrics"] == pytest.approx(result.report.metrics)
    assert evaluation["rows"] == len(result.split.test)
    report_html = get_document(ws, "churn@1", "evaluation.html").decode()
    assert "data:image/png;base64," in report_html
    card = get_document(ws, "churn@1", "card.md").decode()
    assert "churn@1" in card  # the version it describes, known before registration
    assert "customers@1" in card  # the data it was trained on
    assert r"roc\_auc >= 0.6" in card  # Markdown-escaped
    assert r"| split | time-ordered on 'signed\_at': trained on 160 rows up to" in card
    card_html = get_document(ws, "churn@1", "card.html").decode()
    assert "churn@1" in card_html and "customers@1" in card_html


def test_a_model_that_fails_a_gate_is_rejected_and_can_never_be_champion(
    workspace: Workspace, tmp_path: Path
) -> None:
    good = _train(workspace, tmp_path, gates=["accuracy >= 0.5"])
    set_alias(workspace, good.model.ref, "champion")

    bad = _train(workspace, tmp_path, gates=[UNREACHABLE, "accuracy >= 0.5"])

    model = bad.model
    assert model.ref == "churn@2"
    assert model.status is ModelStatus.rejected
    assert [(g.gate, g.passed) for g in model.gates] == [
        (UNREACHABLE, False),
        ("accuracy >= 0.5", True),
    ]
    assert [g.gate for g in model.failed_gates] == [UNREACHABLE]
    assert model.failed_gates[0].value == pytest.approx(bad.result.report.metrics["roc_auc"])
    card = get_document(workspace, "churn@2", "card.md").decode()
    assert "churn@2" in card
    assert r"Failed gate(s): roc\_auc >= 0.999; this version must not be deployed" in card

    for alias in ("champion", "challenger"):
        with pytest.raises(
            Conflict,
            match=rf"^churn@2 cannot become {alias}: it was rejected because it failed its "
            r"gates: roc_auc >= 0\.999 \(got 0\.\d+\)\. Train a better model",
        ):
            set_alias(workspace, "churn@2", alias)
    with pytest.raises(Conflict, match=r"a rejected version can never become approved"):
        set_status(workspace, "churn@2", "approved")
    with pytest.raises(
        Conflict,
        match=r"^churn@2 was rejected by its gates \(roc_auc >= 0\.999 \(got 0\.\d+\)\); it "
        r"cannot be loaded for use",
    ):
        shipyard.load_model("models:/churn/2", workspace=workspace)

    assert get_version(workspace, "churn@champion").ref == "churn@1"
    assert get_version(workspace, "churn@2").aliases == []
    with workspace.db.read() as s:
        (event, _first) = audit.events(s, limit=None, action="model.register")
    assert event.details["failed_gates"] == [UNREACHABLE]
    assert event.details["status"] == "rejected"


@pytest.mark.parametrize(
    ("gate", "match"),
    [
        pytest.param(
            "roc_auc >>= 0.5",
            r"^gate 'roc_auc >>= 0\.5' is not of the form METRIC OP NUMBER",
            id="does not parse",
        ),
        pytest.param(
            "auc >= 0.8",
            r"^gate 'auc >= 0\.8': metric 'auc' does not exist for classification; choose one "
            r"of .*roc_auc",
            id="unknown metric",
        ),
        pytest.param(
            "f1 >= 60%",
            r"write the threshold as a fraction, not a percentage \(0\.6, not 60%\)",
            id="percentage",
        ),
        pytest.param(
            "recall[plan] >= 0.5",
            r"^gate 'recall\[plan\] >= 0\.5': column 'plan' is not a sensitive column \(sex\); "
            r"add it to data\.sensitive in shipyard\.yaml",
            id="slice on a column that is not sensitive",
        ),
        pytest.param(
            {"tests": "checks/missing.py"},
            r"^tests gate 'checks/missing\.py': file '.*checks/missing\.py' not found; create "
            r"it or fix the path",
            id="tests file missing",
        ),
    ],
)
def test_a_bad_gate_is_refused_before_any_run_is_recorded(
    workspace: Workspace, tmp_path: Path, gate: Any, match: str
) -> None:
    with pytest.raises(SpecError, match=match):
        _train(workspace, tmp_path, gates=[gate])
    _nothing_recorded(workspace)


def test_training_before_the_data_is_ingested_says_how_to_ingest(
    workspace: Workspace, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "project")

    with pytest.raises(NotFound, match=r"Ingest the data first: `shipyard data ingest`"):
        train_and_register(workspace, project.spec)
    _nothing_recorded(workspace)


CHECKS = """\
import numpy as np


def test_probabilities_sum_to_one(model, X):
    assert np.allclose(model.predict_proba(X).sum(axis=1), 1.0)


def test_better_than_a_coin(model, X, y):
    assert (model.predict(X) == y).mean() > 0.6


def test_nobody_churns(model, data):
    churners = int((model.predict(data) == "yes").sum())
    assert churners == 0, f"{churners} customers predicted to churn"


def helper_is_not_a_test():
    raise AssertionError("never called")
"""


def test_prediction_tests_gate_gives_one_result_per_test_function(
    workspace: Workspace, tmp_path: Path
) -> None:
    checks = tmp_path / "project" / "checks" / "predictions.py"
    checks.parent.mkdir(parents=True)
    checks.write_text(CHECKS)

    outcome = _train(
        workspace, tmp_path, gates=["accuracy >= 0.5", {"tests": "checks/predictions.py"}]
    )

    label = "tests:checks/predictions.py::"
    assert [(g.gate, g.kind, g.passed) for g in outcome.gates] == [
        ("accuracy >= 0.5", "metric", True),
        (f"{label}test_probabilities_sum_to_one", "tests", True),
        (f"{label}test_better_than_a_coin", "tests", True),
        (f"{label}test_nobody_churns", "tests", False),
    ]
    failed = outcome.gates[-1]
    assert failed.detail.startswith("AssertionError: ")
    assert "customers predicted to churn (predictions.py:" in failed.detail
    assert outcome.model.status is ModelStatus.rejected
    with pytest.raises(Conflict, match=rf"{label}test_nobody_churns"):
        set_alias(workspace, outcome.model.ref, "champion")


# -- loading ------------------------------------------------------------------------------------


def test_the_champion_loads_and_predicts_like_the_trained_pipeline(
    workspace: Workspace, tmp_path: Path
) -> None:
    outcome = _train(workspace, tmp_path)
    set_alias(workspace, outcome.model.ref, "champion")
    X = outcome.result.split.test[FEATURES]

    model = shipyard.load_model("models:/churn@champion", workspace=workspace)

    assert model.ref == "churn@1"
    assert model.signature is not None and model.signature.names == FEATURES
    assert model.classes_ is not None and list(model.classes_) == ["no", "yes"]
    np.testing.assert_array_equal(model.predict(X), outcome.result.pipeline.predict(X))
    np.testing.assert_allclose(
        model.predict_proba(X), outcome.result.pipeline.predict_proba(X), rtol=1e-12
    )
    same = shipyard.load_model("models:/churn/1", workspace=workspace)
    assert same.digest == model.digest == outcome.model.artifact


def test_a_tampered_artifact_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    outcome = _train(workspace, tmp_path)
    blob = Path(workspace.artifacts.path_of(outcome.model.artifact))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))

    with pytest.raises(
        Integrity, match=r"^model churn@1 was refused: artifact [0-9a-f]+.* does not match"
    ):
        shipyard.load_model("churn@1", workspace=workspace)


def test_an_unknown_version_model_or_alias_is_not_found(
    workspace: Workspace, tmp_path: Path
) -> None:
    _train(workspace, tmp_path)

    with pytest.raises(NotFound, match=r"^model churn@7 does not exist: churn has versions 1 to 1"):
        shipyard.load_model("models:/churn/7", workspace=workspace)
    with pytest.raises(
        NotFound, match=r"^model churn has no alias 'champion' \(its aliases: none\)"
    ):
        shipyard.load_model("models:/churn@champion", workspace=workspace)
    with pytest.raises(
        NotFound, match=r"^model 'attrition' does not exist \(known models: churn\)"
    ):
        shipyard.load_model("attrition@1", workspace=workspace)
