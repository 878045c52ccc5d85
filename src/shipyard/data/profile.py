"""Per-column profiles: counts, missing, moments, quantiles, histograms, category frequencies.

Computed from a Parquet file one column and one row group at a time, so memory stays bounded.
Quantiles come from a seeded stratified sample (exact up to `SAMPLE` rows); histogram counts
are exact, over equal-frequency bin edges. The profile is stored with each dataset version and
later serves as the drift reference.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.core.records import ColumnProfile, Histogram, Profile
from shipyard.data.types import as_float, dtype_of, is_numeric

SAMPLE = 100_000
BINS = 20
TOP = 50
DISTINCT_CAP = 10_000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SEED = 20240917


def profile_parquet(path: str) -> Profile:
    file = pq.ParquetFile(path)
    rows = file.metadata.num_rows
    columns = [_profile_column(file, name, rows) for name in file.schema_arrow.names]
    return Profile(rows=rows, columns=columns)


def _chunks(file: pq.ParquetFile, name: str):  # type: ignore[no-untyped-def]
    for i in range(file.num_row_groups):
        yield file.read_row_group(i, columns=[name]).column(0)


def _profile_column(file: pq.ParquetFile, name: str, rows: int) -> ColumnProfile:
    dtype = dtype_of(file.schema_arrow.field(name).type)
    if is_numeric(dtype) or dtype in ("timestamp", "date"):
        return _numeric(file, name, dtype, rows)
    return _categorical(file, name, dtype)


def _numeric(file: pq.ParquetFile, name: str, dtype: str, rows: int) -> ColumnProfile:
    rng = np.random.default_rng(SEED)
    count = missing = 0
    total = 0.0
    m2 = 0.0
    mean = 0.0
    lo, hi = math.inf, -math.inf
    samples: list[np.ndarray] = []
    share = min(1.0, SAMPLE / rows) if rows else 1.0
    for chunk in _chunks(file, name):
        missing += chunk.null_count
        values = as_float(chunk.drop_null(), dtype).to_numpy()
        values = values[np.isfinite(values)]
        n = len(values)
        if not n:
            continue
        # Chan et al.'s parallel update of mean and sum of squared deviations.
        b_mean = float(values.mean())
        b_m2 = float(((values - b_mean) ** 2).sum())
        delta = b_mean - mean
        new = count + n
        mean += delta * n / new
        m2 += b_m2 + delta * delta * count * n / new
        count = new
        total += float(values.sum())
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        take = n if share >= 1 else min(n, max(1, round(n * share)))
        samples.append(values if take == n else rng.choice(values, take, replace=False))
    if not count:
        return ColumnProfile(name=name, dtype=dtype, count=0, missing=missing)  # type: ignore[arg-type]
    sample = np.sort(np.concatenate(samples))
    quantiles = {f"p{round(q * 100):02d}": float(np.quantile(sample, q)) for q in QUANTILES}
    edges = _edges(sample, lo, hi)
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for chunk in _chunks(file, name):
        values = as_float(chunk.drop_null(), dtype).to_numpy()
        counts += bin_counts(values[np.isfinite(values)], edges)
    distinct = len(np.unique(sample)) if len(sample) == count else None
    return ColumnProfile(
        name=name,
        dtype=dtype,  # type: ignore[arg-type]
        count=count,
        missing=missing,
        distinct=distinct,
        min=lo,
        max=hi,
        mean=mean,
        std=math.sqrt(m2 / (count - 1)) if count > 1 else 0.0,
        quantiles=quantiles,
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
    )


def _edges(sample: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Equal-frequency bin edges from the sample, spanning [lo, hi]; at least one bin."""
    inner = np.unique(np.quantile(sample, np.linspace(0, 1, BINS + 1)[1:-1]))
    edges = np.unique(np.concatenate([[lo], inner, [hi]]))
    if len(edges) == 1:
        edges = np.array([lo, lo])
    return edges


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin; values outside [edges[0], edges[-1]] fall in the first or last bin."""
    nbins = max(len(edges) - 1, 1)
    idx = np.searchsorted(edges[1:-1], values, side="right")
    return np.bincount(idx, minlength=nbins)[:nbins]


def _categorical(file: pq.ParquetFile, name: str, dtype: str) -> ColumnProfile:
    counts: Counter[str] = Counter()
    missing = count = 0
    capped = False
    for chunk in _chunks(file, name):
        missing += chunk.null_count
        count += len(chunk) - chunk.null_count
        if capped:
            continue
        vc = pc.value_counts(pc.cast(chunk, pa.string()).drop_null())
        for value, n in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            counts[value] += n
        if len(counts) > DISTINCT_CAP:
            capped = True
    return ColumnProfile(
        name=name,
        dtype=dtype,  # type: ignore[arg-type]
        count=count,
        missing=missing,
        distinct=None if capped else len(counts),
        top=dict(counts.most_common(TOP)),
    )
