"""Datasets on the wire: the list, one dataset's versions, a version, its profile, a diff."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import Field

from shipyard.api.schemas.common import PageResult, WireRequest, WireResult
from shipyard.core.records import (
    Dataset,
    DatasetSchema,
    DatasetVersion,
    Lineage,
    Profile,
    ValidationReport,
)

if TYPE_CHECKING:
    from shipyard.data.diff import DatasetDiff


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
            lineage=v.lineage,
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
