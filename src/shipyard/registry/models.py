"""The model registry: versions, aliases, statuses and documents, and loading a model for use.

One implementation behind the CLI, the REST API and the SDK. A version's status follows

    candidate ─▶ approved ─▶ deployed
        │           │            │
        ├─▶ rejected ─▶ archived ◀┘   (and archived ─▶ candidate, if its gates passed)

A version that failed a gate is registered `rejected`: it can never be approved, deployed,
made champion or challenger, or loaded for use. Every change is an audit event written in the
same transaction.

`deployed` is kept true by the endpoints (`serve.endpoints`), in their own transaction: a
version becomes `deployed` when it becomes the champion of an endpoint (from candidate or
approved: putting it in front of every client is the approval), and goes back to `approved`
when it is the champion of none (`mark_deployed`, `mark_undeployed`). Not `archived`: an
archived version is refused in every role, and rolling back to the previous champion must stay
one command; archiving is a person's decision.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.core.errors import Conflict, Integrity, Invalid, NotFound
from shipyard.core.records import (
    GateResult,
    ModelStatus,
    ModelVersion,
    Ref,
    Signature,
    check_name,
)
from shipyard.registry.signature import OUTPUTS, with_carried
from shipyard.store import audit
from shipyard.store.tables import ModelAliasRow, ModelRow, ModelVersionRow
from shipyard.store.workspace import Workspace

if TYPE_CHECKING:
    from shipyard.registry.bundle import LoadedModel

URI_PREFIX = "models:/"
# Aliases that route traffic to a version: never a rejected or archived one.
SERVING_ALIASES = ("champion", "challenger")
RESERVED_ALIASES = ("latest",)
_TRANSITIONS: dict[ModelStatus, tuple[ModelStatus, ...]] = {
    ModelStatus.candidate: (ModelStatus.approved, ModelStatus.rejected, ModelStatus.archived),
    ModelStatus.approved: (
        ModelStatus.deployed,
        ModelStatus.candidate,
        ModelStatus.rejected,
        ModelStatus.archived,
    ),
    ModelStatus.deployed: (ModelStatus.approved, ModelStatus.archived),
    ModelStatus.rejected: (ModelStatus.archived,),
    ModelStatus.archived: (ModelStatus.candidate,),
}
_ATTEMPTS = 3


# -- registering --------------------------------------------------------------------------------


def register(
    ws: Workspace,
    name: str,
    pipeline: Any,
    *,
    task: str,
    signature: Signature,
    run_id: str | None = None,
    dataset_version_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    gates: Sequence[GateResult] = (),
    profile: Mapping[str, Any] | None = None,
    documents: Mapping[str, bytes | str] | None = None,
    description: str | None = None,
    code_dir: Path | None = None,
) -> ModelVersion:
    """Store a fitted pipeline as the next version of model `name`.

    The version is `rejected` when any gate failed, else `candidate`. `profile` is the drift
    reference; `documents` (e.g. "card.md", "evaluation.html") are stored as blobs. `code_dir`
    (the project's directory) lets a model of the project's own estimator class carry that
    class's module (see `registry/code.py`). If the version cannot be recorded, the blobs this
    call added are removed again, so a failed registration leaves nothing behind.

        >>> v = register(ws, "credit-risk", pipeline, task="classification",
        ...              signature=sig, metrics={"f1": 0.83}, gates=gates)
        >>> v.ref, v.status
        ('credit-risk@1', <ModelStatus.candidate: 'candidate'>)
    """
    check_name(name, what="model name")
    _check_signature(pipeline, task, signature)
    clean_metrics = _finite_metrics(metrics or {})
    gate_list = _checked_gates(gates)
    docs = {check_name(k, what="document name"): v for k, v in (documents or {}).items()}

    # bundle pulls in scikit-learn, LightGBM and skops: only registering and loading need them,
    # not the listing and lookups the CLI's quick commands (and the endpoints) use
    from shipyard.registry.bundle import save_bundle

    added: list[str] = []  # blobs this call created (not ones an earlier version shares)

    def put(data: bytes) -> str:
        existed = ws.artifacts.exists(hashlib.sha256(data).hexdigest())
        digest = ws.artifacts.put_bytes(data)
        if not existed:
            added.append(digest)
        return digest

    try:
        artifact, flavor = save_bundle(ws, pipeline, task=task, code_dir=code_dir, put=put)
        stored_docs = {
            k: put(v.encode("utf-8") if isinstance(v, str) else bytes(v)) for k, v in docs.items()
        }
        return _record(
            ws,
            name,
            status=_status_of(gate_list),
            run_id=run_id,
            dataset_version_id=dataset_version_id,
            task=task,
            flavor=flavor,
            artifact=artifact,
            signature=signature,
            metrics=clean_metrics,
            gates=gate_list,
            profile=profile,
            documents=stored_docs,
            description=description,
        )
    except BaseException:
        for digest in added:
            ws.artifacts.discard(digest)
        raise


def _status_of(gates: Sequence[GateResult]) -> ModelStatus:
    return ModelStatus.rejected if any(not g.passed for g in gates) else ModelStatus.candidate


def _record(
    ws: Workspace,
    name: str,
    *,
    status: ModelStatus,
    run_id: str | None,
    dataset_version_id: str | None,
    task: str,
    flavor: str,
    artifact: str,
    signature: Signature,
    metrics: dict[str, float],
    gates: list[GateResult],
    profile: Mapping[str, Any] | None,
    documents: dict[str, str],
    description: str | None,
) -> ModelVersion:
    """The version row and its audit event, in one transaction (retried on a version clash)."""
    gate_list, clean_metrics, stored_docs = gates, metrics, documents
    for attempt in range(_ATTEMPTS):
        try:
            with ws.db.write() as s:
                now = datetime.now(UTC)
                if s.get(ModelRow, name) is None:
                    s.add(ModelRow(name=name, created_at=now, created_by=ws.actor))
                    s.flush()
                previous = _latest_row(s, name)
                row = ModelVersionRow(
                    id="mv_" + secrets.token_hex(10),
                    model=name,
                    version=(previous.version if previous else 0) + 1,
                    status=status.value,
                    run_id=run_id,
                    dataset_version_id=dataset_version_id,
                    task=task,
                    flavor=flavor,
                    artifact=artifact,
                    signature=signature.model_dump(mode="json"),
                    metrics=clean_metrics,
                    gates=[g.model_dump(mode="json") for g in gate_list],
                    profile=dict(profile or {}),
                    documents=stored_docs,
                    description=description,
                    created_at=now,
                    created_by=ws.actor,
                )
                s.add(row)
                s.flush()
                audit.append(
                    s,
                    actor=ws.actor,
                    action="model.register",
                    object_type="model_version",
                    object_id=row.id,
                    before=previous.id if previous else None,
                    after=row.id,
                    details={
                        "ref": f"{name}@{row.version}",
                        "status": status.value,
                        "flavor": flavor,
                        "artifact": artifact,
                        "run_id": run_id,
                        "dataset_version_id": dataset_version_id,
                        "failed_gates": [g.gate for g in gate_list if not g.passed],
                    },
                )
                return to_record(row, [])
        except IntegrityError as exc:  # another registration took this version number
            if attempt == _ATTEMPTS - 1:
                raise Conflict(
                    f"model {name!r} is being registered by others at the same time and no "
                    f"version number was free after {_ATTEMPTS} tries; register it again."
                ) from exc
    raise AssertionError("unreachable")


def _check_signature(pipeline: Any, task: str, signature: Signature) -> None:
    if task not in OUTPUTS:
        raise Invalid(f"task {task!r} is not one of {', '.join(OUTPUTS)}.")
    if signature.output != OUTPUTS[task]:
        raise Invalid(
            f"the signature's output is {signature.output!r}, but a {task} model outputs "
            f"{OUTPUTS[task]!r}; build it with signature_from_schema(..., task={task!r})."
        )
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is not None:
        fitted_names = [str(c) for c in fitted]
        missing = [c for c in fitted_names if c not in signature.names]
        extra = [c for c in signature.names if c not in fitted_names]
        if missing or extra:
            raise Invalid(
                "the signature does not match the columns the pipeline was fitted on "
                f"(missing from the signature: {missing or 'none'}; not used by the pipeline: "
                f"{extra or 'none'}); build the signature from the features it was trained on."
            )
    classes = getattr(pipeline, "classes_", None)
    if task == "classification" and classes is not None and signature.classes is not None:
        labels = [str(c) for c in classes]
        if labels != signature.classes:
            raise Invalid(
                f"the signature's classes {signature.classes} are not the pipeline's classes_ "
                f"{labels}; build the signature with classes=pipeline.classes_."
            )


def _finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if not math.isfinite(number):
            raise Invalid(
                f"metric {key!r} is {value}; metrics must be finite numbers. Leave it out or "
                "fix how it is computed."
            )
        out[str(key)] = number
    return out


def _checked_gates(gates: Sequence[GateResult]) -> list[GateResult]:
    for gate in gates:
        for field, number in (("value", gate.value), ("threshold", gate.threshold)):
            if number is not None and not math.isfinite(number):
                raise Invalid(
                    f"gate {gate.gate!r} has {field} {number}; gate values must be finite "
                    "numbers (or None when not measured)."
                )
    return list(gates)


# -- looking up ---------------------------------------------------------------------------------


def parse_ref(text: str | Ref) -> Ref:
    """`name`, `name@N`, `name@alias`, `name@latest`, "models:/name@alias" or "models:/name/3"."""
    if isinstance(text, Ref):
        return text
    value = text.strip()
    if value.startswith(URI_PREFIX):
        value = value[len(URI_PREFIX) :]
        if "/" in value:
            name, _, version = value.partition("/")
            value = f"{name}@{version}"
    return Ref.parse(value, what="model reference")


def get_version(ws: Workspace, ref: str | Ref) -> ModelVersion:
    """A version by `name@N`, `name@alias` (e.g. champion), or `name` / `name@latest`."""
    parsed = parse_ref(ref)
    with ws.db.read() as s:
        row = _resolve(s, parsed)
        return to_record(row, _aliases_of(s, row))


def list_models(ws: Workspace) -> list[str]:
    """The names of every registered model, sorted."""
    with ws.db.read() as s:
        return list(s.scalars(select(ModelRow.name).order_by(ModelRow.name)))


def list_versions(ws: Workspace, name: str) -> list[ModelVersion]:
    """Every version of a model, oldest first, each with its aliases."""
    with ws.db.read() as s:
        if s.get(ModelRow, name) is None:
            raise _unknown_model(s, name)
        aliases: dict[str, list[str]] = {}
        for alias in s.scalars(select(ModelAliasRow).where(ModelAliasRow.model == name)):
            aliases.setdefault(alias.version_id, []).append(alias.alias)
        rows = s.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.model == name)
            .order_by(ModelVersionRow.version)
        )
        return [to_record(r, aliases.get(r.id, [])) for r in rows]


def get_document(ws: Workspace, ref: str | Ref, name: str) -> bytes:
    """A stored document of a version ("card.md", "evaluation.html", …), digest verified."""
    version = get_version(ws, ref)
    digest = version.documents.get(name)
    if digest is None:
        have = ", ".join(sorted(version.documents)) or "none"
        raise NotFound(
            f"{version.ref} has no document {name!r} (it has: {have}); documents are stored "
            "when the model is registered."
        )
    return ws.artifacts.get_bytes(digest)


def get_profile(ws: Workspace, ref: str | Ref) -> dict[str, Any] | None:
    """The reference data profile stored with a version (the drift baseline), if any."""
    parsed = parse_ref(ref)
    with ws.db.read() as s:
        profile = _resolve(s, parsed).profile
        return dict(profile) if profile else None


def load_model(ws: Workspace, uri: str | Ref) -> LoadedModel:
    """Load a version for use: "models:/NAME@ALIAS", "models:/NAME/3" or "NAME@3".

    The artifact's digest, signature and parts are verified before anything is deserialised;
    a version rejected by its gates is refused.

        >>> model = load_model(ws, "models:/credit-risk@champion")
        >>> model.predict(frame)
    """
    version = get_version(ws, uri)
    if version.status == ModelStatus.rejected:
        raise Conflict(
            f"{version.ref} was rejected {_rejection(version)}; it cannot be loaded for use; "
            "train a better one or use another version."
        )
    from shipyard.registry.bundle import load_bundle  # heavy: see register()

    loaded = load_bundle(ws, version.artifact, label=f"model {version.ref}")
    if (loaded.flavor, loaded.task) != (version.flavor, version.task):
        raise Integrity(
            f"model {version.ref}: its artifact is a {loaded.task} model of flavor "
            f"{loaded.flavor}, but the registry records a {version.task} model of flavor "
            f"{version.flavor}; the record points at the wrong artifact, so it was refused."
        )
    signature = with_carried(ws, version, version.signature)  # older versions: from the data
    return replace(loaded, signature=signature, ref=version.ref)


# -- aliases and statuses -----------------------------------------------------------------------


def set_alias(ws: Workspace, ref: str | Ref, alias: str) -> ModelVersion:
    """Point `alias` (e.g. champion) at a version, moving it from wherever it pointed.

    >>> set_alias(ws, "credit-risk@3", "champion").aliases
    ['champion']
    """
    check_name(alias, what="alias")
    if alias in RESERVED_ALIASES:
        raise Invalid(f"alias {alias!r} is reserved (NAME@{alias} always means the newest).")
    parsed = parse_ref(ref)
    try:
        return _set_alias(ws, parsed, alias)
    except IntegrityError as exc:  # another writer created the same alias first
        raise Conflict(
            f"alias {alias!r} of model {parsed.name} was set by someone else at the same time; "
            "look at `shipyard models ls` and set it again if it should still move."
        ) from exc


def _set_alias(ws: Workspace, parsed: Ref, alias: str) -> ModelVersion:
    with ws.db.write() as s:
        row = _resolve(s, parsed)
        ref_text = f"{row.model}@{row.version}"
        status = ModelStatus(row.status)
        if alias in SERVING_ALIASES and status == ModelStatus.rejected:
            raise Conflict(
                f"{ref_text} cannot become {alias}: it was rejected {_rejection_row(row)}. "
                f"Train a better model, or point {alias} at a version that passed its gates "
                "(`shipyard models ls`)."
            )
        if alias in SERVING_ALIASES and status == ModelStatus.archived:
            raise Conflict(
                f"{ref_text} cannot become {alias}: it is archived. Restore it first "
                f"(status candidate) or point {alias} at another version."
            )
        current = s.get(ModelAliasRow, (row.model, alias))
        before = current.version_id if current else None
        if before != row.id:
            now = datetime.now(UTC)
            if current is None:
                s.add(
                    ModelAliasRow(
                        model=row.model,
                        alias=alias,
                        version_id=row.id,
                        updated_at=now,
                        updated_by=ws.actor,
                    )
                )
            else:
                current.version_id, current.updated_at, current.updated_by = row.id, now, ws.actor
            s.flush()
            previous = s.get(ModelVersionRow, before) if before else None
            audit.append(
                s,
                actor=ws.actor,
                action="model.alias",
                object_type="model",
                object_id=row.model,
                before=before,
                after=row.id,
                details={
                    "alias": alias,
                    "ref": ref_text,
                    "previous": f"{row.model}@{previous.version}" if previous else None,
                },
            )
        return to_record(row, _aliases_of(s, row))


def remove_alias(ws: Workspace, name: str, alias: str) -> ModelVersion:
    """Remove `alias` from model `name`; returns the version it pointed at."""
    with ws.db.write() as s:
        if s.get(ModelRow, name) is None:
            raise _unknown_model(s, name)
        current = s.get(ModelAliasRow, (name, alias))
        if current is None:
            raise _unknown_alias(s, name, alias)
        row = s.get(ModelVersionRow, current.version_id)
        assert row is not None  # a foreign key guarantees it
        s.delete(current)
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="model.alias.remove",
            object_type="model",
            object_id=name,
            before=row.id,
            after=None,
            details={"alias": alias, "ref": f"{name}@{row.version}"},
        )
        return to_record(row, _aliases_of(s, row))


def set_status(ws: Workspace, ref: str | Ref, status: str | ModelStatus) -> ModelVersion:
    """Move a version to another status along the allowed transitions (see the module doc)."""
    try:
        target = ModelStatus(status)
    except ValueError as exc:
        raise Invalid(
            f"status {status!r} is not one of {', '.join(s.value for s in ModelStatus)}."
        ) from exc
    parsed = parse_ref(ref)
    with ws.db.write() as s:
        row = _resolve(s, parsed)
        ref_text = f"{row.model}@{row.version}"
        current = ModelStatus(row.status)
        if target == current:
            return to_record(row, _aliases_of(s, row))
        failed = [g for g in _gates(row) if not g.passed]
        usable = (ModelStatus.candidate, ModelStatus.approved, ModelStatus.deployed)
        if current == ModelStatus.rejected and target in usable:
            raise Conflict(
                f"{ref_text} was rejected {_rejection_row(row)}; a rejected version can never "
                f"become {target.value}. Train a better model or use another version."
            )
        if target in usable and failed:
            raise Conflict(
                f"{ref_text} cannot become {target.value}: it failed its gates: "
                f"{_failed_text(failed)}."
            )
        allowed = _TRANSITIONS[current]
        if target not in allowed:
            raise Conflict(
                f"{ref_text} is {current.value}; it can become "
                f"{', '.join(a.value for a in allowed)}, not {target.value}."
            )
        serving = sorted(set(_aliases_of(s, row)) & set(SERVING_ALIASES))
        if target in (ModelStatus.rejected, ModelStatus.archived) and serving:
            raise Conflict(
                f"{ref_text} is {', '.join(serving)}; point that alias at another version "
                f"before making it {target.value}."
            )
        row.status = target.value
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="model.status",
            object_type="model_version",
            object_id=row.id,
            before=current.value,
            after=target.value,
            details={"ref": ref_text},
        )
        return to_record(row, _aliases_of(s, row))


def mark_deployed(s: Session, actor: str, version_id: str, *, why: str) -> None:
    """In the caller's transaction: the version became an endpoint's champion, so it is
    `deployed` (from candidate or approved; audited with `why`)."""
    row = s.get(ModelVersionRow, version_id)
    if row is None or row.status not in (ModelStatus.candidate, ModelStatus.approved):
        return  # deployed already (rejected and archived versions never get this far)
    _serving_status(s, actor, row, ModelStatus.deployed, why)


def mark_undeployed(s: Session, actor: str, version_id: str, *, why: str) -> None:
    """In the caller's transaction: the version is the champion of no endpoint any more, so a
    `deployed` one goes back to `approved` (audited with `why`)."""
    row = s.get(ModelVersionRow, version_id)
    if row is not None and row.status == ModelStatus.deployed:
        _serving_status(s, actor, row, ModelStatus.approved, why)


def _serving_status(
    s: Session, actor: str, row: ModelVersionRow, target: ModelStatus, why: str
) -> None:
    before = row.status
    row.status = target.value
    s.flush()
    audit.append(
        s,
        actor=actor,
        action="model.status",
        object_type="model_version",
        object_id=row.id,
        before=before,
        after=target.value,
        details={"ref": f"{row.model}@{row.version}", "reason": why},
    )


def alias_stamp(ws: Workspace) -> tuple[int, datetime | None]:
    """(how many aliases, when one last moved): a cheap query that changes whenever an alias
    is set, moved or removed, for a server to see when endpoints that follow one must move."""
    with ws.db.read() as s:
        count, latest = s.execute(
            select(func.count(), func.max(ModelAliasRow.updated_at)).select_from(ModelAliasRow)
        ).one()
        return int(count), latest


# -- rows ⇄ records -----------------------------------------------------------------------------


def to_record(row: ModelVersionRow, aliases: Sequence[str]) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model=row.model,
        version=row.version,
        status=ModelStatus(row.status),
        run_id=row.run_id,
        dataset_version_id=row.dataset_version_id,
        task=row.task,  # type: ignore[arg-type]
        flavor=row.flavor,
        artifact=row.artifact,
        signature=Signature.model_validate(row.signature),
        metrics=dict(row.metrics),
        gates=_gates(row),
        documents=dict(row.documents),
        aliases=sorted(aliases),
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _gates(row: ModelVersionRow) -> list[GateResult]:
    return [GateResult.model_validate(g) for g in row.gates]


def _failed_text(failed: Sequence[GateResult]) -> str:
    return "; ".join(
        f"{g.gate} (got {g.value:.4g})" if g.value is not None else g.gate for g in failed
    )


def _rejection(version: ModelVersion) -> str:
    failed = version.failed_gates
    return f"by its gates ({_failed_text(failed)})" if failed else "(its status was set by hand)"


def _rejection_row(row: ModelVersionRow) -> str:
    failed = [g for g in _gates(row) if not g.passed]
    if failed:
        return f"because it failed its gates: {_failed_text(failed)}"
    return "(its status was set by hand)"


def _resolve(s: Session, ref: Ref) -> ModelVersionRow:
    if s.get(ModelRow, ref.name) is None:
        raise _unknown_model(s, ref.name)
    if ref.alias is not None:
        alias = s.get(ModelAliasRow, (ref.name, ref.alias))
        if alias is None:
            raise _unknown_alias(s, ref.name, ref.alias)
        row = s.get(ModelVersionRow, alias.version_id)
    elif ref.version is None:
        row = _latest_row(s, ref.name)
    else:
        row = s.scalars(
            select(ModelVersionRow).where(
                ModelVersionRow.model == ref.name, ModelVersionRow.version == ref.version
            )
        ).first()
    if row is None:
        count = s.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model == ref.name)
        )
        have = f"versions 1 to {count}" if count else "no versions yet"
        raise NotFound(
            f"model {ref} does not exist: {ref.name} has {have}. `shipyard models ls` lists them."
        )
    return row


def _latest_row(s: Session, name: str) -> ModelVersionRow | None:
    return s.scalars(
        select(ModelVersionRow)
        .where(ModelVersionRow.model == name)
        .order_by(ModelVersionRow.version.desc())
        .limit(1)
    ).first()


def _aliases_of(s: Session, row: ModelVersionRow) -> list[str]:
    return list(s.scalars(select(ModelAliasRow.alias).where(ModelAliasRow.version_id == row.id)))


def _unknown_model(s: Session, name: str) -> NotFound:
    names = list(s.scalars(select(ModelRow.name).order_by(ModelRow.name).limit(20)))
    known = f"known models: {', '.join(names)}" if names else "no models are registered yet"
    return NotFound(
        f"model {name!r} does not exist ({known}). `shipyard train` registers one; "
        "`shipyard models ls` lists them."
    )


def _unknown_alias(s: Session, name: str, alias: str) -> NotFound:
    rows = s.execute(
        select(ModelAliasRow.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id)
        .where(ModelAliasRow.model == name)
        .order_by(ModelAliasRow.alias)
    ).all()
    have = ", ".join(f"{a} → {name}@{v}" for a, v in rows) or "none"
    return NotFound(
        f"model {name} has no alias {alias!r} (its aliases: {have}); set one with "
        f"`shipyard models alias {name}@N {alias}`."
    )
