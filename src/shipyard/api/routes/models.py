"""/api/v1/models: versions, one version and its signed bundle (viewer); aliases and status
(scientist)."""

from __future__ import annotations

from shipyard.api.access import READ, SCIENCE
from shipyard.api.cursor import page_after, scope_of
from shipyard.api.operation import PREFIX, Call, Download, Operation
from shipyard.api.routes.datasets import stream_verified
from shipyard.api.schemas.models import (
    AliasSet,
    ModelPage,
    ModelQuery,
    ModelVersionView,
    StatusSet,
)
from shipyard.core.records import ModelVersion
from shipyard.registry import (
    get_version,
    list_models,
    list_versions,
    remove_alias,
    set_alias,
    set_status,
)


def _key(v: ModelVersion) -> list[str | int]:
    return [v.model, v.version]


def list_(call: Call) -> ModelPage:
    q: ModelQuery = call.query
    scope = scope_of("models", name=q.name, status=q.status, alias=q.alias)
    after = call.position(scope)
    names = [q.name] if q.name else list_models(call.ws)
    if after is not None:  # whole models before the cursor's are skipped unread
        names = [n for n in names if n >= after[0]]
    found: list[ModelVersion] = []
    for name in names:  # stops reading models once the page (and one more) is full
        found.extend(
            v
            for v in list_versions(call.ws, name)
            if (after is None or _key(v) > after)
            and (q.status is None or v.status == q.status)
            and (q.alias is None or q.alias in v.aliases)
        )
        if len(found) > q.limit:
            break
    chosen, last = page_after(found, _key, after, q.limit)
    return ModelPage(
        items=[ModelVersionView.of(v) for v in chosen], next_cursor=call.next_cursor(scope, last)
    )


def show(call: Call) -> ModelVersionView:
    return ModelVersionView.of(get_version(call.ws, f"{call.path['name']}@{call.path['version']}"))


def alias(call: Call) -> ModelVersionView:
    body: AliasSet = call.body
    name = call.path["name"]
    return ModelVersionView.of(set_alias(call.ws, f"{name}@{body.version}", call.path["alias"]))


def unalias(call: Call) -> ModelVersionView:
    return ModelVersionView.of(remove_alias(call.ws, call.path["name"], call.path["alias"]))


def status(call: Call) -> ModelVersionView:
    body: StatusSet = call.body
    ref = f"{call.path['name']}@{call.path['version']}"
    return ModelVersionView.of(set_status(call.ws, ref, body.status))


def bundle(call: Call) -> Download:
    """The version's bundle as stored (registry.bundle: a zip whose manifest the workspace
    signed); the client checks the ETag digest and the signature before loading anything."""
    version = get_version(call.ws, call.path["ref"])
    artifacts = call.ws.artifacts
    return Download(
        stream_verified(call.ws, version.artifact),
        "application/zip",
        f"{version.model}-{version.version}.zip",
        version.artifact,
        artifacts.fs.size(artifacts.path_of(version.artifact)),
    )


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/models", list_, READ,
        "Model versions, by model and version, with statuses and aliases.",
        result=ModelPage, query=ModelQuery, errors=(404,), tag="models",
    ),
    Operation(
        "GET", f"{PREFIX}/models/{{name}}/versions/{{version}}", show, READ,
        "One version (N, an alias such as champion, or latest): signature, metrics, gates.",
        result=ModelVersionView, errors=(404,), tag="models",
    ),
    Operation(
        "PUT", f"{PREFIX}/models/{{name}}/aliases/{{alias}}", alias, SCIENCE,
        "Point an alias at a version (a rejected version can never be champion).",
        result=ModelVersionView, body=AliasSet, errors=(404, 409), tag="models",
    ),
    Operation(
        "DELETE", f"{PREFIX}/models/{{name}}/aliases/{{alias}}", unalias, SCIENCE,
        "Remove an alias; answers the version it pointed at.",
        result=ModelVersionView, errors=(404,), tag="models",
    ),
    Operation(
        "PUT", f"{PREFIX}/models/{{name}}/versions/{{version}}/status", status, SCIENCE,
        "Move a version to another status along the allowed transitions.",
        result=ModelVersionView, body=StatusSet, errors=(404, 409), tag="models",
    ),
    Operation(
        "GET", f"{PREFIX}/models/{{ref}}/bundle", bundle, READ,
        "A version's signed bundle (ref: NAME, NAME@N, NAME@alias such as champion), its digest "
        "checked; the ETag is its sha256. Load it with the client, which verifies the "
        "workspace's signature first.",
        result=None, produces="application/zip", errors=(404,), tag="models",
    ),
]  # fmt: skip
