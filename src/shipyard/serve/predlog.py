"""The prediction log: every answered row, written off the hot path; feedback labels joined.

`PredictionLog.append()` only extends an in-memory list under a lock (microseconds). The
server's request path uses `append_answer()` instead, which keeps one request's `Answered`
record as it is (the validated input columns and the outputs as NumPy arrays) and builds no
per-row objects at all. A background thread turns what is buffered into rows (inputs and
outputs serialised with orjson) and writes them in one bulk insert (SQLAlchemy Core) every
`flush_seconds`, or sooner when the buffer fills; it yields the interpreter between chunks so
the event loop never waits long for it. `flush()` writes now and `close()` writes whatever is
left, so a row `append()` or `append_answer()` accepted is never lost on a graceful shutdown.
When the database falls behind and the buffer holds `max_buffer` rows, both refuse new rows
(they return how many they accepted, and `dropped` counts the rest) instead of growing
without bound.

Each stored row has `inputs` as a JSON object column → value (null where the endpoint does not
log inputs) and `outputs` as a JSON object (`{"label": …}`, plus `"probabilities": {class: p}`
for a classifier that gives them); NaN and infinities are stored as null.

    >>> log = PredictionLog(ws)
    >>> log.append([{"request_id": rid, "endpoint": "credit", "version_id": v.id,
    ...              "latency_ms": 1.7, "row": 0, "outputs": {"label": "yes"}}])
    1
    >>> log.close()
    >>> record_feedback(ws, "credit", [{"request_id": rid, "label": "no"}])
    FeedbackResult(matched=1, unknown=0, unknown_ids=[])
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from types import TracebackType
from typing import Any, cast

import numpy as np
import orjson
from sqlalchemy import Connection, Dialect, Table, Text, bindparam, func, insert, select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, Unavailable
from shipyard.core.records import FeedbackResult, LabelledPrediction, Prediction
from shipyard.serve.endpoints import unknown_endpoint
from shipyard.store.tables import EndpointRow, FeedbackRow, PredictionRow
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve.predlog")

_PREDICTIONS = cast(Table, PredictionRow.__table__)
_FEEDBACK = cast(Table, FeedbackRow.__table__)
_JSON_COLUMNS = ("inputs", "outputs")
# The columns a stored row is written with, in the order of `_Row`.
_COLUMNS = (
    "request_id",
    "endpoint",
    "version_id",
    "at",
    "latency_ms",
    "shadow",
    "row",
    *_JSON_COLUMNS,
)
_Row = tuple[str, str, str, datetime, float, bool, int, str, str]  # inputs, outputs: JSON text
REQUIRED = frozenset({"request_id", "endpoint", "version_id", "outputs"})
_INSERT_CHUNK = 500  # rows per insert and commit; the writer yields the interpreter between them
# Parameters one SQLite statement may take: 32,766 since SQLite 3.32, 999 before.
_SQLITE_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_SERIALISE_CHUNK = 64  # buffered items serialised between two yields
_LOOKUP_CHUNK = 500  # request ids per IN (...) query
_MAX_FEEDBACK = 100_000
_UNKNOWN_SHOWN = 20
_LIMITS = {"request_id": 128, "endpoint": 64, "version_id": 32}


@dataclass(frozen=True, slots=True)
class Answered:
    """One request's answer from one version, as `PredictionLog.append_answer()` keeps it.

    `inputs` are the request's validated columns (one array per column, all of length n, as
    `shipyard.serve.inputs.Batch.columns`), or None where inputs are not logged; `labels` has
    one value per row and `probabilities` one row per row, a column per class in `classes`
    order. `at` is when it was answered, in seconds since the epoch (`time.time()`).
    """

    request_id: str
    endpoint: str
    version_id: str
    at: float
    latency_ms: float
    shadow: bool
    inputs: Mapping[str, np.ndarray] | None
    labels: np.ndarray
    probabilities: np.ndarray | None
    classes: Sequence[str] | None

    @property
    def n(self) -> int:
        return len(self.labels)


_Buffered = tuple[datetime, Sequence[Mapping[str, Any]]] | Answered


class PredictionLog:
    """Buffered, batched writer of predictions for one server process. Thread-safe."""

    def __init__(
        self, ws: Workspace, *, flush_seconds: float = 1.0, max_buffer: int = 50_000
    ) -> None:
        if flush_seconds <= 0 or max_buffer < 1:
            raise Invalid(
                f"flush_seconds ({flush_seconds}) and max_buffer ({max_buffer}) must be positive."
            )
        self.ws = ws
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._flush_rows = max(1, max_buffer // 10)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[_Buffered] = []
        self._retry: list[_Row] = []  # checked rows a failed write put back
        self._insert = _Insert(ws.db.engine.dialect)
        self._pending = 0
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.last_error: BaseException | None = None
        self._warned_at = 0.0
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._background, name="shipyard-predlog", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)

    # -- the hot path ---------------------------------------------------------------------------

    def append(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Queue rows for writing; returns how many were accepted (0 when full or closed).

        Each row needs request_id, endpoint, version_id and outputs (a dict); optional are
        at (aware datetime, default now), latency_ms, shadow, row (position in the request)
        and inputs (a dict, or None).
        """
        if not rows:
            return 0
        for item in rows:
            if not item.keys() >= REQUIRED:
                missing = sorted(REQUIRED - item.keys())
                raise Invalid(
                    f"a prediction log row lacks {', '.join(missing)}; every row needs "
                    f"{', '.join(sorted(REQUIRED))}."
                )
        return self._accept((datetime.now(UTC), rows), len(rows))

    def append_answer(self, answer: Answered) -> int:
        """Queue one request's answer, a row per row of it; returns how many rows were
        accepted (0 when full or closed). The arrays are kept, not copied: do not change
        them afterwards. Rows become dicts and JSON only in the writer's thread."""
        n = answer.n
        if not n:
            return 0
        return self._accept(answer, n)

    def _accept(self, item: _Buffered, n: int) -> int:
        with self._lock:
            if self._closed or self._pending + n > self.max_buffer:
                self.dropped += n
                accepted = 0
            else:
                self._buffer.append(item)
                self._pending += n
                accepted = n
            full = self._pending >= self._flush_rows
        if full:
            self._wake.set()
        if not accepted:
            self._warn_dropped(n)
        return accepted

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written."""
        return self._pending

    # -- writing --------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write every accepted row now; returns how many were written.

        Rows are committed `_INSERT_CHUNK` at a time, so the database's write lock (SQLite
        has one per file) is never held for long by the log. On a database error the rows not
        yet committed stay buffered for the next attempt and the error is raised as
        Unavailable.
        """
        with self._flush_lock:
            with self._lock:
                taken, self._buffer = self._buffer, []
                count = self._pending
            if not taken and not self._retry:
                return 0
            params = [*self._retry, *self._params(taken)]
            self._retry = []
            written = 0
            try:
                for start in range(0, len(params), _INSERT_CHUNK):
                    if start:
                        time.sleep(0)  # let the event loop's thread run meanwhile
                    chunk = params[start : start + _INSERT_CHUNK]
                    with self.ws.db.write() as s:
                        self._insert(s.connection(), chunk)
                    written += len(chunk)
            except Exception as exc:
                self._retry = params[written:]  # kept, in order, for the next attempt
                self.last_error = exc
                raise Unavailable(
                    f"could not write {len(self._retry):,} predictions to the log ({exc}); they "
                    "stay buffered and are retried. Check the metadata database."
                ) from exc
            finally:
                with self._lock:  # what is still pending of what was taken: the retries
                    self._pending -= count - len(self._retry)
                self.written += written
                _release(params)
            self.last_error = None
            return written

    def _params(self, taken: list[_Buffered]) -> list[_Row]:
        """The rows to store; a row that cannot be stored is logged and left out (`rejected`)."""
        out: list[_Row] = []
        taken.reverse()  # popped from the end, in order: each item is freed once serialised
        index = 0
        while taken:
            item = taken.pop()
            index += 1
            if not index % _SERIALISE_CHUNK:
                time.sleep(0)  # let the event loop's thread run meanwhile
            if isinstance(item, Answered):
                try:
                    out += _answer_rows(item)
                except Exception as exc:  # one bad answer must not take the others with it
                    self.rejected += item.n
                    log.error(
                        "prediction log rows of request %r left out: %s", item.request_id, exc
                    )
                continue
            at, rows = item
            for row in rows:
                try:
                    out.append(_row(row, at))
                except Exception as exc:  # one bad row must not take the others with it
                    self.rejected += 1
                    log.error("prediction log row left out: %s", exc)
        return out

    def _background(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closed:
                break
            try:
                self.flush()
            except Exception as exc:  # kept buffered; retried next time, raised by close()
                log.warning("prediction log write failed, will retry: %s", exc)

    def close(self) -> None:
        """Stop the writer and write everything accepted; raises if that write fails."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        _OPEN.discard(self)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _warn_dropped(self, count: int) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            state = "closed" if self._closed else f"full ({self.max_buffer:,} rows pending)"
            log.warning(
                "prediction log is %s: %d rows not logged (%d so far)", state, count, self.dropped
            )


class _Insert:
    """The bulk insert as the database driver takes it, with SQLAlchemy's own conversions for
    this database applied (how SQLite stores datetimes, say), so a row is stored exactly as
    `insert(PredictionRow)` stores it, without SQLAlchemy's per-row work of building
    parameters.

    inputs and outputs arrive as JSON text: SQLite stores JSON as text, so it goes in as it is;
    elsewhere (PostgreSQL) it is cast to the column's JSON type in SQL.

    Rows do not go in through `executemany`: the drivers release the GIL around every
    statement they step or send, and with the event loop's thread busy each release became a
    hand-over of the interpreter, one per row. SQLite gets multi-row `INSERT … VALUES (…), …`
    statements (as many rows as one statement takes), PostgreSQL through psycopg a `COPY …
    FROM STDIN`. Measured on 2 cores, 5,000 rows with a busy event-loop thread: SQLite
    300-500 ms a flush in the server before (17 µs a row with the loop idle); PostgreSQL 369
    ms with `executemany`, 38 ms with COPY. Any other driver keeps `executemany`.
    """

    def __init__(self, dialect: Dialect) -> None:
        values: dict[str, Any] = {}
        for name in _COLUMNS:
            column = _PREDICTIONS.c[name]
            if name in _JSON_COLUMNS:
                text = bindparam(f"{name}_json", type_=Text())
                values[name] = text if dialect.name == "sqlite" else text.cast(column.type)
            else:
                values[name] = bindparam(f"{name}_value", type_=column.type)
        compiled = (
            insert(_PREDICTIONS).values(values).compile(dialect=dialect, for_executemany=True)
        )
        keys = [f"{name}_json" if name in _JSON_COLUMNS else f"{name}_value" for name in _COLUMNS]
        self.sql = compiled.string
        self.convert = [
            (i, convert)
            for i, name in enumerate(_COLUMNS)
            if name not in _JSON_COLUMNS
            and (convert := _PREDICTIONS.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        head, _, group = self.sql.partition(" VALUES ")
        names = list(compiled.positiontup or ()) if compiled.positional else []
        # Where each statement parameter comes from in a row (positional drivers: SQLite).
        self.order: list[int] | None = (
            [keys.index(name) for name in names] if sorted(names) == sorted(keys) else None
        )
        self.keys = keys
        self._head, self._group = f"{head} VALUES ", group
        self._texts: dict[int, str] = {}
        self.rows_per_statement = max(1, _SQLITE_VARIABLES // len(_COLUMNS))
        self.copy: str | None = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            quote = dialect.identifier_preparer.quote
            table = dialect.identifier_preparer.format_table(_PREDICTIONS)
            self.copy = f"COPY {table} ({', '.join(map(quote, _COLUMNS))}) FROM STDIN"

    @property
    def way(self) -> str:
        """How rows go in: "copy", "values" (multi-row statements) or "executemany"."""
        return "copy" if self.copy else "values" if self.order is not None else "executemany"

    def __call__(self, connection: Connection, rows: Sequence[_Row]) -> None:
        params: list[list[Any]] = []
        convert = self.convert
        # The rows of one request share their time, latency and flag objects: each is
        # converted once (`at` to SQLite's text was a tenth of the writer's time).
        seen: list[Any] = [None] * len(convert)
        done: list[Any] = [None] * len(convert)
        for row in rows:
            values = list(row)
            for j, (i, function) in enumerate(convert):
                value = values[i]
                if value is not seen[j]:
                    seen[j], done[j] = value, function(value)
                values[i] = done[j]
            params.append(values)
        if self.copy is not None:
            driver = connection.connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(self.copy) as copy:  # type: ignore[union-attr]
                for values in params:
                    copy.write_row(values)
            return
        order = self.order
        if order is None:
            named = [dict(zip(self.keys, values, strict=True)) for values in params]
            connection.exec_driver_sql(self.sql, named)
            return
        step = self.rows_per_statement
        for start in range(0, len(params), step):
            part = params[start : start + step]
            flat = tuple(values[i] for values in part for i in order)
            connection.exec_driver_sql(self._text(len(part)), flat)

    def _text(self, n: int) -> str:
        text = self._texts.get(n)
        if text is None:
            text = self._texts[n] = self._head + ", ".join([self._group] * n)
        return text


def _release(items: list[Any]) -> None:
    """Empty `items` a chunk at a time, yielding the interpreter in between.

    Freeing a flush's worth of objects at once (thousands of rows, or the tens of thousands of
    small input arrays of the requests they came from) holds the GIL for milliseconds, and
    the event loop waits that long: measured, the one-connection stalls behind the p99.
    """
    while items:
        del items[-_INSERT_CHUNK:]
        time.sleep(0)


def _json(value: Any) -> str:
    """JSON text of plain data (NaN and infinities as null, as `_plain` makes them)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an int beyond 64 bits, say: the standard library takes it
        return json.dumps(value)


