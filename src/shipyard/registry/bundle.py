"""The model bundle: one signed zip in the workspace artifact store per model version.

    manifest.json   format, flavor, task, classes, Python and package versions, and for each
                    part its name, kind, size and sha256
    manifest.sig    the workspace's Ed25519 signature over the manifest bytes
    <parts>         pipeline.skops  |  prep.skops + model.lgb.txt  |  pipeline.pkl
                    (+ code/*.py: the project's own modules a pickle needs, see `code.py`)

Flavors, safest first:

    lightgbm   the final step is an LGBMClassifier/LGBMRegressor: LightGBM's native model text,
               loaded into `NativeLightGBM`; the steps before it in skops
    skops      every type in the pipeline is trusted by skops or on `TRUSTED_TYPES`
    pickle     anything else (a user's own estimator class; the source of its module, when
               it lives in the project directory, is stored with it)

Loading checks, before anything is deserialised: the blob's digest (the artifact store does it
on read), the manifest's signature, then each part's size and sha256. A pickle is therefore only
unpickled when this workspace signed the manifest that pins its digest. The zip is written
deterministically (fixed timestamps and order, skops' object ids renumbered), so the same
fitted pipeline gives the same artifact digest.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import pickle
import platform
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

import lightgbm
import numpy as np
import skops.io as sio
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from skops.io.exceptions import UntrustedTypesFoundException

from shipyard.core.errors import Integrity, Invalid
from shipyard.core.records import Signature
from shipyard.registry.code import importing_from, project_code
from shipyard.registry.native import NativeLightGBM
from shipyard.store.workspace import Workspace

FORMAT = "shipyard.bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
_MAX_MANIFEST = 1 << 20
_MAX_SIGNATURE = 1 << 10
_EPOCH = (1980, 1, 1, 0, 0, 0)
_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "lightgbm")

# Types skops does not trust by default that Shipyard's own pipelines contain: the union of
# `skops.io.get_untrusted_types()` over the schema-built preprocessing (imputers, scalers,
# one-hot/ordinal encoders, dense and sparse output) followed by scikit-learn's linear models,
# trees, forests, (hist) gradient boosting, AdaBoost, nearest neighbours, SVMs, naive Bayes,
# MLPs and k-means (scikit-learn 1.9, skops 0.16). scikit-learn estimators and transformers
# themselves are trusted by skops. tests/registry/test_bundle.py re-derives the list on
# reference pipelines. Anything else makes the model a signed pickle instead.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)

Task = Literal["classification", "regression", "clustering"]
Flavor = Literal["skops", "lightgbm", "pickle"]
PartKind = Literal["skops", "lightgbm", "pickle", "code"]
TASKS: tuple[str, ...] = ("classification", "regression", "clustering")


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: PartKind
    size: int
    sha256: str


class Manifest(BaseModel):
    """What `manifest.json` holds; the signature covers its exact bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    flavor: Flavor
    task: Task
    estimator: str
    classes: list[Any] | None = None
    classes_dtype: str | None = None
    final_step: str | None = None  # lightgbm: the last Pipeline step's name; None: no Pipeline
    python: str
    packages: dict[str, str]
    parts: list[Part]
    code: dict[str, str] | None = None  # module name → part holding its source (pickle only)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified, loaded model: predict on a DataFrame of the original feature columns.

        >>> model = load_model(ws, "models:/credit-risk@champion")
        >>> model.predict(frame), model.predict_proba(frame)[:, 1]

    `pipeline` is a scikit-learn compatible object (for the lightgbm flavor a Pipeline of the
    stored preprocessing and a `NativeLightGBM`), usable by SHAP and `shipyard.evaluate`.
    """

    pipeline: Any
    flavor: Flavor
    task: Task
    digest: str
    manifest: Manifest
    signature: Signature | None = None
    ref: str | None = None

    @property
    def name(self) -> str:
        return self.ref or f"model bundle {self.digest[:12]}…"

    @property
    def classes_(self) -> np.ndarray | None:
        return getattr(self.pipeline, "classes_", None)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.pipeline.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        if not hasattr(self.pipeline, "predict_proba"):
            raise Invalid(
                f"{self.name} is a {self.task} model whose estimator "
                f"({self.manifest.estimator}) gives no probabilities; use predict() instead."
            )
        return np.asarray(self.pipeline.predict_proba(X))

    def transform(self, X: Any) -> Any:
        """The preprocessing output the final estimator sees (X itself if there is none)."""
        if isinstance(self.pipeline, Pipeline) and len(self.pipeline.steps) > 1:
            return self.pipeline[:-1].transform(X)
        return X


# -- saving -------------------------------------------------------------------------------------


def save_bundle(
    ws: Workspace,
    pipeline: Any,
    *,
    task: str,
    code_dir: Path | None = None,
    put: Callable[[bytes], str] | None = None,
) -> tuple[str, str]:
    """Write a fitted model as a signed bundle; returns `(artifact digest, flavor)`.

    `code_dir` is the project's directory: a pickled model's modules found under it are stored
    in the bundle, so it loads without them on the import path. `put` stores the bytes
    (default: the workspace's artifact store).

    >>> digest, flavor = save_bundle(ws, pipeline, task="classification")
    >>> flavor
    'skops'
    """
    manifest, parts = _build(pipeline, _check_task(task), code_dir)
    blob = _pack(ws.signer, manifest, parts)
    return (put or ws.artifacts.put_bytes)(blob), manifest["flavor"]


class _Signs(Protocol):
    def sign(self, message: bytes) -> bytes: ...


def _build(
    pipeline: Any, task: str, code_dir: Path | None = None
) -> tuple[dict[str, Any], list[tuple[str, PartKind, bytes]]]:
    _check_fitted(pipeline)
    final_step, final = _final(pipeline)
    base: dict[str, Any] = {
        "format": FORMAT,
        "task": task,
        "estimator": _type_path(final),
        "python": platform.python_version(),
        "packages": _package_versions(),
        "final_step": None,
        **_classes(getattr(pipeline, "classes_", None)),
    }
    native = _lightgbm_parts(pipeline, final, base)
    if native is not None:
        return {**base, "flavor": "lightgbm", "final_step": final_step}, native
    whole = _skops_bytes(pipeline)
    if whole is not None:
        return {**base, "flavor": "skops"}, [("pipeline.skops", "skops", whole)]
    data = _pickle_bytes(pipeline)
    parts: list[tuple[str, PartKind, bytes]] = [("pipeline.pkl", "pickle", data)]
    code = project_code(data, code_dir) if code_dir is not None else {}
    if not code:
        return {**base, "flavor": "pickle"}, parts
    parts += [(part, "code", source) for part, source in sorted(code.values())]
    modules = {name: part for name, (part, _) in sorted(code.items())}
    return {**base, "flavor": "pickle", "code": modules}, parts


def _lightgbm_parts(
    pipeline: Any, final: Any, base: dict[str, Any]
) -> list[tuple[str, PartKind, bytes]] | None:
    """The native parts, or None when the final step is not a plain LightGBM model."""
    if not isinstance(final, lightgbm.LGBMClassifier | lightgbm.LGBMRegressor):
        return None
    if callable(final.objective) or (
        isinstance(final, lightgbm.LGBMClassifier) and base["classes"] is None
    ):
        return None  # a custom objective's raw scores, or labels JSON cannot hold
    parts: list[tuple[str, PartKind, bytes]] = []
    if isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1:
        prep = _skops_bytes(pipeline[:-1])
        if prep is None:
            return None
        parts.append(("prep.skops", "skops", prep))
    text = final.booster_.model_to_string()
    parts.append(("model.lgb.txt", "lightgbm", text.encode("utf-8")))
    return parts


def _skops_bytes(obj: Any) -> bytes | None:
    """skops bytes if skops can represent `obj` with only allow-listed types, else None."""
    try:
        raw = sio.dumps(obj)
        untrusted = set(sio.get_untrusted_types(data=raw))
    except Exception:  # skops cannot represent some object in it: the pickle flavor takes over
        return None
    if untrusted - set(TRUSTED_TYPES):
        return None
    return _canonical_skops(raw)


def _canonical_skops(raw: bytes) -> bytes:
    """skops' bytes with object ids renumbered and fixed timestamps, so equal models give equal
    bytes (skops names objects and array files by `id()` and stamps the current time)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        schema = json.loads(zf.read("schema.json"))
        files = {n: zf.read(n) for n in zf.namelist() if n != "schema.json"}
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids) + 1)  # skops treats 0 as unset
                elif key == "file" and isinstance(value, str) and value in files:
                    suffix = PurePosixPath(value).suffix
                    node[key] = names.setdefault(value, f"{len(names)}{suffix}")
                else:
                    walk(value)

    walk(schema)
    if set(names) != set(files):
        return raw  # a layout this code does not know: keep skops' own bytes
    entries = [(names[old], _zero_padding(old, data)) for old, data in files.items()]
    entries.append(("schema.json", json.dumps(schema, indent=2).encode()))
    return _zip(sorted(entries), compression=zipfile.ZIP_STORED)


