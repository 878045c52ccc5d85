"""The model bundle: round trips per flavor, native LightGBM text, and refusal of tampered,
foreign and malicious bundles before anything in them is deserialised."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from registry_cases import Fitted, prep
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier, is_regressor
from sklearn.pipeline import Pipeline

from shipyard.core.errors import Integrity, Invalid
from shipyard.core.settings import Settings
from shipyard.registry import TRUSTED_TYPES, NativeLightGBM, load_bundle, save_bundle
from shipyard.registry import bundle as bundle_module
from shipyard.security import init_workspace
from shipyard.store.workspace import Workspace

ROUND_TRIPS = [
    "logistic",
    "hist_gb",
    "forest_regressor",
    "lightgbm",
    "lightgbm_multiclass",
    "lightgbm_regressor",
]


class NearestMean(ClassifierMixin, BaseEstimator):
    """A user's own estimator: skops does not know it, so it is stored as a signed pickle."""

    def __init__(self, shrink: float = 0.0) -> None:
        self.shrink = shrink

    def fit(self, X: Any, y: Any) -> NearestMean:
        X = np.asarray(X, dtype=float)
        self.classes_, index = np.unique(np.asarray(y), return_inverse=True)
        means = [X[index == k].mean(axis=0) for k in range(len(self.classes_))]
        self.means_ = np.stack(means) * (1.0 - self.shrink)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        d = ((np.asarray(X, dtype=float)[:, None, :] - self.means_[None]) ** 2).sum(axis=-1)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class Payload:
    """Unpickling this writes a file: what an attacker would put in a pickle part."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).write_text, ("pwned",))


class Trap:
    """Loading this with skops (if it were trusted) writes a file from `__setstate__`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["path"]).write_text("pwned")
        self.__dict__.update(state)


@pytest.fixture(scope="module")
def custom(data: tuple[pd.DataFrame, pd.Series, pd.Series]) -> Fitted:
    X, label, _ = data
    pipeline = Pipeline([("prep", prep()), ("model", NearestMean(shrink=0.1))]).fit(X, label)
    return Fitted(pipeline, "classification", "pickle", X)


@pytest.fixture
def no_deserialising(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every deserialiser the bundle uses, replaced by one that records the call and fails."""
    calls: list[str] = []

    def spy(name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return called

    monkeypatch.setattr(bundle_module.sio, "loads", spy("skops.io.loads"))
    monkeypatch.setattr(bundle_module.pickle, "loads", spy("pickle.loads"))
    monkeypatch.setattr(NativeLightGBM, "from_string", spy("NativeLightGBM.from_string"))
    return calls


# -- helpers that take a stored bundle apart and put it back together -----------------------------


def entries_of(ws: Workspace, digest: str) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(ws.artifacts.get_bytes(digest))) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def store(ws: Workspace, entries: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return ws.artifacts.put_bytes(buffer.getvalue())


def replace_part(entries: dict[str, bytes], name: str, data: bytes, *, pin: bool) -> None:
    """Swap a part's bytes; with `pin`, also write its new digest into the manifest (unsigned)."""
    entries[name] = data
    if pin:
        manifest = json.loads(entries["manifest.json"])
        for part in manifest["parts"]:
            if part["name"] == name:
                part["sha256"] = hashlib.sha256(data).hexdigest()
                part["size"] = len(data)
        entries["manifest.json"] = json.dumps(manifest, sort_keys=True, indent=2).encode()


def manifest_of(entries: dict[str, bytes]) -> dict[str, Any]:
    return dict(json.loads(entries["manifest.json"]))


def other_workspace(tmp_path: Path) -> Workspace:
    ws, _token, _secret = init_workspace(Settings.load(home=str(tmp_path / "other")))
    return ws


def assert_same_predictions(original: Pipeline, loaded: Any, X: pd.DataFrame, task: str) -> None:
    if task == "classification":
        np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
        np.testing.assert_allclose(loaded.predict_proba(X), original.predict_proba(X), rtol=1e-9)
        np.testing.assert_array_equal(loaded.classes_, original.classes_)
    else:
        np.testing.assert_allclose(loaded.predict(X), original.predict(X), rtol=1e-9)


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ROUND_TRIPS)
def test_a_bundle_predicts_exactly_as_the_pipeline_it_was_saved_from(
    workspace: Workspace, fitted: dict[str, Fitted], case: str
) -> None:
    f = fitted[case]
    digest, flavor = save_bundle(workspace, f.pipeline, task=f.task)
    loaded = load_bundle(workspace, digest)

    assert (flavor, loaded.flavor, loaded.task, loaded.digest) == (
        f.flavor,
        f.flavor,
        f.task,
        digest,
    )
    assert_same_predictions(f.pipeline, loaded, f.X, f.task)
    assert_same_predictions(f.pipeline, loaded.pipeline, f.X, f.task)
    np.testing.assert_allclose(loaded.transform(f.X), f.pipeline[:-1].transform(f.X), rtol=1e-9)
    # Written deterministically: an equal pipeline (other objects, other ids) gives the same blob.
    assert save_bundle(workspace, copy.deepcopy(f.pipeline), task=f.task) == (digest, flavor)