def _check_ids(request_id: Any, endpoint: Any, version_id: Any) -> None:
    for key, value in (
        ("request_id", request_id),
        ("endpoint", endpoint),
        ("version_id", version_id),
    ):
        limit = _LIMITS[key]
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ValueError(f"{key} {value!r} must be a non-empty string of at most {limit}")


def _answer_rows(answer: Answered) -> list[_Row]:
    """One stored row per row of an answered request."""
    _check_ids(answer.request_id, answer.endpoint, answer.version_id)
    latency = float(answer.latency_ms)
    if not math.isfinite(latency):
        raise ValueError(f"latency_ms {latency!r} must be finite")
    at = datetime.fromtimestamp(answer.at, UTC)
    try:
        inputs, outputs = _answer_json(answer, _dumps)
    except TypeError:  # a value orjson does not take as it is (an int beyond 64 bits, say)
        inputs, outputs = _answer_json(answer, _json_plain)
    request_id, endpoint, version_id = answer.request_id, answer.endpoint, answer.version_id
    shadow = bool(answer.shadow)
    logged = inputs or repeat("null")
    return [
        (request_id, endpoint, version_id, at, latency, shadow, i, logged_i, output)
        for i, (logged_i, output) in enumerate(zip(logged, outputs, strict=False))
    ]


