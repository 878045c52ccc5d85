"""The prediction log's storage: segments, each a flush's rows of one endpoint as Parquet.

A segment is one row of `prediction_segments` (`store.tables.PredictionSegmentRow`): the
endpoint, the time and request-id range of its rows, how many, and the rows themselves as a
Parquet file (zstd) in `data`. Writing one costs a few bulk array copies and one INSERT,
whatever the number of rows; a row per prediction with JSON objects cost ~20 µs of the server's
CPU each (and most of a busy server's interpreter time after the model's). Reading a time
range reads only the segments that overlap it, and only the Parquet columns asked for.

Columns of a segment (`COLUMNS` first, in every segment):

    request_id  string      row      int32          version_id  string
    at          timestamp[us, UTC]   latency_ms     float64     shadow  bool

then its inputs and outputs in one of two layouts:

- columnar (what the server writes): an input column per signature column, named
  `in:<name>` (float64 with NaN for a missing number, string for text; absent altogether
  when the endpoint does not log inputs), `label` (string, float64 or int64) and, for a
  classifier, `probabilities` (a fixed-size list of float64, one per class; the class names
  are in the file's metadata under `classes`);
- JSON (rows given as dicts: errors, rows from `PredictionLog.append`, rows migrated from the
  row-per-prediction table): `inputs` and `outputs`, JSON text (inputs null when not logged).

`decode()` turns a segment into `Rows`, NumPy columns the same for both layouts.

A quiet endpoint gets a small segment every flush (a request a second: 86,400 a day, each
with a Parquet file's fixed overhead, each a separate read for the monitor). `compact()`
merges an endpoint's small segments of the same layout into one, its rows in time order, in
one short transaction that also deletes them (several servers writing one log may compact at
once: the one that finds its segments gone leaves them).

A reader lists segments and then loads them, so it must do both in one `snapshot()`: a
segment compact() deletes in between stays readable there, and the merged one that replaced
it is not in the snapshot, so no row is read twice or missed.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, CursorResult, Table, delete, insert, select
from sqlalchemy.orm import Session

from shipyard.store.db import Database
from shipyard.store.tables import PredictionSegmentRow

INPUT = "in:"  # prefix of the columnar layout's input columns
COLUMNS = ("request_id", "row", "version_id", "at", "latency_ms", "shadow")
_AT = pa.timestamp("us", tz="UTC")  # `at`: microseconds, UTC
_TABLE = cast(Table, PredictionSegmentRow.__table__)
_CLASSES = b"classes"
_COMPACT_AT_ONCE = 1_000  # segments one compact() call looks at


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A segment's row in the table, without its data."""

    id: int
    endpoint: str
    first_at: datetime
    last_at: datetime
    rows: int
    min_request_id: str
    max_request_id: str


@dataclass(slots=True)
class Rows:
    """A segment's rows (or a selection of them) as columns.

    `inputs` maps a column name to its values (float64 with NaN for numbers, object with None
    elsewhere); `logged[i]` says whether row i's inputs were logged. `labels` holds Python
    values (None for an error row); `probabilities` has a column per class of `classes`
    (NaN where a row has none); `outputs` is each row's output object where the segment stored
    JSON (None for columnar ones, which `output(i)` rebuilds).
    """

    request_ids: np.ndarray
    positions: np.ndarray
    version_ids: np.ndarray
    at: np.ndarray  # datetime64[us], UTC
    latency_ms: np.ndarray
    shadow: np.ndarray
    inputs: dict[str, np.ndarray]
    logged: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray | None
    classes: list[str] | None
    outputs: list[dict[str, Any]] | None
    errors: np.ndarray

    @property
    def n(self) -> int:
        return len(self.request_ids)

    def take(self, keep: np.ndarray) -> Rows:
        """The rows at positions `keep` (an index array or a boolean mask)."""
        index = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Rows(
            request_ids=self.request_ids[index],
            positions=self.positions[index],
            version_ids=self.version_ids[index],
            at=self.at[index],
            latency_ms=self.latency_ms[index],
            shadow=self.shadow[index],
            inputs={name: values[index] for name, values in self.inputs.items()},
            logged=self.logged[index],
            labels=self.labels[index],
            probabilities=None if self.probabilities is None else self.probabilities[index],
            classes=self.classes,
            outputs=None if self.outputs is None else [self.outputs[i] for i in index.tolist()],
            errors=self.errors[index],
        )

    def input(self, i: int) -> dict[str, Any] | None:
        """Row i's inputs as a JSON-style object (None when they were not logged)."""
        if not self.logged[i]:
            return None
        return {name: _plain(values[i]) for name, values in self.inputs.items()}

    def output(self, i: int) -> dict[str, Any]:
        """Row i's output object: {"label": …, "probabilities": {class: p}} or {"error": …}."""
        if self.outputs is not None:
            return self.outputs[i]
        out: dict[str, Any] = {"label": _plain(self.labels[i])}
        if self.probabilities is not None and self.classes is not None:
            out["probabilities"] = {
                c: _plain(p)
                for c, p in zip(self.classes, self.probabilities[i].tolist(), strict=True)
            }
        return out


