"""/api/v1/datasets (viewer): list, one dataset's versions, a version, its profile, a diff."""

from __future__ import annotations

from typing import Any

from shipyard.api.access import READ
from shipyard.api.cursor import page_after, scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.common import ListQuery
from shipyard.api.schemas.datasets import (
    DatasetPage,
    DatasetView,
    DiffQuery,
    DiffView,
    ProfileView,
    VersionPage,
    VersionSummary,
    VersionView,
)
from shipyard.data import diff_versions, get_dataset, get_version, list_datasets, list_versions


def _ref(name: str, version: str) -> str:
    """`version` of dataset `name` (N or latest), or a full NAME@N given as is."""
    return version if "@" in version else f"{name}@{version}"


def list_(call: Call) -> DatasetPage:
    q: ListQuery = call.query
    scope = scope_of("datasets")
    found = list_datasets(call.ws)
    chosen, last = page_after(found, lambda pair: [pair[0].name], call.position(scope), q.limit)
    return DatasetPage(
        items=[DatasetView.of(d, v) for d, v in chosen], next_cursor=call.next_cursor(scope, last)
    )


def versions(call: Call) -> VersionPage:
    q: ListQuery = call.query
    name = call.path["name"]
    scope = scope_of("dataset-versions", name=name)
    get_dataset(call.ws, name)  # NotFound naming the dataset, not an empty page
    found = list_versions(call.ws, name)
    chosen, last = page_after(found, lambda v: [v.version], call.position(scope), q.limit)
    return VersionPage(
        items=[VersionSummary.of(v) for v in chosen], next_cursor=call.next_cursor(scope, last)
    )


def show(call: Call) -> VersionView:
    return VersionView.of(get_version(call.ws, _ref(call.path["name"], call.path["version"])))


def dataset(call: Call) -> DatasetView:
    name = call.path["name"]
    found = get_dataset(call.ws, name)
    latest = get_version(call.ws, f"{name}@latest") if found.versions else None
    return DatasetView.of(found, latest)


def profile(call: Call) -> ProfileView:
    version = get_version(call.ws, _ref(call.path["name"], call.path["version"]))
    return ProfileView(ref=version.ref, profile=version.profile)


def diff(call: Call) -> DiffView:
    q: DiffQuery = call.query
    name = call.path["name"]
    return DiffView.of(diff_versions(call.ws, _ref(name, q.before), _ref(name, q.after)))


_VERSION: dict[str, Any] = {"errors": (404,), "tag": "datasets"}
OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/datasets", list_, READ, "Datasets, by name, with their latest version.",
        result=DatasetPage, query=ListQuery, tag="datasets",
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{name}}", dataset, READ, "One dataset and its latest version.",
        result=DatasetView, **_VERSION,
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{name}}/versions", versions, READ,
        "A dataset's versions, oldest first.",
        result=VersionPage, query=ListQuery, **_VERSION,
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{name}}/versions/{{version}}", show, READ,
        "One version (N or latest): schema, validation report, lineage.",
        result=VersionView, **_VERSION,
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{name}}/versions/{{version}}/profile", profile, READ,
        "Per-column statistics, quantiles, histograms and top categories of a version.",
        result=ProfileView, **_VERSION,
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{name}}/diff", diff, READ,
        "Schema changes, row change and the largest distribution shifts between two versions.",
        result=DiffView, query=DiffQuery, **_VERSION,
    ),
]  # fmt: skip