def _answer_json(answer: Answered, dumps: Callable[[Any], str]) -> tuple[list[str], list[str]]:
    """Each row's inputs (empty when not logged) and outputs as JSON text."""
    labels = answer.labels.tolist()
    n = len(labels)
    if answer.probabilities is not None:
        table = answer.probabilities.tolist()
        classes = [str(c) for c in (answer.classes or range(len(table[0])))]
        outputs = [
            dumps({"label": label, "probabilities": dict(zip(classes, p, strict=True))})
            for label, p in zip(labels, table, strict=True)
        ]
    else:
        outputs = [dumps({"label": label}) for label in labels]
    inputs: list[str] = []
    if answer.inputs is not None:
        names = list(answer.inputs)
        columns = [column.tolist() for column in answer.inputs.values()]
        if any(len(c) != n for c in columns):
            raise ValueError(f"the input columns do not all have {n} values, one per label")
        inputs = [
            dumps(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)
        ]
    return inputs, outputs


def _dumps(value: Any) -> str:
    """JSON text, fast: orjson writes NaN and infinities as null and takes NumPy scalars and
    datetimes; anything else is a TypeError (then `_json_plain` takes the value)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _json_plain(value: Any) -> str:
    return _json(_plain(value))


def _row(item: Mapping[str, Any], default_at: datetime) -> _Row:
    request_id, endpoint, version_id = (item[k] for k in ("request_id", "endpoint", "version_id"))
    _check_ids(request_id, endpoint, version_id)
    at = item.get("at") or default_at
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError(f"at {at!r} must be a timezone-aware datetime")
    latency = float(item.get("latency_ms") or 0.0)
    if not math.isfinite(latency):
        raise ValueError(f"latency_ms {latency!r} must be finite")
    outputs = _plain(item["outputs"])
    if not isinstance(outputs, dict):
        raise ValueError(f"outputs must be a dict, not {type(outputs).__name__}")
    inputs = _plain(item.get("inputs"))
    if inputs is not None and not isinstance(inputs, dict):
        raise ValueError(f"inputs must be a dict or None, not {type(inputs).__name__}")
    shadow = bool(item.get("shadow", False))
    row = int(item.get("row", 0))
    return (
        request_id,
        endpoint,
        version_id,
        at,
        latency,
        shadow,
        row,
        _json(inputs),
        _json(outputs),
    )


def _plain(value: Any) -> Any:
    """JSON-safe data: NumPy scalars and arrays become Python numbers and lists, NaN None."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_OPEN: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for prediction_log in list(_OPEN):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            prediction_log.close()


