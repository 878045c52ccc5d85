"""Checking data against a schema's rules, batch by batch, into a `ValidationReport`.

Each violated rule is reported once per column with the number of offending rows and a few
examples (row number and value). Rules: present, dtype, nullable, range, values, unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.records import ColumnSchema, DatasetSchema, Severity, ValidationReport, Violation
from shipyard.data.types import dtype_of, is_numeric

EXAMPLES = 3


@dataclass
class _Tally:
    rule: str
    column: str
    severity: Severity
    message: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rows: np.ndarray, values: list[Any]) -> None:
        self.count += len(rows)
        room = EXAMPLES - len(self.examples)
        for r, v in list(zip(rows.tolist(), values, strict=False))[:room]:
            self.examples.append({"row": int(r), "value": _plain(v)})


def _plain(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


class Validator:
    """Feed batches in order with `update()`, then call `report()`."""

    def __init__(self, schema: DatasetSchema) -> None:
        self.schema = schema
        self.rows = 0
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._unique: dict[str, list[pa.Array]] = {c.name: [] for c in schema.columns if c.unique}

    def _tally(
        self, col: ColumnSchema | str, rule: str, severity: Severity, message: str
    ) -> _Tally:
        name = col if isinstance(col, str) else col.name
        key = (name, rule)
        if key not in self._tallies:
            self._tallies[key] = _Tally(rule, name, severity, message)
        return self._tallies[key]

    def update(self, batch: pa.RecordBatch) -> None:
        offset = self.rows
        self.rows += batch.num_rows
        names = set(batch.schema.names)
        for extra in sorted(names - set(self.schema.names)):
            t = self._tally(extra, "extra", "warning", f"column {extra!r} is not in the schema")
            t.count += batch.num_rows
        for col in self.schema.columns:
            if col.name not in names:
                t = self._tally(
                    col,
                    "present",
                    col.rule_severity("present"),
                    f"required column {col.name!r} is missing",
                )
                t.count += batch.num_rows
                continue
            self._check(col, batch.column(batch.schema.get_field_index(col.name)), offset)

    def _check(self, col: ColumnSchema, values: pa.Array, offset: int) -> None:
        # Taken before text in a number column is masked: such values are not missing.
        missing = values.is_null().to_numpy(zero_copy_only=False)
        actual = dtype_of(values.type)
        if pa.types.is_null(values.type):
            actual = col.dtype
        if actual == "string" and is_numeric(col.dtype):
            # Text where numbers belong: flag only the values that are not numbers.
            numbers = np.array([_number(v) for v in values.to_pylist()], dtype=np.float64)
            bad = values.is_valid().to_numpy(zero_copy_only=False) & np.isnan(numbers)
            if bad.any():
                t = self._tally(
                    col,
                    "dtype",
                    col.rule_severity("dtype"),
                    f"values that are not numbers in the {col.dtype} column",
                )
                rows = np.flatnonzero(bad)
                t.add(rows + offset, values.take(pa.array(rows[:EXAMPLES])).to_pylist())
            values = pa.array(numbers, mask=~values.is_valid().to_numpy(zero_copy_only=False) | bad)
            actual = "float64"
        if not _compatible(actual, col.dtype, values):
            t = self._tally(
                col,
                "dtype",
                col.rule_severity("dtype"),
                f"values are {actual}, expected {col.dtype}",
            )
            rows = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False)) + offset
            t.add(rows, values.drop_null().slice(0, EXAMPLES).to_pylist())
            return  # range and category checks are meaningless on the wrong type
        if not col.nullable and missing.any():
            t = self._tally(
                col,
                "nullable",
                col.rule_severity("nullable"),
                "missing values where none are allowed",
            )
            rows = np.flatnonzero(missing) + offset
            t.add(rows, [None] * min(len(rows), EXAMPLES))
        if is_numeric(col.dtype) and (col.min is not None or col.max is not None):
            floats = pc.cast(values, pa.float64())
            bad = None
            if col.min is not None:
                bad = pc.less(floats, col.min)
            if col.max is not None:
                above = pc.greater(floats, col.max)
                bad = above if bad is None else pc.or_(bad, above)
            self._add_mask(
                col,
                "range",
                bad,
                values,
                offset,
                f"values outside [{_fmt(col.min, '-inf')}, {_fmt(col.max, 'inf')}]",
            )
        if col.values is not None and actual in ("string", "bool", "int64"):
            as_text = pc.cast(values, pa.string())
            bad = pc.invert(pc.is_in(as_text, value_set=pa.array(col.values, pa.string())))
            bad = pc.and_(bad, pc.is_valid(as_text))
            shown = col.values[:8] + (["…"] if len(col.values) > 8 else [])
            self._add_mask(
                col, "values", bad, as_text, offset, f"values not in the allowed set {shown}"
            )
        if col.unique:
            self._unique[col.name].append(values)

    def _add_mask(
        self, col: ColumnSchema, rule: str, mask: Any, values: pa.Array, offset: int, message: str
    ) -> None:
        if mask is None:
            return
        flags = mask.fill_null(False).to_numpy(zero_copy_only=False)
        if not flags.any():
            return
        rows = np.flatnonzero(flags)
        t = self._tally(col, rule, col.rule_severity(rule), message)
        t.add(rows + offset, values.take(pa.array(rows[:EXAMPLES])).to_pylist())

    def report(self) -> ValidationReport:
        for name, chunks in self._unique.items():
            col = self.schema.column(name)
            assert col is not None
            if not chunks:
                continue
            counts = pc.value_counts(pa.chunked_array(chunks).drop_null())
            dup = pc.greater(counts.field("counts"), 1)
            dupes = pc.filter(counts, dup)
            if len(dupes):
                t = self._tally(
                    col,
                    "unique",
                    col.rule_severity("unique"),
                    "duplicate values in a unique column",
                )
                t.count = int(pc.sum(dupes.field("counts")).as_py())
                t.examples = [
                    {"value": _plain(v), "rows": int(n)}
                    for v, n in zip(
                        dupes.field("values").to_pylist()[:EXAMPLES],
                        dupes.field("counts").to_pylist()[:EXAMPLES],
                        strict=True,
                    )
                ]
        violations = [
            Violation(
                rule=t.rule,
                column=t.column,
                severity=t.severity,
                count=t.count,
                message=t.message,
                examples=t.examples,
            )
            for t in self._tallies.values()
            if t.count
        ]
        violations.sort(key=lambda v: (v.severity != "error", v.column, v.rule))
        return ValidationReport(rows=self.rows, violations=violations)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _compatible(actual: str, expected: str, values: pa.Array) -> bool:
    if actual == expected:
        return True
    if expected == "float64" and actual == "int64":
        return True
    if expected == "int64" and actual == "float64":
        finite = values.drop_null()
        return bool(pc.all(pc.equal(pc.floor(finite), finite)).as_py() in (True, None))
    return False


def _fmt(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:g}"
