"""What changed between two versions of a dataset: schema, rows, and the largest shifts.

A shift is PSI over the older version's bins. Two samples of the same distribution differ by
a PSI of about (bins - 1) * (1/rows_before + 1/rows_after) by chance alone (`psi_noise`), so a
PSI above `LARGE_PSI` says something only when that noise is well below it: a column whose
noise passes `NOISE_LIMIT` is never called a large shift, and the diff carries a warning that
names the small version and the rows a meaningful comparison needs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from shipyard.core.records import ColumnProfile, DatasetVersion
from shipyard.data.profile import bin_counts
from shipyard.data.stats import jensen_shannon, psi, psi_noise
from shipyard.data.types import as_float
from shipyard.data.versions import get_version
from shipyard.store.workspace import Workspace

LARGE_PSI = 0.2  # the usual reading: above it, a shift worth looking at
NOISE_LIMIT = LARGE_PSI / 2  # by chance alone, PSI then passes LARGE_PSI for ~1% of columns


class SchemaChange(BaseModel):
    column: str
    change: str  # added | removed | dtype | role
    before: str | None = None
    after: str | None = None


class Shift(BaseModel):
    column: str
    dtype: str
    psi: float
    bins: int
    noise: float = Field(description="The PSI expected by chance alone at these sample sizes.")
    large: bool = Field(description="PSI above LARGE_PSI on samples big enough to tell.")
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
    warnings: list[str] = Field(default_factory=list)

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
        warnings=_small_sample(a, b, shifts),
    )


def _small_sample(a: DatasetVersion, b: DatasetVersion, shifts: list[Shift]) -> list[str]:
    noisy = [s for s in shifts if s.noise > NOISE_LIMIT]
    if not noisy:
        return []
    worst = max(noisy, key=lambda s: s.noise)
    # the rows each version needs for the noise over these bins to fall to NOISE_LIMIT
    needed = math.ceil(2 * (worst.bins - 1) / NOISE_LIMIT)
    small = [v for v in (a, b) if v.rows < needed] or [min(a, b, key=lambda v: v.rows)]
    who = " and ".join(v.ref for v in small)
    rows = " and ".join(f"{v.rows:,}" for v in small)
    return [
        f"{who} {'has' if len(small) == 1 else 'have'} {rows} rows: too few for PSI over "
        f"{worst.bins} bins. Samples of these sizes from one distribution differ by a PSI of "
        f"about {worst.noise:.2f} by chance alone ({LARGE_PSI} is a large shift), so no shift "
        f"is called large in {len(noisy)} of {len(shifts)} columns. Compare versions of "
        f"{needed:,} rows or more."
    ]


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
        noise = psi_noise(len(col_a.histogram.counts), col_a.count, int(binned.sum()))
        value = psi(col_a.histogram.counts, binned)
        return Shift(
            psi=value,
            bins=len(binned),
            noise=noise,
            large=_large(value, noise),
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
    noise = psi_noise(len(ref), col_a.count, col_b.count)
    value = psi(ref, cur)
    return Shift(
        psi=value,
        bins=len(ref),
        noise=noise,
        large=_large(value, noise),
        js=jensen_shannon(ref, cur),
        new_categories=new,
        **common,
    )


def _large(value: float, noise: float) -> bool:
    return value > LARGE_PSI and noise <= NOISE_LIMIT
