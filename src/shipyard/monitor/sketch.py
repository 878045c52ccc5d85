"""Fixed-size, mergeable per-window state for drift: one small sketch per feature.

A numeric column counts its values on the reference's histogram edges (plus an underflow and an
overflow bin) and keeps moments (count, mean, M2, min, max over finite values); a categorical
column counts the reference's categories, a bounded set of new ones by name, and the rest. Both
count missing values. Memory does not grow with traffic, updates are vectorised over whole
column arrays, two sketches merge exactly (Chan et al. for the moments), and `to_dict()` is
plain JSON, so the monitoring loop can store a window and add to it later.

    >>> reference = WindowSketch.reference_from(training_frame)
    >>> window = reference.empty_like()
    >>> window.update({"income": np.array([52_000.0, np.nan]), "grade": ["A", None]})
    >>> window.rows
    2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.errors import Invalid
from shipyard.core.records import Profile
from shipyard.data.profile import BINS, SAMPLE, TOP
from shipyard.data.types import as_float, dtype_of

NEW_CAP = 64  # new categories kept by name per column; beyond that they are only counted
IGNORED_CAP = 100  # extra column names remembered for the report
FORMAT = 1  # to_dict() layout version
SEARCH_MAX = 4096  # longer arrays are binned by one comparison per edge
BLOCK = 1 << 17  # values per block when a long column is counted

Column: TypeAlias = np.ndarray | pa.Array | pa.ChunkedArray | Sequence[Any]


def is_numeric_dtype(dtype: str) -> bool:
    """Shipyard dtypes compared as numbers (time types as epoch seconds, as in the profile)."""
    return dtype in ("int64", "float64", "timestamp", "date")


# -- numeric ------------------------------------------------------------------------------------


@dataclass
class NumericSketch:
    """Counts on fixed edges: bin 0 is below `edges[0]`, bin i is `[edges[i-1], edges[i])`,
    the last inner bin is closed on the right, and the final bin is above `edges[-1]`."""

    edges: np.ndarray
    counts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    missing: int = 0
    count: int = 0  # finite values, for the moments; counts.sum() also holds the infinities
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    kind = "numeric"

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        if len(self.counts) != len(self.edges) + 1:
            self.counts = np.zeros(len(self.edges) + 1, np.int64)
        # Nudge the last edge up by one ulp so the maximum lands in the last inner bin.
        self._search = self.edges.copy()
        if len(self._search):
            self._search[-1] = np.nextafter(self._search[-1], math.inf)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def update(self, values: np.ndarray) -> None:
        # Long columns go in cache-sized blocks through two reused scratch buffers: fresh
        # megabyte temporaries cost more in page faults than the arithmetic on them.
        size = min(len(values), BLOCK)
        scratch, flags = np.empty(size), np.empty(size, dtype=bool)
        for start in range(0, len(values), BLOCK):
            self._update(values[start : start + BLOCK], scratch, flags)

    def _update(self, values: np.ndarray, scratch: np.ndarray, flags: np.ndarray) -> None:
        n = len(values)
        n_finite = int(np.count_nonzero(np.isfinite(values, out=flags[:n])))
        if n_finite == n:  # the common case: no copies
            present = finite_values = values
        else:
            nan = np.isnan(values)
            self.missing += int(np.count_nonzero(nan))
            present, finite_values = values[~nan], values[np.isfinite(values)]
        if len(present):
            self.counts += _bin_counts(present, self._search, flags)
        if n_finite:
            mean = float(finite_values.mean())
            centred = np.subtract(finite_values, mean, out=scratch[:n_finite])
            # Not np.dot: a BLAS call may start a thread team, which costs far more than this.
            m2 = float(np.square(centred, out=centred).sum())
            self._add_moments(n_finite, mean, m2)
            self.lo = min(self.lo, float(finite_values.min()))
            self.hi = max(self.hi, float(finite_values.max()))

    def _add_moments(self, n: int, mean: float, m2: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def merge(self, other: NumericSketch) -> NumericSketch:
        out = self.empty_like()
        for part in (self, other):
            out.counts += part.counts
            out.missing += part.missing
            if part.count:
                out._add_moments(part.count, part.mean, part.m2)
            out.lo, out.hi = min(out.lo, part.lo), max(out.hi, part.hi)
        return out

    def empty_like(self) -> NumericSketch:
        return NumericSketch(self.edges)

    def same_bins(self, other: NumericSketch | CategoricalSketch) -> bool:
        return isinstance(other, NumericSketch) and np.array_equal(self.edges, other.edges)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": self.lo if self.count else None,
            "max": self.hi if self.count else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericSketch:
        return cls(
            edges=np.asarray(d["edges"], dtype=np.float64),
            counts=np.asarray(d["counts"], dtype=np.int64),
            missing=int(d["missing"]),
            count=int(d["count"]),
            mean=float(d["mean"]),
            m2=float(d["m2"]),
            lo=math.inf if d["min"] is None else float(d["min"]),
            hi=-math.inf if d["max"] is None else float(d["max"]),
        )


def _bin_counts(values: np.ndarray, search: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Counts per bin of `values` (no NaN) on `search` edges, as searchsorted(side="right");
    `flags` is a scratch boolean buffer at least as long as `values`."""
    if len(values) <= SEARCH_MAX:
        return np.bincount(np.searchsorted(search, values, side="right"), minlength=len(search) + 1)
    # On long arrays one vectorised comparison per edge beats a binary search per value by
    # about 20× (no branch mispredictions on unsorted data).
    out = flags[: len(values)]
    below = [np.count_nonzero(np.less(values, edge, out=out)) for edge in search]
    return np.diff(np.asarray([0, *below, len(values)], dtype=np.int64))


