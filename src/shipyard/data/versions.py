"""Dataset versions in the metadata store: look-ups by reference, listing, reading the data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.core.errors import NotFound
from shipyard.core.records import (
    Dataset,
    DatasetSchema,
    DatasetVersion,
    Lineage,
    Profile,
    Ref,
    ValidationReport,
)
from shipyard.store.tables import DatasetRow, DatasetVersionRow
from shipyard.store.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd


def to_record(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        dataset=row.dataset,
        version=row.version,
        content_hash=row.content_hash,
        rows=row.rows,
        columns=row.columns,
        schema=DatasetSchema.model_validate(row.schema),
        profile=Profile.model_validate(row.profile),
        validation=ValidationReport.model_validate(row.validation),
        lineage=Lineage.model_validate(row.lineage),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _dataset(row: DatasetRow, versions: int) -> Dataset:
    return Dataset(
        name=row.name,
        target=row.target,
        id_column=row.id_column,
        time_column=row.time_column,
        sensitive=list(row.sensitive),
        created_at=row.created_at,
        created_by=row.created_by,
        versions=versions,
    )


def list_datasets(ws: Workspace) -> list[tuple[Dataset, DatasetVersion | None]]:
    """Every dataset with its latest version."""
    with ws.db.read() as s:
        out = []
        for row in s.scalars(select(DatasetRow).order_by(DatasetRow.name)):
            latest = _latest_row(s, row.name)
            out.append(
                (
                    _dataset(row, latest.version if latest else 0),
                    to_record(latest) if latest else None,
                )
            )
        return out


def get_dataset(ws: Workspace, name: str) -> Dataset:
    with ws.db.read() as s:
        row = s.get(DatasetRow, name)
        if row is None:
            raise _unknown_dataset(s, name)
        latest = _latest_row(s, name)
        return _dataset(row, latest.version if latest else 0)


def list_versions(ws: Workspace, name: str) -> list[DatasetVersion]:
    with ws.db.read() as s:
        if s.get(DatasetRow, name) is None:
            raise _unknown_dataset(s, name)
        rows = s.scalars(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset == name)
            .order_by(DatasetVersionRow.version)
        )
        return [to_record(r) for r in rows]


def get_version(ws: Workspace, ref: str | Ref) -> DatasetVersion:
    """Resolve `name`, `name@N` or `name@latest` to a stored version."""
    parsed = ref if isinstance(ref, Ref) else Ref.parse(ref, what="dataset reference")
    with ws.db.read() as s:
        return to_record(_resolve(s, parsed))


def get_version_by_id(ws: Workspace, version_id: str) -> DatasetVersion:
    """The dataset version with this id (as models and runs record it)."""
    with ws.db.read() as s:
        row = s.get(DatasetVersionRow, version_id)
        if row is None:
            raise NotFound(
                f"dataset version {version_id!r} does not exist (it may have been erased); "
                "`shipyard data ls` lists the datasets."
            )
        return to_record(row)


def _resolve(s: Session, ref: Ref) -> DatasetVersionRow:
    if s.get(DatasetRow, ref.name) is None:
        raise _unknown_dataset(s, ref.name)
    if ref.alias is not None:
        raise NotFound(
            f"dataset versions have no aliases; use {ref.name}@N or {ref.name}@latest, "
            f"not {ref.name}@{ref.alias}."
        )
    if ref.version is None:
        row = _latest_row(s, ref.name)
    else:
        row = s.scalars(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset == ref.name, DatasetVersionRow.version == ref.version
            )
        ).first()
    if row is None:
        latest = _latest_row(s, ref.name)
        have = f"versions 1 to {latest.version}" if latest else "no versions yet"
        raise NotFound(
            f"dataset {ref} does not exist: {ref.name} has {have}. "
            f"`shipyard data show {ref.name}` lists them."
        )
    return row


def _latest_row(s: Session, name: str) -> DatasetVersionRow | None:
    return s.scalars(
        select(DatasetVersionRow)
        .where(DatasetVersionRow.dataset == name)
        .order_by(DatasetVersionRow.version.desc())
        .limit(1)
    ).first()


def next_version(s: Session, name: str) -> int:
    current = s.scalar(
        select(func.max(DatasetVersionRow.version)).where(DatasetVersionRow.dataset == name)
    )
    return int(current or 0) + 1


def _unknown_dataset(s: Session, name: str) -> NotFound:
    names = list(s.scalars(select(DatasetRow.name).order_by(DatasetRow.name).limit(20)))
    known = f"known datasets: {', '.join(names)}" if names else "no datasets are stored yet"
    return NotFound(
        f"dataset {name!r} does not exist ({known}). Ingest it with `shipyard data ingest FILE "
        f"--name {name}`."
    )


def read_table(
    ws: Workspace, ref: str | Ref | DatasetVersion, columns: list[str] | None = None
) -> pa.Table:
    """The version's data as an Arrow table (the digest is verified first)."""
    version = ref if isinstance(ref, DatasetVersion) else get_version(ws, ref)
    with ws.artifacts.open_verified(version.content_hash) as fh:
        return pq.read_table(fh, columns=columns)


def read_pandas(
    ws: Workspace, ref: str | Ref | DatasetVersion, columns: list[str] | None = None
) -> pd.DataFrame:
    return read_table(ws, ref, columns).to_pandas()