# -- reading back -------------------------------------------------------------------------------


def read_predictions(
    ws: Workspace,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Prediction]:
    """Logged predictions of an endpoint, oldest first; `since` inclusive, `until` exclusive."""
    with ws.db.read() as s:
        _check_endpoint(s, endpoint)
        query = select(PredictionRow).where(PredictionRow.endpoint == endpoint)
        if since is not None:
            query = query.where(PredictionRow.at >= since)
        if until is not None:
            query = query.where(PredictionRow.at < until)
        query = query.order_by(PredictionRow.at, PredictionRow.id)
        if limit is not None:
            query = query.limit(limit)
        return [_prediction(r) for r in s.scalars(query)]


def record_feedback(
    ws: Workspace, endpoint: str, items: Sequence[Mapping[str, Any]]
) -> FeedbackResult:
    """Store ground-truth labels for logged requests: {request_id, row (default 0), label}.

    Items whose request id (and row) the endpoint never logged are counted and reported, not
    stored. A later label for the same row replaces the earlier one in `labelled()`.

        >>> record_feedback(ws, "credit", [{"request_id": "r1", "label": "yes"},
        ...                                {"request_id": "nope", "label": "no"}])
        FeedbackResult(matched=1, unknown=1, unknown_ids=['nope'])
    """
    if len(items) > _MAX_FEEDBACK:
        raise Invalid(
            f"{len(items):,} feedback items in one call; send at most {_MAX_FEEDBACK:,} at a time."
        )
    wanted = [_feedback_item(i, item) for i, item in enumerate(items)]
    now = datetime.now(UTC)
    with ws.db.write() as s:
        _check_endpoint(s, endpoint)
        known: set[tuple[str, int]] = set()
        ids = sorted({request_id for request_id, _, _ in wanted})
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            found = s.execute(
                select(PredictionRow.request_id, PredictionRow.row)
                .where(PredictionRow.endpoint == endpoint, PredictionRow.request_id.in_(chunk))
                .distinct()
            )
            known.update((request_id, row) for request_id, row in found)
        matched = [(rid, row, label) for rid, row, label in wanted if (rid, row) in known]
        unknown = [rid for rid, row, _ in wanted if (rid, row) not in known]
        if matched:
            s.execute(
                insert(_FEEDBACK),
                [
                    {"endpoint": endpoint, "request_id": rid, "row": row, "label": label, "at": now}
                    for rid, row, label in matched
                ],
            )
    return FeedbackResult(
        matched=len(matched),
        unknown=len(unknown),
        unknown_ids=list(dict.fromkeys(unknown))[:_UNKNOWN_SHOWN],
    )


