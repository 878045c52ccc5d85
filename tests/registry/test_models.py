"""The registry service on SQLite and PostgreSQL: register, look up, alias, status, load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_cases import FEATURES, Fitted, signature

from shipyard.core.errors import Conflict, Integrity, Invalid, NotFound
from shipyard.core.records import GateResult, ModelStatus, ModelVersion, Ref
from shipyard.registry import (
    get_document,
    get_profile,
    get_version,
    list_models,
    list_versions,
    load_model,
    models,
    register,
    remove_alias,
    set_alias,
    set_status,
)
from shipyard.store import audit
from shipyard.store.tables import ModelVersionRow
from shipyard.store.workspace import Workspace

PASSED = GateResult(gate="f1 >= 0.6", kind="metric", passed=True, value=0.93, threshold=0.6)
FAILED = GateResult(gate="f1 >= 0.9", kind="metric", passed=False, value=0.71, threshold=0.9)
FAIR = GateResult(
    gate="demographic_parity_difference(grade) <= 0.1",
    kind="fairness",
    passed=True,
    value=0.04,
    threshold=0.1,
)


def add(ws: Workspace, f: Fitted, *, name: str = "credit-risk", **kwargs: Any) -> ModelVersion:
    """Register a fitted case with the signature that fits it."""
    classes = [str(c) for c in f.pipeline.classes_] if f.task == "classification" else None
    return register(
        ws, name, f.pipeline, task=f.task, signature=signature(f.task, classes), **kwargs
    )


def events(ws: Workspace, action: str) -> list[tuple[str | None, str | None, dict[str, object]]]:
    with ws.db.read() as s:
        found = audit.events(s, action=action, limit=None)
    return [(e.before, e.after, e.details) for e in reversed(found)]


def chain_ok(ws: Workspace) -> bool:
    with ws.db.read() as s:
        return audit.verify(s).ok


# -- registering and looking up -------------------------------------------------------------------


def test_versions_are_registered_numbered_and_found(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    v1 = add(
        ws,
        fitted["logistic"],
        run_id="run_1",
        dataset_version_id="dsv_1",
        metrics={"f1": 0.93, "roc_auc": 0.97},
        gates=[PASSED, FAIR],
        profile={"rows": 569, "columns": []},
        documents={"card.md": "# credit-risk", "evaluation.json": b'{"f1": 0.93}'},
        description="the first one",
    )
    v2 = add(ws, fitted["lightgbm"])
    add(ws, fitted["forest_regressor"], name="area")

    assert (v1.ref, v1.status, v1.flavor, v1.task) == (
        "credit-risk@1",
        ModelStatus.candidate,
        "skops",
        "classification",
    )
    assert (v2.ref, v2.flavor) == ("credit-risk@2", "lightgbm")
    assert (v1.run_id, v1.dataset_version_id, v1.description) == ("run_1", "dsv_1", "the first one")
    assert v1.metrics == {"f1": 0.93, "roc_auc": 0.97}
    assert v1.gates == [PASSED, FAIR]
    assert v1.signature.names == FEATURES
    assert v1.created_by == ws.actor
    assert get_version(ws, "credit-risk@1") == v1
    for latest in (
        "credit-risk",
        "credit-risk@latest",
        "models:/credit-risk",
        Ref(name="credit-risk"),
    ):
        assert get_version(ws, latest) == v2
    assert get_version(ws, "models:/credit-risk/1") == v1
    assert list_models(ws) == ["area", "credit-risk"]
    assert [v.ref for v in list_versions(ws, "credit-risk")] == ["credit-risk@1", "credit-risk@2"]
    assert get_document(ws, "credit-risk@1", "card.md") == b"# credit-risk"
    assert get_document(ws, "credit-risk@1", "evaluation.json") == b'{"f1": 0.93}'
    assert get_profile(ws, "credit-risk@1") == {"rows": 569, "columns": []}
    assert get_profile(ws, "credit-risk@2") is None
    assert [(b, a, d["ref"]) for b, a, d in events(ws, "model.register")] == [
        (None, v1.id, "credit-risk@1"),
        (v1.id, v2.id, "credit-risk@2"),
        (None, get_version(ws, "area@1").id, "area@1"),
    ]
    assert chain_ok(ws)


def test_unknown_references_say_what_exists(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    with pytest.raises(NotFound, match=r"model 'nope' does not exist \(no models are registered"):
        get_version(ws, "nope")
    add(ws, fitted["logistic"], documents={"card.md": "# card"})

    with pytest.raises(
        NotFound,
        match=r"^model 'nope' does not exist \(known models: credit-risk\)\. `shipyard train` "
        r"registers one; `shipyard models ls` lists them\.$",
    ):
        load_model(ws, "models:/nope@champion")
    with pytest.raises(
        NotFound,
        match=r"^model credit-risk@9 does not exist: credit-risk has versions 1 to 1\. "
        r"`shipyard models ls` lists them\.$",
    ):
        load_model(ws, "models:/credit-risk/9")
    with pytest.raises(
        NotFound,
        match=r"^model credit-risk has no alias 'champion' \(its aliases: none\); set one with "
        r"`shipyard models alias credit-risk@N champion`\.$",
    ):
        load_model(ws, "models:/credit-risk@champion")
    with pytest.raises(
        NotFound, match=r"credit-risk@1 has no document 'card.html' \(it has: card.md\)"
    ):
        get_document(ws, "credit-risk@1", "card.html")
    with pytest.raises(NotFound, match="model 'churn' does not exist"):
        list_versions(ws, "churn")
    with pytest.raises(Invalid, match="must be a version number"):
        get_version(ws, "credit-risk@0")


def test_registering_checks_its_inputs_and_stores_nothing_on_error(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    f = fitted["logistic"]
    sig = signature("classification", ["0", "1"])
    with pytest.raises(Invalid, match="model name '9lives' is not allowed"):
        register(workspace, "9lives", f.pipeline, task="classification", signature=sig)
    with pytest.raises(Invalid, match="the signature's output is 'class', but a regression model"):
        register(workspace, "m", f.pipeline, task="regression", signature=sig)
    narrow = sig.model_copy(update={"inputs": sig.inputs[:-1]})
    with pytest.raises(Invalid, match=r"missing from the signature: \['grade'\]"):
        register(workspace, "m", f.pipeline, task="classification", signature=narrow)
    wrong = signature("classification", ["no", "yes"])
    with pytest.raises(Invalid, match=r"classes \['no', 'yes'\] are not the pipeline's"):
        register(workspace, "m", f.pipeline, task="classification", signature=wrong)
    with pytest.raises(Invalid, match="metric 'roc_auc' is nan; metrics must be finite"):
        register(
            workspace, "m", f.pipeline, task="classification", signature=sig,
            metrics={"roc_auc": float("nan")},
        )  # fmt: skip
    with pytest.raises(Invalid, match=r"document name '\.\./card\.md' is not allowed"):
        register(
            workspace, "m", f.pipeline, task="classification", signature=sig,
            documents={"../card.md": "x"},
        )  # fmt: skip
    assert list_models(workspace) == []


def test_a_registration_that_cannot_be_recorded_removes_the_blobs_it_added(
    workspace: Workspace, fitted: dict[str, Fitted], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = fitted["logistic"]
    first = add(workspace, f, documents={"card.md": "# first"})
    root = Path(workspace.artifacts.root)
    before = {p.name for p in root.rglob("*") if p.is_file()}

    def disk_full(*args: Any, **kwargs: Any) -> ModelVersion:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models, "_record", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        # The same model (its bundle is shared with version 1) and a new document.
        add(workspace, f, documents={"card.md": "# second", "notes.md": "new"})

    assert {p.name for p in root.rglob("*") if p.is_file()} == before
    assert workspace.artifacts.exists(first.artifact)  # version 1's blob was not touched
    assert [v.version for v in list_versions(workspace, "credit-risk")] == [1]
    assert load_model(workspace, "credit-risk@1").predict(f.X.head(3)) is not None


# -- aliases and statuses -------------------------------------------------------------------------


def test_aliases_move_between_versions_and_are_audited(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    v1, v2 = add(ws, fitted["logistic"]), add(ws, fitted["lightgbm"])

    assert set_alias(ws, "credit-risk@1", "champion").aliases == ["champion"]
    assert get_version(ws, "credit-risk@champion").version == 1
    assert set_alias(ws, "credit-risk@2", "champion").aliases == ["champion"]
    assert set_alias(ws, "credit-risk@2", "champion").aliases == ["champion"]  # no-op
    assert set_alias(ws, "credit-risk@1", "challenger").aliases == ["challenger"]
    assert get_version(ws, "credit-risk@champion").version == 2
    assert [v.aliases for v in list_versions(ws, "credit-risk")] == [["challenger"], ["champion"]]
    assert remove_alias(ws, "credit-risk", "challenger").aliases == []

    moves = [(b, a, d["alias"]) for b, a, d in events(ws, "model.alias")]
    assert moves == [
        (None, v1.id, "champion"),
        (v1.id, v2.id, "champion"),
        (None, v1.id, "challenger"),
        (v1.id, None, "challenger"),  # model.alias.remove
    ]
    with pytest.raises(
        NotFound, match=r"has no alias 'challenger' \(its aliases: champion → credit-risk@2\)"
    ):
        remove_alias(ws, "credit-risk", "challenger")
    with pytest.raises(Invalid, match="alias 'best one' is not allowed"):
        set_alias(ws, "credit-risk@1", "best one")
    with pytest.raises(Invalid, match="alias 'latest' is reserved"):
        set_alias(ws, "credit-risk@1", "latest")
    assert chain_ok(ws)


def test_a_rejected_version_is_never_champion_approved_or_loaded(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    v = add(ws, fitted["logistic"], metrics={"f1": 0.71}, gates=[FAIR, FAILED])

    assert v.status == ModelStatus.rejected
    for alias in ("champion", "challenger"):
        with pytest.raises(
            Conflict,
            match=rf"^credit-risk@1 cannot become {alias}: it was rejected because it failed its "
            r"gates: f1 >= 0\.9 \(got 0\.71\)\. Train a better model",
        ):
            set_alias(ws, v.ref, alias)
    assert set_alias(ws, v.ref, "investigate").aliases == ["investigate"]  # not a serving alias
    for status in ("approved", "deployed", "candidate"):
        with pytest.raises(Conflict, match=f"a rejected version can never become {status}"):
            set_status(ws, v.ref, status)
    with pytest.raises(
        Conflict,
        match=r"^credit-risk@1 was rejected by its gates \(f1 >= 0\.9 \(got 0\.71\)\); it cannot "
        r"be loaded for use; train a better one or use another version\.$",
    ):
        load_model(ws, "models:/credit-risk@investigate")

    archived = set_status(ws, v.ref, "archived")
    assert archived.status == ModelStatus.archived
    with pytest.raises(Conflict, match=r"cannot become candidate: it failed its gates: f1 >= 0\.9"):
        set_status(ws, v.ref, "candidate")
    ((_, _, details),) = events(ws, "model.register")
    assert (details["status"], details["failed_gates"]) == ("rejected", ["f1 >= 0.9"])
    assert chain_ok(ws)


def test_statuses_move_along_the_allowed_transitions(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    v = add(ws, fitted["logistic"], gates=[PASSED])

    with pytest.raises(
        Conflict,
        match=r"credit-risk@1 is candidate; it can become approved, rejected, archived, not "
        r"deployed",
    ):
        set_status(ws, v.ref, "deployed")
    assert set_status(ws, v.ref, "approved").status == ModelStatus.approved
    assert set_status(ws, v.ref, ModelStatus.deployed).status == ModelStatus.deployed
    set_alias(ws, v.ref, "champion")
    with pytest.raises(Conflict, match="credit-risk@1 is champion; point that alias at another"):
        set_status(ws, v.ref, "archived")
    remove_alias(ws, "credit-risk", "champion")
    assert set_status(ws, v.ref, "archived").status == ModelStatus.archived
    with pytest.raises(Conflict, match="cannot become champion: it is archived"):
        set_alias(ws, v.ref, "champion")
    assert set_status(ws, v.ref, "candidate").status == ModelStatus.candidate
    with pytest.raises(Invalid, match="status 'retired' is not one of candidate, approved"):
        set_status(ws, v.ref, "retired")

    steps = [(b, a) for b, a, _ in events(ws, "model.status")]
    assert steps == [
        ("candidate", "approved"),
        ("approved", "deployed"),
        ("deployed", "archived"),
        ("archived", "candidate"),
    ]
    assert chain_ok(ws)


# -- loading --------------------------------------------------------------------------------------


def test_load_model_by_uri_attaches_the_signature(
    any_workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    ws = any_workspace
    f = fitted["lightgbm"]
    v = add(ws, f)
    set_alias(ws, v.ref, "champion")

    for uri in ("models:/credit-risk@champion", "models:/credit-risk/1", "credit-risk@1"):
        model = load_model(ws, uri)
        assert (model.ref, model.flavor, model.signature) == (
            "credit-risk@1",
            "lightgbm",
            v.signature,
        )
        np.testing.assert_allclose(
            model.predict_proba(f.X), f.pipeline.predict_proba(f.X), rtol=1e-9
        )


def test_load_model_refuses_a_tampered_or_mismatched_artifact(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    v1 = add(workspace, fitted["logistic"])
    v2 = add(workspace, fitted["forest_regressor"], name="area")
    path = Path(workspace.artifacts.path_of(v1.artifact))
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(
        Integrity, match=r"^model credit-risk@1 was refused: artifact .* does not match"
    ):
        load_model(workspace, "credit-risk@1")

    with workspace.db.write() as s:  # the record pointed at another model's (valid) artifact
        row = s.get(ModelVersionRow, v1.id)
        assert row is not None
        row.artifact = v2.artifact
    with pytest.raises(
        Integrity,
        match=r"its artifact is a regression model of flavor skops, but the registry records a "
        r"classification model",
    ):
        load_model(workspace, "credit-risk@1")