def _zero_padding(name: str, data: bytes) -> bytes:
    """A structured array's bytes with its padding zeroed (scikit-learn's tree nodes leave it
    uninitialised, so two copies of one tree would otherwise differ)."""
    if not name.endswith(".npy"):
        return data
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype.names is None:
        return data
    clean = np.zeros(array.shape, dtype=array.dtype)
    for field in array.dtype.names:
        clean[field] = array[field]
    out = io.BytesIO()
    np.save(out, clean, allow_pickle=False)
    return out.getvalue()


def _pickle_bytes(pipeline: Any) -> bytes:
    try:
        return pickle.dumps(pipeline, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise Invalid(
            f"the model ({_type_path(_final(pipeline)[1])}) cannot be saved: skops cannot "
            f"represent it and pickle fails ({exc}). Define functions and classes at module "
            "level (no lambdas or notebook-local classes) so they can be imported by path."
        ) from exc


def _pack(
    signer: _Signs, manifest: dict[str, Any], parts: Sequence[tuple[str, str, bytes]]
) -> bytes:
    """The bundle's bytes: the manifest (with each part's digest), its signature, the parts."""
    listed = [
        {"name": name, "kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, kind, data in parts
    ]
    body = json.dumps({**manifest, "parts": listed}, sort_keys=True, indent=2).encode() + b"\n"
    entries = [(MANIFEST, body), (SIGNATURE, signer.sign(body))]
    entries += [(name, data) for name, _kind, data in parts]
    return _zip(entries, compression=zipfile.ZIP_DEFLATED)


def _zip(entries: Sequence[tuple[str, bytes]], *, compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = compression
            info.create_system = 3  # Unix, on every platform
            info.external_attr = 0o644 << 16
            zf.writestr(
                info, data, compresslevel=6 if compression == zipfile.ZIP_DEFLATED else None
            )
    return buffer.getvalue()


def _check_task(task: str) -> Task:
    if task not in TASKS:
        raise Invalid(f"task {task!r} is not one of {', '.join(TASKS)}.")
    return task  # type: ignore[return-value]


def _check_fitted(pipeline: Any) -> None:
    if not hasattr(pipeline, "predict"):
        raise Invalid(
            f"{_type_path(pipeline)} has no predict() method; register a fitted scikit-learn "
            "compatible estimator or Pipeline."
        )
    try:
        check_is_fitted(pipeline)
    except NotFittedError as exc:
        raise Invalid(
            f"the {_type_path(pipeline)} given is not fitted ({exc}); fit it before registering."
        ) from exc
    except TypeError:
        pass  # not a scikit-learn estimator by its checks; predict() is what matters here


def _final(pipeline: Any) -> tuple[str | None, Any]:
    if isinstance(pipeline, Pipeline) and pipeline.steps:
        name, step = pipeline.steps[-1]
        return name, step
    return None, pipeline


def _classes(classes: Any) -> dict[str, Any]:
    if classes is None:
        return {"classes": None, "classes_dtype": None}
    array = np.asarray(classes)
    values = array.tolist()
    try:
        json.dumps(values)
    except (TypeError, ValueError):
        return {"classes": None, "classes_dtype": None}
    return {"classes": values, "classes_dtype": array.dtype.str}


def _type_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _package_versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


# -- loading ------------------------------------------------------------------------------------


def load_bundle(ws: Workspace, digest: str, *, label: str | None = None) -> LoadedModel:
    """Verify and load a bundle; `label` (e.g. "model credit-risk@3") names it in errors.

    Raises `Integrity` when the blob, the manifest's signature or any part's digest does not
    verify; nothing in the bundle is deserialised before all three pass.
    """
    label = label or f"model bundle {digest[:12]}…"
    try:
        blob = ws.artifacts.get_bytes(digest)
    except Integrity as exc:
        raise Integrity(f"{label} was refused: {exc.message}") from exc
    manifest, parts = _unpack(ws.signer, blob, label)
    pipeline = _deserialise(manifest, parts, label)
    return LoadedModel(pipeline, manifest.flavor, manifest.task, digest, manifest)


class _Verifies(Protocol):
    def verify(self, message: bytes, signature: bytes, *, what: str) -> None: ...


def _unpack(signer: _Verifies, blob: bytes, label: str) -> tuple[Manifest, dict[str, bytes]]:
    """The verified manifest and parts; raises `Integrity` before anything is deserialised."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as exc:
        raise Integrity(
            f"{label} is not a Shipyard model bundle (not a zip archive); it was refused. "
            "Re-register the model from its run."
        ) from exc
    with zf:
        names = zf.namelist()
        if len(names) != len(set(names)) or MANIFEST not in names or SIGNATURE not in names:
            raise Integrity(
                f"{label} has no single {MANIFEST} and {SIGNATURE} (entries: "
                f"{', '.join(names[:10])}); it was refused. Re-register the model from its run."
            )
        body = _read(zf, MANIFEST, _MAX_MANIFEST, label)
        signature = _read(zf, SIGNATURE, _MAX_SIGNATURE, label)
        try:
            signer.verify(body, signature, what=label)
        except Integrity as exc:
            raise Integrity(
                f"{label}: its manifest signature does not verify with this workspace's key, so "
                "the bundle was refused and nothing in it was loaded. It was changed after "
                "signing or signed by another workspace; re-register the model from its run."
            ) from exc
        manifest = _parse_manifest(body, label)
        listed = {p.name for p in manifest.parts}
        extra = sorted(set(names) - listed - {MANIFEST, SIGNATURE})
        if extra or len(listed) != len(manifest.parts):
            raise Integrity(
                f"{label} holds entries its signed manifest does not list ({', '.join(extra)}); "
                "it was refused."
            )
        parts: dict[str, bytes] = {}
        for part in manifest.parts:
            data = _read(zf, part.name, part.size, label) if part.name in names else None
            if data is None or len(data) != part.size:
                raise Integrity(
                    f"{label}: part {part.name} is missing or not {part.size} bytes as its "
                    "signed manifest says; it was refused."
                )
            actual = hashlib.sha256(data).hexdigest()
            if actual != part.sha256:
                raise Integrity(
                    f"{label}: part {part.name} hashes to {actual[:12]}…, not the "
                    f"{part.sha256[:12]}… its signed manifest pins, so it was changed after "
                    "signing; the bundle was refused and nothing in it was loaded."
                )
            parts[part.name] = data
    return manifest, parts


def _read(zf: zipfile.ZipFile, name: str, limit: int, label: str) -> bytes:
    """At most `limit + 1` bytes of an entry (a larger one is caught by its caller's check)."""
    try:
        with zf.open(name) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError) as exc:
        raise Integrity(f"{label}: entry {name} cannot be read ({exc}); it was refused.") from exc
    if len(data) > limit:
        raise Integrity(f"{label}: entry {name} is larger than allowed; it was refused.")
    return data


def _parse_manifest(body: bytes, label: str) -> Manifest:
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise Integrity(f"{label}: its signed manifest is not JSON; it was refused.") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise Invalid(
            f"{label} is in bundle format {found!r}; this Shipyard reads {FORMAT!r}. "
            "Upgrade Shipyard to load it."
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise Integrity(f"{label}: its signed manifest is malformed ({exc}); refused.") from exc


def _deserialise(manifest: Manifest, parts: dict[str, bytes], label: str) -> Any:
    if manifest.flavor == "skops":
        return _skops_load(parts, "pipeline.skops", label)
    if manifest.flavor == "lightgbm":
        return _lightgbm_load(manifest, parts, label)
    code = {name: (part, _part(parts, part, label)) for name, part in (manifest.code or {}).items()}
    with importing_from(code):
        return _pickle_load(manifest, _part(parts, "pipeline.pkl", label), label)


def _skops_load(parts: dict[str, bytes], name: str, label: str) -> Any:
    data = _part(parts, name, label)
    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        raise Integrity(
            f"{label}: part {name} holds types outside Shipyard's skops allow-list "
            f"({', '.join(untrusted)}); it was refused without loading them. A bundle written "
            "by a newer Shipyard may need an upgrade; otherwise re-register the model."
        ) from exc
    except Exception as exc:  # skops' own errors vary by version: name the cause
        raise Invalid(
            f"{label}: part {name} could not be loaded by skops {_package_versions().get('skops')} "
            f"({type(exc).__name__}: {exc}); install the package versions it was saved with "
            "(see its manifest) or re-register the model."
        ) from exc


def _lightgbm_load(manifest: Manifest, parts: dict[str, bytes], label: str) -> Any:
    classes = None
    if manifest.classes is not None:
        dtype = np.dtype(manifest.classes_dtype) if manifest.classes_dtype else None
        classes = np.asarray(manifest.classes, dtype=dtype)
    text = _part(parts, "model.lgb.txt", label).decode("utf-8")
    try:
        model = NativeLightGBM.from_string(text, classes=classes)
    except lightgbm.basic.LightGBMError as exc:
        raise Invalid(f"{label}: LightGBM cannot read part model.lgb.txt ({exc}).") from exc
    if manifest.final_step is None:
        return model
    steps: list[tuple[str, Any]] = []
    if "prep.skops" in parts:
        steps = list(_skops_load(parts, "prep.skops", label).steps)
    return Pipeline([*steps, (manifest.final_step, model)])


def _pickle_load(manifest: Manifest, data: bytes, label: str) -> Any:
    # Only reached after the manifest's signature and this part's sha256 verified: the bytes
    # are exactly what this workspace pickled when it registered the model.
    try:
        return pickle.loads(data)  # noqa: S301
    except (ImportError, AttributeError) as exc:
        raise Invalid(
            f"{label}: its estimator {manifest.estimator} cannot be imported ({exc}); install "
            "the package that defines it in this environment."
        ) from exc


def _part(parts: dict[str, bytes], name: str, label: str) -> bytes:
    if name not in parts:
        raise Integrity(f"{label}: its manifest lists no part {name}; it was refused.")
    return parts[name]