def reference_edges(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Equal-frequency edges as the profile makes them: quantiles of up to `SAMPLE` finite
    values between the exact minimum and maximum (repeated for a constant column)."""
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (math.nan, math.nan)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN or infinities: the slow path
        finite = values[np.isfinite(values)]
        if not len(finite):
            return np.empty(0)
        values, lo, hi = finite, float(finite.min()), float(finite.max())
    sample = values
    if len(values) > SAMPLE:
        sample = values[np.random.default_rng(seed).integers(0, len(values), SAMPLE)]
    sample = np.sort(sample[np.isfinite(sample)])
    # numpy's default (linear) quantiles, on the sorted sample: cheaper than np.quantile.
    position = np.linspace(0, 1, BINS + 1)[1:-1] * (len(sample) - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, len(sample) - 1)
    inner = sample[below] + (sample[above] - sample[below]) * (position - below)
    edges = np.unique(np.concatenate([[lo], inner, [hi]]))
    return edges if len(edges) > 1 else np.repeat(edges, 2)


# -- categorical --------------------------------------------------------------------------------


@dataclass
class CategoricalSketch:
    """Counts of the reference's categories; `other` holds the reference's values beyond its
    listed categories; values the reference never listed go to `new` (by name, at most
    `NEW_CAP`) or `new_untracked`. `complete` says the list is every value the reference had,
    so anything else is truly new."""

    categories: list[str]
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    other: int = 0
    new: dict[str, int] = field(default_factory=dict)
    new_untracked: int = 0
    missing: int = 0
    complete: bool = True

    kind = "categorical"

    def __post_init__(self) -> None:
        self.categories = list(self.categories)
        if len(self.counts) != len(self.categories):
            self.counts = np.zeros(len(self.categories), np.int64)
        self._value_set = pa.array(self.categories, type=pa.string())

    @property
    def present(self) -> int:
        return int(self.counts.sum()) + self.other + sum(self.new.values()) + self.new_untracked

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        self.missing += values.null_count
        # Count distinct values once, then place the few distinct ones: no per-row Python.
        vc = pc.value_counts(values)
        distinct, counts = _text(vc.field("values")), vc.field("counts").to_numpy()
        index = pc.index_in(distinct, value_set=self._value_set).fill_null(-1).to_numpy()
        known = index >= 0
        self.counts[index[known]] += counts[known]
        unseen = ~known & distinct.is_valid().to_numpy(zero_copy_only=False)
        if unseen.any():
            names = distinct.filter(pa.array(unseen)).to_pylist()
            self._add_new(zip(names, counts[unseen].tolist(), strict=True))

    def _add_new(self, items: Iterable[tuple[str, int]]) -> None:
        for name, n in items:
            if name in self.new or len(self.new) < NEW_CAP:
                self.new[name] = self.new.get(name, 0) + n
            else:
                self.new_untracked += n

    def merge(self, other: CategoricalSketch) -> CategoricalSketch:
        out = self.empty_like()
        for part in (self, other):
            out.counts += part.counts
            out.other += part.other
            out.missing += part.missing
            out.new_untracked += part.new_untracked
        # Keep the most frequent names when the union is over the cap, count the rest.
        union: dict[str, int] = {}
        for part in (self, other):
            for name, n in part.new.items():
                union[name] = union.get(name, 0) + n
        ranked = sorted(union.items(), key=lambda kv: (-kv[1], kv[0]))
        out.new = dict(ranked[:NEW_CAP])
        out.new_untracked += sum(n for _, n in ranked[NEW_CAP:])
        return out

    def empty_like(self) -> CategoricalSketch:
        return CategoricalSketch(self.categories, complete=self.complete)

    def same_bins(self, other: NumericSketch | CategoricalSketch) -> bool:
        return isinstance(other, CategoricalSketch) and self.categories == other.categories

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": self.categories,
            "counts": self.counts.tolist(),
            "other": self.other,
            "new": dict(self.new),
            "new_untracked": self.new_untracked,
            "missing": self.missing,
            "complete": self.complete,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalSketch:
        return cls(
            categories=[str(c) for c in d["categories"]],
            counts=np.asarray(d["counts"], dtype=np.int64),
            other=int(d["other"]),
            new={str(k): int(v) for k, v in d["new"].items()},
            new_untracked=int(d["new_untracked"]),
            missing=int(d["missing"]),
            complete=bool(d["complete"]),
        )


ColumnSketch = NumericSketch | CategoricalSketch


# -- column arrays ------------------------------------------------------------------------------


def as_table(data: Any, what: str = "data") -> pa.Table:
    """A pyarrow Table from a Table or a pandas DataFrame."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise Invalid(
        f"{what}: received {type(data).__name__}; expected a pyarrow Table or a pandas "
        "DataFrame. Convert it first, e.g. pa.table(...) or pd.DataFrame(...)."
    )


