"""What changed between two versions of a dataset: schema, rows, and the largest shifts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from shipyard.core.records import ColumnProfile, DatasetVersion
from shipyard.data.profile import bin_counts
from shipyard.data.stats import jensen_shannon, psi
from shipyard.data.types import as_float
from shipyard.data.versions import get_version
from shipyard.store.workspace import Workspace


class SchemaChange(BaseModel):
    column: str
    change: str  # added | removed | dtype | role
    before: str | None = None
    after: str | None = None


class Shift(BaseModel):
    column: str
    dtype: str
    psi: float
    js: float | None = None
    mean_before: float | None = None
    mean_after: float | None = None
    missing_before: float
    missing_after: float
    new_categories: list[str] = Field(default_factory=list)


class DatasetDiff(BaseModel):
    before: str
    after: str
    rows_before: int
    rows_after: int
    same_content: bool
    schema_changes: list[SchemaChange]
    shifts: list[Shift]

    @property
    def rows_change(self) -> int:
        return self.rows_after - self.rows_before


def diff_versions(
    ws: Workspace, before: str | DatasetVersion, after: str | DatasetVersion
) -> DatasetDiff:
    """Compare two versions; shifts are sorted largest first (PSI over the older one's bins)."""
    a = before if isinstance(before, DatasetVersion) else get_version(ws, before)
    b = after if isinstance(after, DatasetVersion) else get_version(ws, after)
    changes: list[SchemaChange] = []
    a_cols = {c.name: c for c in a.schema_.columns}
    b_cols = {c.name: c for c in b.schema_.columns}
    for name in a_cols.keys() - b_cols.keys():
        changes.append(SchemaChange(column=name, change="removed", before=a_cols[name].dtype))
    for name in b_cols.keys() - a_cols.keys():
        changes.append(SchemaChange(column=name, change="added", after=b_cols[name].dtype))
    for name in a_cols.keys() & b_cols.keys():
        if a_cols[name].dtype != b_cols[name].dtype:
            changes.append(
                SchemaChange(
                    column=name, change="dtype", before=a_cols[name].dtype, after=b_cols[name].dtype
                )
            )
        if a_cols[name].role != b_cols[name].role:
            changes.append(
                SchemaChange(
                    column=name, change="role", before=a_cols[name].role, after=b_cols[name].role
                )
            )
    changes.sort(key=lambda c: (c.change, c.column))
    comparable = [
        c
        for c in a.profile.columns
        if (other := b.profile.column(c.name)) is not None
        and other.dtype == c.dtype
        and a_cols[c.name].role not in ("id", "time")
    ]
    with ws.artifacts.open_verified(b.content_hash) as fh:
        b_data = pq.read_table(fh, columns=[c.name for c in comparable])
    shifts = [
        _shift(col_a, b.profile.column(col_a.name), b_data.column(col_a.name))  # type: ignore[arg-type]
        for col_a in comparable
    ]
    shifts.sort(key=lambda s: s.psi, reverse=True)
    return DatasetDiff(
        before=a.ref,
        after=b.ref,
        rows_before=a.rows,
        rows_after=b.rows,
        same_content=a.content_hash == b.content_hash,
        schema_changes=changes,
        shifts=shifts,
    )


def _shift(col_a: ColumnProfile, col_b: ColumnProfile, values: pa.ChunkedArray) -> Shift:
    common: dict[str, Any] = {
        "column": col_a.name,
        "dtype": col_a.dtype,
        "missing_before": col_a.missing_rate,
        "missing_after": col_b.missing_rate,
    }
    if col_a.histogram is not None:
        edges = np.asarray(col_a.histogram.edges)
        floats = as_float(values.drop_null(), col_a.dtype).to_numpy()
        binned = bin_counts(floats[np.isfinite(floats)], edges)
        return Shift(
            psi=psi(col_a.histogram.counts, binned),
            mean_before=col_a.mean,
            mean_after=col_b.mean,
            **common,
        )
    # Categories: the reference's top values plus one bucket for everything else.
    counts = pc.value_counts(pc.cast(values, pa.string()).drop_null())
    current = dict(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )
    keys = list(col_a.top)
    ref = [*(col_a.top[k] for k in keys), max(col_a.count - sum(col_a.top.values()), 0)]
    cur = [
        *(current.get(k, 0) for k in keys),
        max(col_b.count - sum(current.get(k, 0) for k in keys), 0),
    ]
    complete = col_a.distinct is not None and col_a.distinct <= len(col_a.top)
    new = sorted(k for k in current if k not in col_a.top)[:10] if complete else []
    return Shift(psi=psi(ref, cur), js=jensen_shannon(ref, cur), new_categories=new, **common)