def test_lightgbm_is_stored_as_native_text_and_no_pickle(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    f = fitted["lightgbm"]
    digest, _ = save_bundle(workspace, f.pipeline, task=f.task)
    entries = entries_of(workspace, digest)
    manifest = manifest_of(entries)

    assert sorted(entries) == ["manifest.json", "manifest.sig", "model.lgb.txt", "prep.skops"]
    kinds = {p["name"]: p["kind"] for p in manifest["parts"]}
    assert kinds == {"prep.skops": "skops", "model.lgb.txt": "lightgbm"}
    text = entries["model.lgb.txt"].decode("utf-8")
    assert text.startswith("tree\nversion=")
    assert text == f.pipeline[-1].booster_.model_to_string()
    # skops stores arrays as .npy without pickle and everything else as JSON
    with zipfile.ZipFile(io.BytesIO(entries["prep.skops"])) as zf:
        assert all(n == "schema.json" or n.endswith(".npy") for n in zf.namelist())
        for name in zf.namelist():
            if name.endswith(".npy"):
                np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
    assert not any(name.endswith(".pkl") for name in entries)


def test_the_loaded_lightgbm_model_is_a_scikit_learn_estimator(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    classifier = load_bundle(
        workspace, save_bundle(workspace, fitted["lightgbm"].pipeline, task="classification")[0]
    )
    regressor = load_bundle(
        workspace,
        save_bundle(workspace, fitted["lightgbm_regressor"].pipeline, task="regression")[0],
    )
    final = classifier.pipeline[-1]

    assert isinstance(final, NativeLightGBM)
    assert isinstance(final.booster_, lightgbm.Booster)  # what SHAP's TreeExplainer takes
    assert is_classifier(classifier.pipeline) and is_regressor(regressor.pipeline)
    assert not hasattr(regressor.pipeline, "predict_proba")
    assert list(classifier.pipeline.named_steps) == ["prep", "model"]
    assert final.n_features_in_ == fitted["lightgbm"].pipeline[-1].n_features_in_
    np.testing.assert_array_equal(
        clone(final).predict(classifier.transform(fitted["lightgbm"].X)),
        fitted["lightgbm"].pipeline.predict(fitted["lightgbm"].X),
    )
    with pytest.raises(Invalid, match="cannot be re-fitted"):
        final.fit(fitted["lightgbm"].X, None)
    with pytest.raises(Invalid, match=r"is a regression model .* gives no probabilities"):
        regressor.predict_proba(fitted["lightgbm"].X)


def test_a_users_own_estimator_is_a_signed_pickle(workspace: Workspace, custom: Fitted) -> None:
    digest, flavor = save_bundle(workspace, custom.pipeline, task="classification")
    entries = entries_of(workspace, digest)
    loaded = load_bundle(workspace, digest)

    assert flavor == "pickle"
    assert [p["kind"] for p in manifest_of(entries)["parts"]] == ["pickle"]
    assert isinstance(loaded.pipeline[-1], NearestMean)
    assert_same_predictions(custom.pipeline, loaded, custom.X, "classification")


def test_the_manifest_records_the_model_and_is_signed(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    digest, _ = save_bundle(
        workspace, fitted["lightgbm_multiclass"].pipeline, task="classification"
    )
    entries = entries_of(workspace, digest)
    manifest = manifest_of(entries)
    workspace.signer.verify(entries["manifest.json"], entries["manifest.sig"], what="test")

    assert manifest["format"] == "shipyard.bundle/1"
    assert (manifest["flavor"], manifest["task"]) == ("lightgbm", "classification")
    assert manifest["estimator"] == "lightgbm.sklearn.LGBMClassifier"
    assert manifest["classes"] == ["large", "medium", "small"]
    assert {"scikit-learn", "numpy", "skops", "lightgbm"} <= set(manifest["packages"])
    for part in manifest["parts"]:
        assert part["sha256"] == hashlib.sha256(entries[part["name"]]).hexdigest()
    assert list(entries)[:2] == ["manifest.json", "manifest.sig"]


def test_the_skops_allow_list_covers_our_pipelines_and_only_library_types(
    fitted: dict[str, Fitted],
) -> None:
    for case in ("logistic", "hist_gb", "forest_regressor"):
        found = set(sio.get_untrusted_types(data=sio.dumps(fitted[case].pipeline)))
        assert found <= set(TRUSTED_TYPES), case
    assert all(t.startswith(("sklearn.", "numpy.", "scipy.")) for t in TRUSTED_TYPES)


def test_unfitted_or_unknown_task_is_refused(workspace: Workspace) -> None:
    with pytest.raises(Invalid, match="is not fitted"):
        save_bundle(
            workspace, Pipeline([("prep", prep()), ("model", NearestMean())]), task="classification"
        )
    with pytest.raises(Invalid, match="task 'ranking' is not one of classification"):
        save_bundle(workspace, NearestMean(), task="ranking")


# -- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["logistic", "lightgbm", "custom"])
def test_a_flipped_byte_on_disk_is_refused_before_deserialising(
    workspace: Workspace,
    fitted: dict[str, Fitted],
    custom: Fitted,
    no_deserialising: list[str],
    case: str,
) -> None:
    f = custom if case == "custom" else fitted[case]
    digest, _ = save_bundle(workspace, f.pipeline, task=f.task)
    path = Path(workspace.artifacts.path_of(digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(
        Integrity,
        match=r"model bundle [0-9a-f]{12}… was refused: artifact .* does not match its digest",
    ):
        load_bundle(workspace, digest)
    assert no_deserialising == []


def test_a_changed_part_in_a_rezipped_bundle_is_refused(
    workspace: Workspace, fitted: dict[str, Fitted], no_deserialising: list[str]
) -> None:
    digest, _ = save_bundle(workspace, fitted["logistic"].pipeline, task="classification")
    entries = entries_of(workspace, digest)
    part = bytearray(entries["pipeline.skops"])
    part[-100] ^= 0x01

    unpinned = dict(entries)
    replace_part(unpinned, "pipeline.skops", bytes(part), pin=False)
    with pytest.raises(
        Integrity,
        match=r"model credit-risk@1: part pipeline.skops hashes to [0-9a-f]{12}…, not the "
        r"[0-9a-f]{12}… its signed manifest pins, so it was changed after signing; the bundle "
        r"was refused",
    ):
        load_bundle(workspace, store(workspace, unpinned), label="model credit-risk@1")

    pinned = dict(entries)  # the manifest's digest updated too, but the signature not
    replace_part(pinned, "pipeline.skops", bytes(part), pin=True)
    with pytest.raises(Integrity, match=r"manifest signature does not verify .* was refused"):
        load_bundle(workspace, store(workspace, pinned))
    assert no_deserialising == []


def test_a_bundle_signed_by_another_workspace_is_refused(
    workspace: Workspace, fitted: dict[str, Fitted], tmp_path: Path, no_deserialising: list[str]
) -> None:
    other = other_workspace(tmp_path)
    try:
        digest, _ = save_bundle(other, fitted["lightgbm"].pipeline, task="classification")
        blob = other.artifacts.get_bytes(digest)
    finally:
        other.close()
    assert workspace.artifacts.put_bytes(blob) == digest

    with pytest.raises(
        Integrity,
        match="signature does not verify with this workspace's key, so the bundle was refused",
    ):
        load_bundle(workspace, digest)
    assert no_deserialising == []


def test_a_malicious_pickle_under_a_forged_manifest_never_runs(
    workspace: Workspace, custom: Fitted, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned.txt"
    payload = pickle.dumps(Payload(sentinel))
    # The payload is real: unpickling it elsewhere writes its file.
    control = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.read_text() == "pwned"

    digest, _ = save_bundle(workspace, custom.pipeline, task="classification")
    genuine = entries_of(workspace, digest)
    other = other_workspace(tmp_path)
    forgeries = {}

    unsigned = dict(genuine)  # digest pinned in the manifest, signature left as it was
    replace_part(unsigned, "pipeline.pkl", payload, pin=True)
    forgeries["unsigned"] = unsigned
    zeros = dict(unsigned)
    zeros["manifest.sig"] = bytes(64)
    forgeries["zero signature"] = zeros
    foreign = dict(unsigned)  # a valid signature, by another workspace's key
    foreign["manifest.sig"] = other.signer.sign(foreign["manifest.json"])
    forgeries["other key"] = foreign
    other.close()
    swapped = dict(genuine)  # the signed manifest pins the genuine pickle's digest
    replace_part(swapped, "pipeline.pkl", payload, pin=False)
    forgeries["signed, other bytes"] = swapped

    for kind, entries in forgeries.items():
        with pytest.raises(Integrity, match="refused"):
            load_bundle(workspace, store(workspace, entries), label=f"model forged ({kind})")
        assert not sentinel.exists(), kind


def test_a_signed_skops_part_with_an_untrusted_type_is_refused_unrun(
    workspace: Workspace, fitted: dict[str, Fitted], tmp_path: Path
) -> None:
    sentinel = tmp_path / "trap.txt"
    trap = sio.dumps(Trap(str(sentinel)))
    # The trap is real: skops would run it if the type were trusted.
    sio.loads(sio.dumps(Trap(str(tmp_path / "control.txt"))), trusted=[f"{__name__}.Trap"])
    assert (tmp_path / "control.txt").exists()

    digest, _ = save_bundle(workspace, fitted["logistic"].pipeline, task="classification")
    entries = entries_of(workspace, digest)
    replace_part(entries, "pipeline.skops", trap, pin=True)
    entries["manifest.sig"] = workspace.signer.sign(entries["manifest.json"])  # validly signed

    with pytest.raises(
        Integrity,
        match=rf"model trap@1: part pipeline.skops holds types outside Shipyard's skops "
        rf"allow-list \({__name__}.Trap\); it was refused without loading them",
    ):
        load_bundle(workspace, store(workspace, entries), label="model trap@1")
    assert not sentinel.exists()


def test_a_blob_that_is_not_a_bundle_is_refused(workspace: Workspace) -> None:
    digest = workspace.artifacts.put_bytes(b"not a zip at all")
    with pytest.raises(Integrity, match=r"is not a Shipyard model bundle .* it was refused"):
        load_bundle(workspace, digest)
    no_manifest = store(workspace, {"pipeline.pkl": pickle.dumps(1)})
    with pytest.raises(Integrity, match=r"has no single manifest.json and manifest.sig .* refused"):
        load_bundle(workspace, no_manifest)
