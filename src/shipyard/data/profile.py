"""Per-column profiles: counts, missing, moments, quantiles, histograms, category frequencies.

A `ProfileBuilder` is fed record batches as they stream past (the ingest's own pass, so the
data is decoded once): counts, moments (merged with Chan et al.'s parallel formula), min/max,
category counts, and a uniform sample of each numeric column (bottom-k of one random key per
row; the whole column up to `SAMPLE` values). Quantiles and equal-frequency histogram bins
come from the sample: exact up to `SAMPLE` values, estimated beyond (the counts are scaled to
the column's size; with 50,000 values a bin's share is within about ±0.4 points). Memory is
bounded by the sample size and the category cap. The profile is stored with each dataset
version and later serves as the drift reference.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.core.records import ColumnProfile, DType, Histogram, Profile
from shipyard.data.types import as_float, dtype_of, is_numeric

SAMPLE = 50_000
BINS = 20
TOP = 50
DISTINCT_CAP = 10_000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SEED = 20240917


def _numeric_like(dtype: str) -> bool:
    return is_numeric(dtype) or dtype in ("timestamp", "date")


@dataclass
class _Numeric:
    dtype: DType
    count: int = 0
    missing: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    # The sample: the first `filled` slots of two buffers, written in place as rows enter
    # (concatenating a new array per batch copied the whole sample for every batch and column:
    # half of a 1M-row ingest's profiling time). They grow to 2 * SAMPLE, then are trimmed
    # back to the SAMPLE smallest keys each time they fill.
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    filled: int = 0
    cut: float = 1.0  # keys at or above this can no longer enter the sample

    def update(self, column: pa.Array, row_keys: np.ndarray) -> None:
        self.missing += column.null_count
        values = as_float(column, self.dtype).to_numpy(zero_copy_only=False)
        keep = np.isfinite(values)  # nulls come through as NaN
        if not keep.all():
            values = values[keep]
        n = len(values)
        if not n:
            return
        b_mean = float(values.mean())
        b_m2 = float(np.square(values - b_mean).sum())
        delta = b_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))
        keys = row_keys[keep] if n < len(row_keys) else row_keys
        if self.cut < 1.0:  # only rows whose key beats the sample's largest can enter
            enter = keys < self.cut
            keys, values = keys[enter], values[enter]
        self._append(keys, values)

    def _append(self, keys: np.ndarray, values: np.ndarray) -> None:
        n = len(keys)
        if self.filled + n > len(self.keys) and self.filled > SAMPLE:
            self._trim()  # in amortised steps, not on every batch
        need = self.filled + n
        if need > len(self.keys):
            size = max(need, min(2 * len(self.keys), 2 * SAMPLE))
            self.keys = _grown(self.keys, self.filled, size)
            self.values = _grown(self.values, self.filled, size)
        self.keys[self.filled : need] = keys
        self.values[self.filled : need] = values
        self.filled = need

    def _trim(self) -> None:
        if self.filled > SAMPLE:
            keep = np.argpartition(self.keys[: self.filled], SAMPLE)[:SAMPLE]
            kept_keys, kept_values = self.keys[keep], self.values[keep]
            self.keys[:SAMPLE], self.values[:SAMPLE] = kept_keys, kept_values
            self.filled = SAMPLE
            self.cut = float(kept_keys.max())

    @property
    def sample(self) -> np.ndarray:
        return self.values[: self.filled]

    def edges(self) -> np.ndarray:
        sample = self.sample
        inner = np.unique(np.quantile(sample, np.linspace(0, 1, BINS + 1)[1:-1]))
        edges = np.unique(np.concatenate([[self.lo], inner, [self.hi]]))
        return edges if len(edges) > 1 else np.array([self.lo, self.lo])

    def finish(self, name: str) -> ColumnProfile:
        self._trim()
        if not self.count:
            return ColumnProfile(name=name, dtype=self.dtype, count=0, missing=self.missing)
        sample = np.sort(self.sample)
        edges = self.edges()
        counts = bin_counts(sample, edges).astype(np.float64)
        if len(sample) < self.count:  # a sample: scale to the column's size, keep the total
            counts = _scale(counts, self.count)
        return ColumnProfile(
            name=name,
            dtype=self.dtype,
            count=self.count,
            missing=self.missing,
            distinct=len(np.unique(sample)) if len(sample) == self.count else None,
            min=self.lo,
            max=self.hi,
            mean=self.mean,
            std=math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0,
            quantiles={f"p{round(q * 100):02d}": float(np.quantile(sample, q)) for q in QUANTILES},
            histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
        )


def _grown(buffer: np.ndarray, filled: int, size: int) -> np.ndarray:
    out = np.empty(size)
    out[:filled] = buffer[:filled]
    return out


def _scale(counts: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of `counts` scaled to sum exactly to `total`."""
    exact = counts / counts.sum() * total
    floor = np.floor(exact)
    short = int(total - floor.sum())
    order = np.argsort(floor - exact)[:short]
    floor[order] += 1
    return floor


@dataclass
class _Categorical:
    dtype: DType
    count: int = 0
    missing: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    capped: bool = False

    def update(self, column: pa.Array) -> None:
        self.missing += column.null_count
        self.count += len(column) - column.null_count
        if self.capped:
            return
        vc = pc.value_counts(column.drop_null())
        values = vc.field("values")
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        self.counts.update(
            dict(zip(values.to_pylist(), vc.field("counts").to_pylist(), strict=True))
        )
        if len(self.counts) > DISTINCT_CAP:
            self.capped = True

    def finish(self, name: str) -> ColumnProfile:
        return ColumnProfile(
            name=name,
            dtype=self.dtype,
            count=self.count,
            missing=self.missing,
            distinct=None if self.capped else len(self.counts),
            top=dict(self.counts.most_common(TOP)),
        )


class ProfileBuilder:
    """Feed batches with `update()`, then `finish()`."""

    def __init__(self, schema: pa.Schema) -> None:
        self.rows = 0
        self._rng = np.random.default_rng(SEED)
        self._columns: dict[str, _Numeric | _Categorical] = {}
        for f in schema:
            dtype = dtype_of(f.type)
            self._columns[f.name] = _Numeric(dtype) if _numeric_like(dtype) else _Categorical(dtype)

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        row_keys = self._rng.random(batch.num_rows)
        for name, acc in self._columns.items():
            column = batch.column(batch.schema.get_field_index(name))
            if isinstance(acc, _Numeric):
                acc.update(column, row_keys)
            else:
                acc.update(column)

    def finish(self) -> Profile:
        return Profile(rows=self.rows, columns=[acc.finish(n) for n, acc in self._columns.items()])


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin; values outside [edges[0], edges[-1]] fall in the first or last bin."""
    nbins = max(len(edges) - 1, 1)
    idx = np.searchsorted(edges[1:-1], values, side="right")
    return np.bincount(idx, minlength=nbins)[:nbins]


def profile_parquet(path: str) -> Profile:
    """Profile a Parquet file, one row group at a time."""
    file = pq.ParquetFile(path)
    builder = ProfileBuilder(file.schema_arrow)
    for i in range(file.num_row_groups):
        for batch in file.read_row_group(i).to_batches():
            builder.update(batch)
    return builder.finish()
