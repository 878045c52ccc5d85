"""Datasets on the wire: the list, one dataset's versions, a version, its profile, a diff, and
the queries of an upload (ingest, validate).

A version's `lineage.source` is shown without anything about the server: a file (an upload or a
path on the server) by its name alone, a URL without its user name and password.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Literal

from pydantic import Field, Json

from shipyard.api.schemas.common import PageResult, WireRequest, WireResult
from shipyard.core.records import (
    CleaningStep,
    Dataset,
    DatasetSchema,
    DatasetVersion,
    Lineage,
    Profile,
    ValidationReport,
)

if TYPE_CHECKING:
    from shipyard.data.diff import DatasetDiff


_USERINFO = re.compile(r"://[^/@]*@")


def public_source(source: str) -> str:
    """A lineage source as the API shows it: a URL without credentials, a file by its name.

    >>> public_source("/srv/uploads/ingest-1/loans.csv"), public_source("postgresql://u:p@db/x")
    ('loans.csv', 'postgresql://db/x')
    """
    if "://" in source:
        return _USERINFO.sub("://", source)
    if "/" in source or "\\" in source:
        return PureWindowsPath(source).name if "\\" in source else PurePosixPath(source).name
    return source  # a label Shipyard wrote, such as a retrain's


class VersionSummary(WireResult):
    ref: str = Field(description="NAME@N")
    id: str
    version: int
    rows: int
    columns: int
    content_hash: str
    errors: int = Field(description="Blocking contract violations found at ingest.")
    warnings: int
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, v: DatasetVersion) -> VersionSummary:
        errors = len(v.validation.errors)
        return cls(
            ref=v.ref,
            id=v.id,
            version=v.version,
            rows=v.rows,
            columns=v.columns,
            content_hash=v.content_hash,
            errors=errors,
            warnings=len(v.validation.violations) - errors,
            created_at=v.created_at,
            created_by=v.created_by,
        )


class DatasetView(WireResult):
    name: str
    target: str | None
    id_column: str | None
    time_column: str | None
    sensitive: list[str]
    versions: int
    created_at: datetime
    created_by: str
    latest: VersionSummary | None

    @classmethod
    def of(cls, d: Dataset, latest: DatasetVersion | None) -> DatasetView:
        return cls(
            name=d.name,
            target=d.target,
            id_column=d.id_column,
            time_column=d.time_column,
            sensitive=list(d.sensitive),
            versions=d.versions,
            created_at=d.created_at,
            created_by=d.created_by,
            latest=VersionSummary.of(latest) if latest is not None else None,
        )


class DatasetPage(PageResult):
    items: list[DatasetView]


class VersionPage(PageResult):
    items: list[VersionSummary]


class VersionView(WireResult):
    ref: str
    id: str
    dataset: str
    version: int
    rows: int
    columns: int
    content_hash: str
    schema_: DatasetSchema = Field(alias="schema", description="The contract of the version.")
    validation: ValidationReport
    lineage: Lineage
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, v: DatasetVersion) -> VersionView:
        return cls(
            ref=v.ref,
            id=v.id,
            dataset=v.dataset,
            version=v.version,
            rows=v.rows,
            columns=v.columns,
            content_hash=v.content_hash,
            schema=v.schema_,
            validation=v.validation,
            lineage=v.lineage.model_copy(update={"source": public_source(v.lineage.source)}),
            created_at=v.created_at,
            created_by=v.created_by,
        )


class ProfileView(WireResult):
    ref: str
    profile: Profile


class DiffQuery(WireRequest):
    before: str = Field(
        min_length=1,
        max_length=300,
        description="The older version: N, 'latest', or another dataset's NAME@N.",
    )
    after: str = Field(default="latest", min_length=1, max_length=300)


class SchemaChangeView(WireResult):
    column: str
    change: str = Field(description="added, removed, dtype or role.")
    before: str | None
    after: str | None


class ShiftView(WireResult):
    column: str
    dtype: str
    psi: float | None = Field(description="Population stability index (null if not finite).")
    bins: int = Field(description="The bins the PSI was computed over.")
    noise: float | None = Field(
        description="The PSI expected by chance alone at these sample sizes."
    )
    large: bool = Field(description="PSI above 0.2 on samples big enough to tell.")
    js: float | None = Field(description="Jensen–Shannon distance.")
    mean_before: float | None
    mean_after: float | None
    missing_before: float | None
    missing_after: float | None
    new_categories: list[str]


class DiffView(WireResult):
    before: str
    after: str
    rows_before: int
    rows_after: int
    same_content: bool
    schema_changes: list[SchemaChangeView]
    shifts: list[ShiftView] = Field(description="Largest PSI first.")
    warnings: list[str] = Field(
        description="Why some shifts cannot be told from chance (versions too small)."
    )

    @classmethod
    def of(cls, diff: DatasetDiff) -> DiffView:
        return cls(
            before=diff.before,
            after=diff.after,
            rows_before=diff.rows_before,
            rows_after=diff.rows_after,
            same_content=diff.same_content,
            schema_changes=[SchemaChangeView(**c.model_dump()) for c in diff.schema_changes],
            shifts=[ShiftView(**s.model_dump()) for s in diff.shifts],
            warnings=diff.warnings,
        )


# -- uploads ------------------------------------------------------------------------------------

Format = Literal["csv", "parquet", "jsonl"]


class UploadQuery(WireRequest):
    """How to read an uploaded file (the body is the file's bytes)."""

    format: Format | None = Field(
        default=None,
        description="csv, parquet or jsonl. Default: from the Content-Type (text/csv, "
        "application/vnd.apache.parquet, application/x-ndjson), else the filename's suffix.",
    )
    filename: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The file's name: the version's lineage source, and its suffix tells the "
        "format when nothing else does (.tsv: tab-separated).",
    )


class IngestQuery(UploadQuery):
    """`shipyard data ingest FILE --name NAME ...` as query parameters."""

    target: str | None = Field(default=None, max_length=300, description="The label column.")
    id: str | None = Field(
        default=None, max_length=300, description="The row-identity column (must be unique)."
    )
    time: str | None = Field(default=None, max_length=300, description="The time column.")
    sensitive: list[str] = Field(
        default_factory=list, description="A sensitive column; repeat the parameter for more."
    )
    clean: Json[list[CleaningStep]] = Field(
        default_factory=list,
        description="Cleaning steps as a JSON array, as in shipyard.yaml's data.clean, e.g. "
        '[{"op": "trim"}, {"op": "fill", "columns": ["income"], "params": {"strategy": '
        '"median"}}].',
    )
    allow: bool = Field(
        default=False,
        description="Store the version even if blocking rules fail (the violations are recorded).",
    )


class ValidateQuery(UploadQuery):
    against: str = Field(
        min_length=1,
        max_length=300,
        description="The dataset version whose contract applies: NAME (its latest) or NAME@N.",
    )


class IngestView(WireResult):
    created: bool = Field(description="False: the same data is already this version.")
    version: VersionView = Field(description="Its `validation` is the validation report.")


class ValidationView(WireResult):
    against: str = Field(description="The version whose contract was applied, NAME@N.")
    passed: bool
    report: ValidationReport