def _to_arrow(name: str, values: Column) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise Invalid(
            f"column {name!r}: cannot read the values as one column ({exc}); pass a NumPy "
            "array, a pyarrow array or a list of numbers or strings."
        ) from exc


def as_floats(name: str, values: Column) -> np.ndarray:
    """Float64 values with NaN for missing; time types as epoch seconds."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    if isinstance(values, np.ndarray) and values.dtype.kind == "O":
        try:  # Python numbers in an object array (what a prediction log holds): one C loop
            return values.astype(np.float64)
        except (TypeError, ValueError):
            pass  # None, strings or timestamps among them: let Arrow read them
    arrow = _to_arrow(name, values)
    dtype = dtype_of(arrow.type)
    if not is_numeric_dtype(dtype) and dtype != "bool" and not pa.types.is_null(arrow.type):
        raise Invalid(
            f"column {name!r}: received {arrow.type} values; expected numbers, because the "
            "column is numeric in the reference. Send the same type the model was trained on."
        )
    if pa.types.is_null(arrow.type):
        return np.full(len(arrow), np.nan)
    floats = as_float(arrow, dtype)
    if isinstance(floats, pa.ChunkedArray):
        floats = floats.combine_chunks()
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def as_strings(name: str, values: Column) -> pa.Array | pa.ChunkedArray:
    """An Arrow array of categories, nulls for missing. Values become text only after counting
    (booleans as "true"/"false", as in the profile)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "OU":
        try:
            return pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowException, TypeError):
            pass  # mixed objects: let Arrow infer, then cast below
    arrow = _to_arrow(name, values)
    if not pa.types.is_string(arrow.type):
        try:  # casting an empty array checks the type converts to text, without the data
            pc.cast(pa.array([], type=arrow.type), pa.string())
        except pa.ArrowException as exc:
            raise Invalid(
                f"column {name!r}: received {arrow.type} values that do not convert to text; "
                "expected categories (strings). Send the same type the model was trained on."
            ) from exc
    return arrow