def labelled(
    ws: Workspace,
    endpoint: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[LabelledPrediction]:
    """Logged predictions (shadow copies too) that have a label, with the latest label each."""
    latest = (
        select(FeedbackRow.request_id, FeedbackRow.row, func.max(FeedbackRow.id).label("fid"))
        .where(FeedbackRow.endpoint == endpoint)
        .group_by(FeedbackRow.request_id, FeedbackRow.row)
        .subquery()
    )
    query = (
        select(PredictionRow, FeedbackRow.label, FeedbackRow.at)
        .join(
            latest,
            (latest.c.request_id == PredictionRow.request_id) & (latest.c.row == PredictionRow.row),
        )
        .join(FeedbackRow, FeedbackRow.id == latest.c.fid)
        .where(PredictionRow.endpoint == endpoint)
    )
    if since is not None:
        query = query.where(PredictionRow.at >= since)
    if until is not None:
        query = query.where(PredictionRow.at < until)
    query = query.order_by(PredictionRow.at, PredictionRow.id)
    with ws.db.read() as s:
        _check_endpoint(s, endpoint)
        return [
            LabelledPrediction(
                request_id=p.request_id,
                row=p.row,
                version_id=p.version_id,
                shadow=p.shadow,
                at=p.at,
                inputs=p.inputs,
                outputs=p.outputs,
                label=label,
                labelled_at=labelled_at,
            )
            for p, label, labelled_at in s.execute(query)
        ]


def _feedback_item(index: int, item: Mapping[str, Any]) -> tuple[str, int, Any]:
    request_id = item.get("request_id") if isinstance(item, Mapping) else None
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise Invalid(
            f"feedback item {index}: request_id {request_id!r} must be the id a prediction "
            "returned (a non-empty string of at most 128 characters)."
        )
    if "label" not in item:
        raise Invalid(f"feedback item {index} (request {request_id}) has no 'label'.")
    row = item.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        raise Invalid(
            f"feedback item {index} (request {request_id}): row {row!r} must be the row's "
            "position in its request (0, 1, ...)."
        )
    return request_id, row, _plain(item["label"])


def _check_endpoint(s: Session, endpoint: str) -> None:
    if s.get(EndpointRow, endpoint) is None:
        raise unknown_endpoint(s, endpoint)


def _prediction(row: PredictionRow) -> Prediction:
    return Prediction(
        request_id=row.request_id,
        endpoint=row.endpoint,
        version_id=row.version_id,
        at=row.at,
        latency_ms=row.latency_ms,
        shadow=row.shadow,
        row=row.row,
        inputs=row.inputs,
        outputs=row.outputs,
    )