# -- writing -------------------------------------------------------------------------------------


def columnar_table(
    base: dict[str, pa.Array],
    inputs: dict[str, np.ndarray] | None,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[str] | None,
) -> pa.Table:
    """A segment in the columnar layout: `base` holds the `COLUMNS` arrays."""
    arrays: list[pa.Array] = [base[name] for name in COLUMNS]
    names = list(COLUMNS)
    for name, values in (inputs or {}).items():
        names.append(INPUT + name)
        arrays.append(_input_array(values))
    names.append("label")
    arrays.append(_label_array(labels))
    metadata: dict[bytes, bytes] = {}
    if probabilities is not None:
        k = probabilities.shape[1]
        flat = pa.array(np.ascontiguousarray(probabilities, dtype=np.float64).reshape(-1))
        names.append("probabilities")
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, k))
        metadata[_CLASSES] = orjson.dumps([str(c) for c in (classes or range(k))])
    return pa.Table.from_arrays(arrays, names=names, metadata=metadata or None)


def json_table(base: dict[str, pa.Array], inputs: list[str | None], outputs: list[str]) -> pa.Table:
    """A segment in the JSON layout: inputs and outputs as JSON text, one per row."""
    arrays = [base[name] for name in COLUMNS]
    arrays += [pa.array(inputs, type=pa.string()), pa.array(outputs, type=pa.string())]
    return pa.Table.from_arrays(arrays, names=[*COLUMNS, "inputs", "outputs"])


def base_arrays(
    request_ids: Sequence[str],
    positions: np.ndarray,
    version_ids: Sequence[str],
    at_us: np.ndarray,
    latency_ms: np.ndarray,
    shadow: np.ndarray,
) -> dict[str, pa.Array]:
    """The `COLUMNS` of a segment; `at_us` is microseconds since the epoch (int64)."""
    return {
        "request_id": pa.array(request_ids, type=pa.string()),
        "row": pa.array(positions.astype(np.int32, copy=False)),
        "version_id": pa.array(version_ids, type=pa.string()),
        "at": pa.array(at_us.astype(np.int64, copy=False), type=_AT),
        "latency_ms": pa.array(latency_ms.astype(np.float64, copy=False)),
        "shadow": pa.array(shadow.astype(bool, copy=False)),
    }


def encode(table: pa.Table) -> bytes:
    """The segment's Parquet bytes. Written to an Arrow buffer, not a Python file object, so
    the interpreter lock is let go for the whole write (the event loop runs meanwhile).
    Dictionary encoding only for the text columns that repeat (versions, categories, labels):
    on request ids and measurements it was work for nothing (a third less time to encode a
    segment, a sixth smaller)."""
    repeating = [
        field.name
        for field in table.schema
        if pa.types.is_string(field.type) and field.name != "request_id"
    ]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", compression_level=1, use_dictionary=repeating or False
    )
    return cast(bytes, sink.getvalue().to_pybytes())


def insert_segment(connection: Connection, endpoint: str, table: pa.Table, data: bytes) -> None:
    """Store one encoded segment of `endpoint` (in the caller's transaction)."""
    at = pc.min_max(table["at"]).as_py()
    ids = pc.min_max(table["request_id"]).as_py()
    connection.execute(
        insert(_TABLE),
        {
            "endpoint": endpoint,
            "first_at": at["min"],
            "last_at": at["max"],
            "rows": table.num_rows,
            "min_request_id": ids["min"],
            "max_request_id": ids["max"],
            "data": data,
        },
    )