def _text(distinct: pa.Array) -> pa.Array:
    """Distinct values as text; cast after counting, so only the few distinct values convert."""
    return distinct if pa.types.is_string(distinct.type) else pc.cast(distinct, pa.string())


# -- the window ---------------------------------------------------------------------------------


class WindowSketch:
    """Per-feature sketches of one window (or of the reference), all on the reference's bins.

    >>> reference = WindowSketch.from_profile(model_version_profile, columns=["income", "grade"])
    >>> window = reference.empty_like()
    >>> window.update({"income": incomes, "grade": grades})   # one batch of logged rows
    >>> stored = window.to_dict()                              # JSON-able; from_dict() reads it
    """

    def __init__(
        self, features: Mapping[str, ColumnSketch], rows: int = 0, ignored: Iterable[str] = ()
    ) -> None:
        self.features: dict[str, ColumnSketch] = dict(features)
        self.rows = rows
        self.ignored: set[str] = set(ignored)

    def __repr__(self) -> str:
        return f"WindowSketch(rows={self.rows}, features={list(self.features)})"

    @classmethod
    def from_profile(cls, profile: Profile, columns: Sequence[str] | None = None) -> WindowSketch:
        """The reference side from a registered profile (its histogram edges and top values)."""
        names = list(columns) if columns is not None else [c.name for c in profile.columns]
        unknown = [n for n in names if profile.column(n) is None]
        if unknown:
            raise Invalid(
                f"the profile has no column(s) {unknown}; it has "
                f"{[c.name for c in profile.columns]}. Monitor only columns the model was "
                "trained on."
            )
        features: dict[str, ColumnSketch] = {}
        for name in names:
            col = profile.column(name)
            assert col is not None
            if is_numeric_dtype(col.dtype):
                edges = col.histogram.edges if col.histogram else []
                inner = col.histogram.counts if col.histogram else []
                sketch = NumericSketch(np.asarray(edges, dtype=np.float64))
                if inner:
                    sketch.counts = np.asarray([0, *inner, 0], dtype=np.int64)
                sketch.missing, sketch.count = col.missing, col.count
                sketch.mean = col.mean or 0.0
                sketch.m2 = (col.std or 0.0) ** 2 * max(col.count - 1, 0)
                if col.count:
                    sketch.lo, sketch.hi = float(col.min or 0.0), float(col.max or 0.0)
                features[name] = sketch
            else:
                top = col.top
                features[name] = CategoricalSketch(
                    list(top),
                    counts=np.asarray(list(top.values()), dtype=np.int64),
                    other=max(col.count - sum(top.values()), 0),
                    missing=col.missing,
                    complete=col.distinct is not None and col.distinct <= len(top),
                )
        return cls(features, rows=profile.rows)

    @classmethod
    def reference_from(
        cls, data: pa.Table | pd.DataFrame, columns: Sequence[str] | None = None, *, seed: int = 0
    ) -> WindowSketch:
        """The reference side from raw data: the profile's bins (equal-frequency edges from a
        sample, the top categories), counted over every row."""
        table = as_table(data, "reference")
        names = list(columns) if columns is not None else table.column_names
        unknown = [n for n in names if n not in table.column_names]
        if unknown:
            raise Invalid(
                f"the reference has no column(s) {unknown}; it has {table.column_names}. "
                "Name only columns both data sets have."
            )
        features: dict[str, ColumnSketch] = {}
        for name in names:
            column = table.column(name)
            if is_numeric_dtype(dtype_of(column.type)):
                values = as_floats(name, column)
                numeric = NumericSketch(reference_edges(values, seed))
                numeric.update(values)
                features[name] = numeric
            else:
                features[name] = _categorical_reference(as_strings(name, column))
        return cls(features, rows=table.num_rows)

    def empty_like(self) -> WindowSketch:
        """An empty sketch on the same bins and categories, for a window of current data."""
        return WindowSketch({n: s.empty_like() for n, s in self.features.items()})

    def update(self, columns: Mapping[str, Column], rows: int | None = None) -> None:
        """Add one batch: every monitored column as an array of the same length (NaN or None
        for missing). Extra columns are ignored and remembered for the report."""
        absent = [n for n in self.features if n not in columns]
        if absent:
            raise Invalid(
                f"the batch has no column(s) {absent}; the window monitors "
                f"{list(self.features)}. Log every monitored column (None for a missing value)."
            )
        for name in columns:
            if name not in self.features and len(self.ignored) < IGNORED_CAP:
                self.ignored.add(name)
        converted: dict[str, np.ndarray | pa.Array | pa.ChunkedArray] = {}
        for name, sketch in self.features.items():
            if isinstance(sketch, NumericSketch):
                converted[name] = as_floats(name, columns[name])
            else:
                converted[name] = as_strings(name, columns[name])
        lengths = {n: len(v) for n, v in converted.items()}
        expected = rows if rows is not None else next(iter(lengths.values()), 0)
        wrong = {n: k for n, k in lengths.items() if k != expected}
        if wrong:
            raise Invalid(
                f"the batch's columns differ in length: {wrong}, expected {expected} rows each. "
                "Send whole rows: every column with one value per row."
            )
        for name, sketch in self.features.items():
            sketch.update(converted[name])
        self.rows += expected

    def merge(self, other: WindowSketch) -> WindowSketch:
        """The sketch of both windows together (neither input changes)."""
        check_same_bins(self, other)
        merged = {n: _merge(s, other.features[n]) for n, s in self.features.items()}
        return WindowSketch(merged, self.rows + other.rows, self.ignored | other.ignored)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "ignored": sorted(self.ignored),
            "features": {n: s.to_dict() for n, s in self.features.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowSketch:
        if d.get("format") != FORMAT:
            raise Invalid(
                f"window sketch format {d.get('format')!r} is not supported; expected {FORMAT}. "
                "Rebuild the sketch from its data with this version of Shipyard."
            )
        features: dict[str, ColumnSketch] = {}
        for name, f in d["features"].items():
            kind = NumericSketch if f["kind"] == "numeric" else CategoricalSketch
            features[name] = kind.from_dict(f)
        return cls(features, rows=int(d["rows"]), ignored=d.get("ignored", ()))


def _merge(a: ColumnSketch, b: ColumnSketch) -> ColumnSketch:
    if isinstance(a, NumericSketch) and isinstance(b, NumericSketch):
        return a.merge(b)
    if isinstance(a, CategoricalSketch) and isinstance(b, CategoricalSketch):
        return a.merge(b)
    raise AssertionError("check_same_bins lets only matching kinds through")


def check_same_bins(reference: WindowSketch, current: WindowSketch) -> None:
    """Invalid unless both sketches hold the same columns on the same bins."""
    if list(reference.features) != list(current.features):
        raise Invalid(
            f"the sketches hold different columns: {list(reference.features)} and "
            f"{list(current.features)}. Make the window's sketch with reference.empty_like()."
        )
    differ = [n for n, s in reference.features.items() if not s.same_bins(current.features[n])]
    if differ:
        raise Invalid(
            f"column(s) {differ} are binned differently in the two sketches. Make the window's "
            "sketch with reference.empty_like() so both use the reference's bins."
        )


def _categorical_reference(values: pa.Array | pa.ChunkedArray) -> CategoricalSketch:
    vc = pc.value_counts(values)
    distinct = _text(vc.field("values"))
    valid = distinct.is_valid().to_numpy(zero_copy_only=False)
    names = np.asarray(distinct.to_pylist(), dtype=object)[valid]
    counts = vc.field("counts").to_numpy()[valid]
    # Most frequent first; a stable sort keeps the same data on the same bins.
    order = np.argsort(-counts, kind="stable")
    top = order[:TOP]
    return CategoricalSketch(
        [str(n) for n in names[top]],
        counts=counts[top].astype(np.int64),
        other=int(counts[order[TOP:]].sum()),
        missing=values.null_count,
        complete=len(order) <= TOP,
    )
