"""Cleaning steps: declared in the spec (`data.clean`) or as CLI flags, replayed in order.

Row-local steps (trim, lower, empty_to_null, coerce, fill with a constant, drop_missing) run on
each batch as it streams. Steps that need the whole data set (dedupe; fill with the median,
mean or mode) run in a second pass over the staged Parquet file. Each step records how many
rows it changed, and the list goes into the version's lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.errors import Invalid
from shipyard.core.records import CleaningStep, Profile
from shipyard.data.types import ARROW, dtype_of

GLOBAL_FILL = ("median", "mean", "mode")
COERCE_TO = ("float64", "int64", "bool", "timestamp", "date", "string")


def check_steps(steps: Sequence[CleaningStep]) -> None:
    for i, step in enumerate(steps):
        where = f"cleaning step {i + 1} ({step.op})"
        if step.op == "coerce":
            to = step.params.get("to", "float64")
            if to not in COERCE_TO:
                raise Invalid(f"{where}: 'to' is {to!r}; expected one of {', '.join(COERCE_TO)}.")
            if not step.columns:
                raise Invalid(f"{where}: name the columns to coerce, e.g. columns: [income].")
        strategy = step.params.get("strategy")
        if step.op == "fill" and "value" not in step.params and strategy not in GLOBAL_FILL:
            raise Invalid(
                f"{where}: give params.value (a constant) or params.strategy "
                f"({', '.join(GLOBAL_FILL)})."
            )


def is_global(step: CleaningStep) -> bool:
    return step.op == "dedupe" or (step.op == "fill" and "value" not in step.params)


def read_types(steps: Sequence[CleaningStep]) -> dict[str, pa.DataType]:
    """Columns that must be read as text so that `coerce` can parse them itself."""
    return {c: pa.string() for s in steps if s.op == "coerce" for c in s.columns}


def _targets(step: CleaningStep, batch: pa.RecordBatch, *, strings: bool = False) -> list[str]:
    names = step.columns or batch.schema.names
    missing = [c for c in names if c not in batch.schema.names]
    if missing:
        raise Invalid(
            f"cleaning step {step.op!r} names column(s) {missing} that the data does not have; "
            f"the columns are {batch.schema.names}."
        )
    if strings:
        return [c for c in names if dtype_of(batch.schema.field(c).type) == "string"]
    return list(names)


def _replace(batch: pa.RecordBatch, name: str, column: pa.Array) -> pa.RecordBatch:
    i = batch.schema.get_field_index(name)
    return batch.set_column(i, pa.field(name, column.type), column)


def apply_streaming(step: CleaningStep, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, int]:
    """Apply a row-local step to one batch; returns the batch and the rows it changed."""
    changed: pa.Array | None = None  # per row: did the step change it (in any column)?
    if step.op in ("trim", "lower", "empty_to_null"):
        for name in _targets(step, batch, strings=True):
            col = batch.column(batch.schema.get_field_index(name))
            if step.op == "trim":
                new = pc.utf8_trim_whitespace(col)
            elif step.op == "lower":
                new = pc.utf8_lower(col)
            else:
                new = pc.if_else(pc.equal(pc.utf8_trim_whitespace(col), ""), None, col)
            changed = _either(changed, _changed(col, new))
            batch = _replace(batch, name, new)
    elif step.op == "coerce":
        to = step.params.get("to", "float64")
        for name in _targets(step, batch):
            col = batch.column(batch.schema.get_field_index(name))
            new = _coerce(col, to)
            changed = _either(changed, pc.and_(col.is_valid(), new.is_null()))
            batch = _replace(batch, name, new)
    elif step.op == "fill":
        value = step.params["value"]
        for name in _targets(step, batch):
            col = batch.column(batch.schema.get_field_index(name))
            changed = _either(changed, col.is_null())
            batch = _replace(batch, name, pc.fill_null(col, pa.scalar(value).cast(col.type)))
    elif step.op == "drop_missing":
        names = _targets(step, batch)
        keep = None
        for name in names:
            valid = batch.column(batch.schema.get_field_index(name)).is_valid()
            keep = valid if keep is None else pc.and_(keep, valid)
        if keep is not None:
            before = batch.num_rows
            batch = batch.filter(keep)
            return batch, before - batch.num_rows
    return batch, 0 if changed is None else int(pc.sum(changed).as_py() or 0)


def _either(a: pa.Array | None, b: pa.Array) -> pa.Array:
    return b if a is None else pc.or_(a, b)


def _changed(old: pa.Array, new: pa.Array) -> pa.Array:
    differs = pc.not_equal(old, new).fill_null(False)
    became_null = pc.and_(old.is_valid(), new.is_null())
    return pc.or_(differs, became_null)


def rows_missing(batch: pa.RecordBatch, columns: Sequence[str]) -> int:
    """Rows missing a value in any of `columns`."""
    missing: pa.Array | None = None
    for name in columns:
        missing = _either(missing, batch.column(batch.schema.get_field_index(name)).is_null())
    return 0 if missing is None else int(pc.sum(missing).as_py() or 0)


def _coerce(col: pa.Array, to: str) -> pa.Array:
    """Parse text into `to`; anything that does not parse becomes missing."""
    text = pc.utf8_trim_whitespace(pc.cast(col, pa.string()))
    if to == "string":
        return text
    if to in ("float64", "int64"):
        numbers = np.array([_to_float(v) for v in text.to_pylist()], dtype=np.float64)
        mask = np.isnan(numbers)
        if to == "int64":
            mask |= ~np.isfinite(numbers) | (np.floor(numbers) != numbers)
            return pa.array(np.where(mask, 0, numbers).astype(np.int64), mask=mask)
        return pa.array(numbers, mask=mask)
    if to == "bool":
        lowered = pc.utf8_lower(text)
        truthy = pc.is_in(lowered, value_set=pa.array(["true", "1", "yes", "y", "t"]))
        falsy = pc.is_in(lowered, value_set=pa.array(["false", "0", "no", "n", "f"]))
        return pc.if_else(truthy, True, pc.if_else(falsy, False, pa.scalar(None, pa.bool_())))
    out = []
    for v in text.to_pylist():
        try:
            out.append(pa.scalar(v).cast(ARROW[to]).as_py() if v else None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
    return pa.array(out, ARROW[to])


def _to_float(value: str | None) -> float:
    try:
        return float(value) if value else np.nan
    except ValueError:
        return np.nan


def fill_value(step: CleaningStep, column: str, profile: Profile) -> Any:
    """The constant a global `fill` uses for one column, from the staged data's profile."""
    col = profile.column(column)
    strategy = step.params["strategy"]
    if col is None or col.count == 0:
        return None
    if strategy == "mode":
        if col.top:
            return max(col.top.items(), key=lambda kv: kv[1])[0]
        strategy = "median"
    if col.dtype not in ("int64", "float64"):
        raise Invalid(
            f"fill with {strategy!r} needs a numeric column; {column!r} is {col.dtype}. "
            "Use strategy: mode or a constant value."
        )
    value = col.mean if strategy == "mean" else col.quantiles.get("p50")
    return round(value) if col.dtype == "int64" and value is not None else value


class Deduper:
    """Drops rows identical (on `columns`, or all columns) to one seen before."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self._seen: set[int] = set()

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, int]:
        names = self.columns or batch.schema.names
        frame = batch.select(names).to_pandas()
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        keep = np.zeros(len(hashes), dtype=bool)
        for i, h in enumerate(hashes.tolist()):
            if h not in self._seen:
                self._seen.add(h)
                keep[i] = True
        return batch.filter(pa.array(keep)), int((~keep).sum())