def compact(db: Database, endpoint: str, *, small: int = 1_000, most: int = 100_000) -> int:
    """Merge `endpoint`'s segments of fewer than `small` rows, oldest first and up to `most`
    rows (and 1,000 segments) in all, into one per layout; returns how many segments went.
    A layout with one small segment is left as it is.

    The merging happens outside any transaction; a short write transaction then deletes the
    merged segments and inserts the result, or (when another process merged some of them
    meanwhile: fewer rows deleted than chosen) rolls back and leaves them.
    """
    t = PredictionSegmentRow
    with db.read() as s:
        query = (
            select(t.id, t.rows)
            .where(t.endpoint == endpoint, t.rows < small)
            .order_by(t.first_at, t.id)
            .limit(_COMPACT_AT_ONCE)
        )
        chosen: list[int] = []
        total = 0
        for segment_id, rows in s.execute(query):
            if total + rows > most and chosen:
                break
            chosen.append(segment_id)
            total += rows
        by_layout: dict[pa.Schema, list[tuple[int, pa.Table]]] = {}
        for segment_id in chosen:
            try:
                table = load(s, segment_id)
            except LookupError:  # merged by another process since it was chosen
                continue
            by_layout.setdefault(table.schema, []).append((segment_id, table))
    gone = 0
    for parts in by_layout.values():
        if len(parts) < 2:
            continue
        merged = pa.concat_tables([table for _, table in parts])
        merged = merged.take(pc.sort_indices(merged["at"]))  # stable: ties keep their order
        data = encode(merged)
        ids = [segment_id for segment_id, _ in parts]
        try:
            with db.write() as s:
                result = cast(CursorResult[Any], s.execute(delete(t).where(t.id.in_(ids))))
                deleted = result.rowcount
                if deleted != len(ids):
                    raise _Raced
                insert_segment(s.connection(), endpoint, merged, data)
        except _Raced:
            continue
        gone += len(ids)
    return gone


class _Raced(Exception):
    """Another process merged some of the chosen segments first."""


# -- reading -------------------------------------------------------------------------------------


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """A read transaction that sees the log as it was at its first read, on both databases:
    read the segment list and the segments in it, and a concurrent `compact()` changes nothing
    that the reader sees (before, a scan could fail with "segment 14 is gone").

    SQLite in WAL mode gives every transaction one snapshot (`store.db` issues the BEGIN);
    PostgreSQL's default, READ COMMITTED, takes a new one per statement, so the transaction asks
    for REPEATABLE READ. Holding one costs little: readers block no writer on either database
    (SQLite's WAL file only grows until the snapshot ends)."""
    with db.read() as s:
        if not db.is_sqlite:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield s


def segments(
    s: Session,
    endpoint: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SegmentInfo]:
    """The segments of `endpoint` that may hold rows with `start <= at < end`, oldest first
    (by their first row's time; merged segments hold rows of the ones they replaced)."""
    t = PredictionSegmentRow
    query = select(
        t.id, t.endpoint, t.first_at, t.last_at, t.rows, t.min_request_id, t.max_request_id
    ).where(t.endpoint == endpoint)
    if start is not None:
        query = query.where(t.last_at >= start)
    if end is not None:
        query = query.where(t.first_at < end)
    return [SegmentInfo(*row) for row in s.execute(query.order_by(t.first_at, t.id))]


def holding(infos: Sequence[SegmentInfo], request_ids: Sequence[str]) -> list[SegmentInfo]:
    """The segments whose request-id range takes in one of `request_ids` (sorted). Server
    request ids begin with the second they were made, so this is the few segments written
    about then."""
    out = []
    for info in infos:
        i = bisect.bisect_left(request_ids, info.min_request_id)
        if i < len(request_ids) and request_ids[i] <= info.max_request_id:
            out.append(info)
    return out


def load(s: Session, segment_id: int, columns: Sequence[str] | None = None) -> pa.Table:
    """A segment's rows; `columns` limits what is read to those (of `COLUMNS`, say). Give it
    a `snapshot()` session in which the segment was listed: elsewhere it may be merged away
    (LookupError)."""
    data = s.scalar(select(PredictionSegmentRow.data).where(PredictionSegmentRow.id == segment_id))
    if data is None:
        raise LookupError(f"prediction log segment {segment_id} is gone")
    file = pq.ParquetFile(pa.BufferReader(data))  # read in C++, the interpreter lock let go
    if columns is not None:
        present = set(file.schema_arrow.names)
        columns = [c for c in columns if c in present]
    return file.read(columns=columns)


