"""/api/v1/datasets: list, one dataset's versions, a version, its profile, a diff, a version's
Parquet, and checking a file against a contract (viewer); uploading a new version (scientist).

An upload's body is the file's bytes (`Operation(body=STREAM)`: streamed to a staging file,
never whole in memory); the options of `shipyard data ingest` are query parameters:

    curl -X POST -H "Authorization: Bearer $SHIPYARD_TOKEN" -H "Content-Type: text/csv" \\
         --data-binary @loans.csv \\
         "$SHIPYARD_URL/api/v1/datasets/loans/versions?filename=loans.csv&target=default&id=loan_id"

Checking a file (`validate`) is a read: it stores and changes nothing, so viewers may, as they
may read the contract it applies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipyard.api.access import READ, SCIENCE
from shipyard.api.cursor import page_after, scope_of
from shipyard.api.operation import PREFIX, STREAM, Answer, Call, Download, Operation, Upload
from shipyard.api.schemas.common import ListQuery
from shipyard.api.schemas.datasets import (
    DatasetPage,
    DatasetView,
    DiffQuery,
    DiffView,
    IngestQuery,
    IngestView,
    ProfileView,
    UploadQuery,
    ValidateQuery,
    ValidationView,
    VersionPage,
    VersionSummary,
    VersionView,
)
from shipyard.core.errors import Integrity, Invalid, ShipyardError
from shipyard.core.records import check_name
from shipyard.data import (
    Source,
    blocking_failure,
    diff_versions,
    get_dataset,
    get_version,
    ingest,
    list_datasets,
    list_versions,
    open_source,
    validate_file,
)
from shipyard.store.artifacts import CHUNK
from shipyard.store.workspace import Workspace

# Content-Type → format; anything else (application/octet-stream, none) defers to the name.
MEDIA_TYPES = {
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/x-jsonlines": "jsonl",
}
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
             ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip
PARQUET = "application/vnd.apache.parquet"


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


# -- uploads --------------------------------------------------------------------------------------


def _filename(q: UploadQuery, fmt: str) -> str:
    """The upload's name as lineage and messages show it: a base name, never a path."""
    if q.filename is None:
        return f"upload.{fmt}"
    name = re.split(r"[/\\]", q.filename)[-1]
    return name or f"upload.{fmt}"


def _format(q: UploadQuery, upload: Upload) -> str:
    if q.format is not None:
        return q.format
    if upload.media_type in MEDIA_TYPES:
        return MEDIA_TYPES[upload.media_type]
    suffix = Path(q.filename or "").suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise Invalid(
        f"cannot tell the upload's format: format is not given, the Content-Type is "
        f"{upload.media_type or 'missing'!r} and the filename is {q.filename!r}. Pass "
        "format=csv|parquet|jsonl, a Content-Type such as text/csv, or a filename such as "
        "loans.csv.",
        details={"in": "query", "field": "format"},
    )


def _source(q: UploadQuery, upload: Upload) -> tuple[Source, str]:
    """The staged upload as a data source, and the name it goes by."""
    fmt = _format(q, upload)
    name = _filename(q, fmt)
    src = open_source(upload.path, format=fmt)
    if name.lower().endswith(".tsv") or upload.media_type == "text/tab-separated-values":
        src.delimiter = "\t"
    return src, name


def _named(exc: ShipyardError, upload: Upload, name: str) -> ShipyardError:
    """`exc` with the staging file's path replaced by the upload's name."""
    if str(upload.path) not in exc.message:
        return exc
    renamed = type(exc)(exc.message.replace(str(upload.path), name), details=exc.details)
    renamed.__cause__ = exc.__cause__
    return renamed


def check_upload(call: Call) -> None:
    """What can be refused before the file arrives: the dataset name and the format."""
    check_name(call.path["name"], what="dataset name")
    _format(call.query, call.body)


def upload(call: Call) -> IngestView | Answer:
    q: IngestQuery = call.query
    up: Upload = call.body
    name = call.path["name"]
    src, filename = _source(q, up)
    try:
        result = ingest(
            call.ws,
            src,
            name=name,
            target=q.target,
            id=q.id,
            time=q.time,
            sensitive=q.sensitive,
            steps=q.clean,
            allow=q.allow,
            label=filename,
        )
    except ShipyardError as exc:
        raise _named(exc, up, filename) from None
    view = IngestView(created=result.created, version=VersionView.of(result.version))
    return view if result.created else Answer(view, 200)


def check_validate(call: Call) -> None:
    """Before the file arrives: its format, and the version whose contract applies."""
    q: ValidateQuery = call.query
    _format(q, call.body)
    get_version(call.ws, q.against)


def validate(call: Call) -> ValidationView:
    q: ValidateQuery = call.query
    up: Upload = call.body
    src, filename = _source(q, up)
    try:
        against = get_version(call.ws, q.against)
        report = validate_file(call.ws, src, against=against.ref)
    except ShipyardError as exc:
        raise _named(exc, up, filename) from None
    failure = blocking_failure(report, filename, against.ref)  # as `shipyard data validate`
    if failure is not None:
        raise failure
    return ValidationView(against=against.ref, passed=report.passed, report=report)


# -- downloads ------------------------------------------------------------------------------------


def stream_verified(ws: Workspace, digest: str) -> Iterator[bytes]:
    """A blob's bytes, after its digest was checked; re-hashed as it goes, so bytes changed
    since the check end the stream with an error (the client sees a cut answer, never a
    complete wrong one)."""
    ws.artifacts.verify(digest)  # NotFound / Integrity before the answer starts
    path = ws.artifacts.path_of(digest)

    def chunks() -> Iterator[bytes]:
        h = hashlib.sha256()
        with ws.artifacts.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest:
            raise Integrity(f"artifact {digest[:12]}… changed while it was being sent.")

    return chunks()


def download(call: Call) -> Download:
    version = get_version(call.ws, call.path["ref"])
    return Download(
        stream_verified(call.ws, version.content_hash),
        PARQUET,
        f"{version.dataset}-{version.version}.parquet",
        version.content_hash,
        call.ws.artifacts.fs.size(call.ws.artifacts.path_of(version.content_hash)),
    )


_VERSION: dict[str, Any] = {"errors": (404,), "tag": "datasets"}
OPERATIONS = [
    # Before /datasets/{name}: the literal path is matched first.
    Operation(
        "POST", f"{PREFIX}/datasets/validate", validate, READ,
        "Check an uploaded file against a dataset version's contract (`shipyard data "
        "validate`); a blocking violation answers 422 with the report in details.report.",
        result=ValidationView, query=ValidateQuery, body=STREAM, check=check_validate,
        changes=False, **_VERSION,
    ),
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
    Operation(
        "POST", f"{PREFIX}/datasets/{{name}}/versions", upload, SCIENCE,
        "Upload a file (CSV, Parquet or JSON lines; the body is its bytes) and ingest it as "
        "the next version (`shipyard data ingest`): 201 with the version and its validation "
        "report, 200 with the existing version when the data is the same, 422 with the report "
        "in details.report when it breaks the contract (nothing stored).",
        result=IngestView, query=IngestQuery, body=STREAM, check=check_upload, status=201,
        also=(200,),
        errors=(404, 409), tag="datasets",
    ),
    Operation(
        "GET", f"{PREFIX}/datasets/{{ref}}/download", download, READ,
        "A version's data as Parquet (ref: NAME, NAME@N or NAME@latest), its digest checked; "
        "the ETag is its sha256.",
        result=None, produces=PARQUET, **_VERSION,
    ),
]  # fmt: skip