def scan_segments(
    s: Session,
    infos: Sequence[SegmentInfo],
    start: datetime | None = None,
    end: datetime | None = None,
) -> Iterator[Rows]:
    """Each segment's rows with `start <= at < end`, decoded, oldest segment first."""
    for info in infos:
        yield read_rows(s, info, start, end)


def read_rows(
    s: Session, info: SegmentInfo, start: datetime | None = None, end: datetime | None = None
) -> Rows:
    """One segment's rows with `start <= at < end`, decoded."""
    rows = decode(load(s, info.id))
    mask = np.ones(rows.n, dtype=bool)
    if start is not None:
        mask &= rows.at >= _datetime64(start)
    if end is not None:
        mask &= rows.at < _datetime64(end)
    return rows if mask.all() else rows.take(mask)


def decode(table: pa.Table) -> Rows:
    """A segment's rows as NumPy columns (either layout)."""
    n = table.num_rows
    names = table.column_names
    at = table["at"].to_numpy().astype("datetime64[us]")
    common: dict[str, Any] = {
        "request_ids": _objects(table["request_id"]),
        "positions": table["row"].to_numpy().astype(np.int64),
        "version_ids": _objects(table["version_id"]),
        "at": at,
        "latency_ms": table["latency_ms"].to_numpy().astype(np.float64),
        "shadow": table["shadow"].to_numpy().astype(bool),
    }
    if "outputs" in names:
        return _decode_json(table, n, common)
    inputs = {
        name[len(INPUT) :]: _input_values(table[name]) for name in names if name.startswith(INPUT)
    }
    probabilities = None
    classes = None
    if "probabilities" in names:
        column = table["probabilities"].combine_chunks()
        k = column.type.list_size
        probabilities = column.flatten().to_numpy().reshape(n, k)
        metadata = table.schema.metadata or {}
        classes = json.loads(metadata[_CLASSES]) if _CLASSES in metadata else None
    return Rows(
        **common,
        inputs=inputs,
        logged=np.full(n, bool(inputs)),
        labels=_objects(table["label"]),
        probabilities=probabilities,
        classes=classes,
        outputs=None,
        errors=np.zeros(n, dtype=bool),
    )


def _decode_json(table: pa.Table, n: int, common: dict[str, Any]) -> Rows:
    inputs_list = [None if t is None else orjson.loads(t) for t in table["inputs"].to_pylist()]
    outputs = [orjson.loads(t) for t in table["outputs"].to_pylist()]
    names: dict[str, None] = {}
    for item in inputs_list:
        if item:
            names.update(dict.fromkeys(item))
    inputs: dict[str, np.ndarray] = {}
    for name in names:
        column = np.empty(n, dtype=object)
        column[:] = [item.get(name) if item else None for item in inputs_list]
        inputs[name] = column
    labels = np.empty(n, dtype=object)
    labels[:] = [o.get("label") for o in outputs]
    return Rows(
        **common,
        inputs=inputs,
        logged=np.array([item is not None for item in inputs_list], dtype=bool),
        labels=labels,
        probabilities=None,
        classes=None,
        outputs=outputs,
        errors=np.array(["error" in o for o in outputs], dtype=bool),
    )


def _input_array(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "fiub":
        return pa.array(values.astype(np.float64, copy=False))
    return pa.array(values, type=pa.string(), from_pandas=True)


def _input_values(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_floating(column.type):
        return column.to_numpy().astype(np.float64, copy=False)
    return _objects(column)


def _label_array(labels: np.ndarray) -> pa.Array:
    if labels.dtype.kind == "f":
        return pa.array(labels.astype(np.float64, copy=False))
    if labels.dtype.kind in "iu":
        return pa.array(labels.astype(np.int64, copy=False))
    if labels.dtype.kind == "b":
        return pa.array(labels)
    if labels.dtype.kind in "OU":
        try:  # text labels (the usual classifier's): converted in C
            return pa.array(labels, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # other objects: as their text
            pass
    return pa.array([None if v is None else str(v) for v in labels.tolist()], type=pa.string())


def _objects(column: pa.ChunkedArray) -> np.ndarray:
    out = np.empty(len(column), dtype=object)
    out[:] = column.to_pylist()
    return out


def _plain(value: Any) -> Any:
    """A stored value as JSON would hold it: NumPy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _datetime64(value: datetime) -> np.datetime64:
    return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "us")
