"""The prediction log: every answered row, written off the hot path; feedback labels joined.

`PredictionLog.append()` only extends an in-memory list under a lock (microseconds). The
server's request path uses `append_answer()` instead, which keeps one request's `Answered`
record as it is (the validated input columns and the outputs as NumPy arrays) and builds no
per-row objects at all. A background thread writes what is buffered every `flush_seconds`, or
sooner when the buffer fills: the answers of one endpoint with the same columns become one
segment (`store.logsegments`: their arrays concatenated, column by column, into one Parquet
file stored in one row), so a flush costs a few bulk copies and an INSERT per segment, not
work per row. `flush()` writes now and `close()` writes whatever is left, so a row `append()`
or `append_answer()` accepted is never lost on a graceful shutdown. When the database falls
behind and the buffer holds `max_buffer` rows, both refuse new rows (they return how many they
accepted, and `dropped` counts the rest) instead of growing without bound.

Read back, each row has `inputs` as an object column → value (None where the endpoint does not
log inputs) and `outputs` as an object (`{"label": …}`, plus `"probabilities": {class: p}` for
a classifier that gives them); NaN and infinities read back as None.

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
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from types import TracebackType
from typing import Any, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, Unavailable
from shipyard.core.records import FeedbackResult, LabelledPrediction, Prediction
from shipyard.registry import get_version, with_carried
from shipyard.serve.endpoints import get_endpoint, unknown_endpoint
from shipyard.serve.inputs import Block
from shipyard.store import logsegments
from shipyard.store.logsegments import Rows
from shipyard.store.tables import EndpointRow, FeedbackRow
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve.predlog")

_FEEDBACK = cast(Table, FeedbackRow.__table__)
# A stored dict row: request_id, endpoint, version_id, at, latency_ms, shadow, row, inputs and
# outputs as JSON text.
_Row = tuple[str, str, str, datetime, float, bool, int, str | None, str]
REQUIRED = frozenset({"request_id", "endpoint", "version_id", "outputs"})
_RELEASE_CHUNK = 500  # buffered items freed between two yields of the interpreter
_MAX_FEEDBACK = 100_000
_UNKNOWN_SHOWN = 20
_LIMITS = {"request_id": 128, "endpoint": 64, "version_id": 32}


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Answered:
    """One request's answer from one version, as `PredictionLog.append_answer()` keeps it.

    `inputs` are the request's validated columns (one array per column, all of length n, as
    `shipyard.serve.inputs.Batch.columns`; `blocks` as its `Batch.blocks`, or () when no
    column shares a matrix), or None where inputs are not logged; `labels` has
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
    blocks: tuple[Block, ...] = ()  # which of `inputs` are rows of one matrix (Batch.blocks)
    schema: tuple[Any, ...] | None = None  # the inputs' `Batch.schema`, where it is known

    @property
    def n(self) -> int:
        return len(self.labels)


_Rows = tuple[datetime, Sequence[Mapping[str, Any]]]  # rows given to append(), and when


class _Pending:
    """Answers of one layout (`_layout`) waiting for the writer, kept column by column as
    they arrive: the request's thread appends a dozen references (microseconds, its memory
    still in cache), and a flush joins each column's list of arrays with one C-level call
    instead of visiting every answer again. The answers themselves are not kept (they are
    freed with their request, on its thread); `answer(i)` puts one together again where
    they must be stored one by one (`PredictionLog._answer_segments`)."""

    __slots__ = (
        "at",
        "blocks",
        "counts",
        "ids",
        "labels",
        "latency",
        "layout",
        "loose",
        "probabilities",
        "shadow",
        "versions",
    )

    def __init__(self, layout: tuple[Any, ...]) -> None:
        self.layout = layout
        names, block_names = layout[1], layout[2]
        in_blocks = {name for names_ in block_names for name in names_}
        self.ids: list[str] = []
        self.versions: list[str] = []
        self.at: list[float] = []
        self.latency: list[float] = []
        self.shadow: list[bool] = []
        self.counts: list[int] = []
        self.blocks: list[list[np.ndarray]] = [[] for _ in block_names]
        self.loose: dict[str, list[np.ndarray]] = {
            name: [] for name in names or () if name not in in_blocks
        }
        self.labels: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] = []

    @classmethod
    def of(cls, answers: Sequence[Answered]) -> _Pending:
        pending = cls(_layout(answers[0]))
        for answer in answers:
            pending.add(answer)
        return pending

    def __len__(self) -> int:
        return len(self.counts)

    def add(self, answer: Answered) -> None:
        self.ids.append(answer.request_id)
        self.versions.append(answer.version_id)
        self.at.append(answer.at)
        self.latency.append(answer.latency_ms)
        self.shadow.append(answer.shadow)
        self.counts.append(answer.n)
        if answer.inputs is not None:
            for parts, block in zip(self.blocks, answer.blocks, strict=False):
                parts.append(block.matrix)
            for name, parts in self.loose.items():
                parts.append(answer.inputs[name])
        self.labels.append(answer.labels)
        if answer.probabilities is not None:
            self.probabilities.append(answer.probabilities)

    def answer(self, i: int) -> Answered:
        """The `i`-th answer added, as it was given."""
        endpoint, names, block_names, _, _, width, classes = self.layout
        inputs: dict[str, np.ndarray] | None = None
        blocks: tuple[Block, ...] = ()
        if names is not None:
            blocks = tuple(
                Block(block, parts[i])
                for block, parts in zip(block_names, self.blocks, strict=True)
            )
            given = {
                n: v for block in blocks for n, v in zip(block.names, block.matrix, strict=True)
            }
            given.update((name, parts[i]) for name, parts in self.loose.items())
            inputs = {name: given[name] for name in names}
        return Answered(
            request_id=self.ids[i],
            endpoint=endpoint,
            version_id=self.versions[i],
            at=self.at[i],
            latency_ms=self.latency[i],
            shadow=self.shadow[i],
            inputs=inputs,
            labels=self.labels[i],
            probabilities=None if width is None else self.probabilities[i],
            classes=classes,
            blocks=blocks,
        )

    def clear(self) -> None:
        """Let go of the arrays, a list at a time (see `_release`)."""
        for parts in (self.labels, self.probabilities, *self.blocks, *self.loose.values()):
            _release(parts)


class PredictionLog:
    """Buffered, batched writer of predictions for one server process. Thread-safe."""

    def __init__(
        self,
        ws: Workspace,
        *,
        flush_seconds: float = 1.0,
        max_buffer: int = 50_000,
        compact_seconds: float = 60.0,
    ) -> None:
        if flush_seconds <= 0 or max_buffer < 1 or compact_seconds <= 0:
            raise Invalid(
                f"flush_seconds ({flush_seconds}), max_buffer ({max_buffer}) and "
                f"compact_seconds ({compact_seconds}) must be positive."
            )
        self.ws = ws
        self.flush_seconds = flush_seconds
        self.compact_seconds = compact_seconds
        self._compacted_at = time.monotonic()
        self._written_to: set[str] = set()  # endpoints written since the last compaction
        self.max_buffer = max_buffer
        self._flush_rows = max(1, max_buffer // 10)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[_Rows] = []  # from append()
        self._answers: dict[tuple[Any, ...], _Pending] = {}  # from append_answer(), by layout
        self._retry: list[_Segment] = []  # built segments a failed write put back
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
        them afterwards. Rows become Parquet only in the writer's thread."""
        n = answer.n
        if not n:
            return 0
        try:
            layout = _layout(answer)
        except Exception as exc:  # not an answer this log can hold at all
            self._reject(answer, exc)
            return 0
        return self._accept(answer, n, layout)

    def _accept(self, item: _Rows | Answered, n: int, layout: tuple[Any, ...] = ()) -> int:
        with self._lock:
            if self._closed or self._pending + n > self.max_buffer:
                self.dropped += n
                accepted = 0
            else:
                if isinstance(item, Answered):
                    pending = self._answers.get(layout)
                    if pending is None:
                        pending = self._answers[layout] = _Pending(layout)
                    pending.add(item)
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

        Each segment is committed on its own (one INSERT), so the database's write lock
        (SQLite has one per file) is held for milliseconds. On a database error the segments
        not yet committed stay for the next attempt and the error is raised as Unavailable.
        """
        with self._flush_lock:
            with self._lock:
                taken, self._buffer = self._buffer, []
                answers, self._answers = list(self._answers.values()), {}
                count = self._pending
            if not taken and not answers and not self._retry:
                return 0
            built = [*self._retry, *self._segments(taken, answers)]
            self._retry = []
            written = done = 0
            try:
                for segment in built:
                    if done:
                        time.sleep(0)  # let the event loop's thread run meanwhile
                    with self.ws.db.write() as s:
                        logsegments.insert_segment(
                            s.connection(), segment.endpoint, segment.table, segment.data
                        )
                    done += 1
                    written += segment.rows
                    self._written_to.add(segment.endpoint)
            except Exception as exc:
                self._retry = built[done:]  # kept, in order, for the next attempt
                self.last_error = exc
                rows = sum(segment.rows for segment in self._retry)
                raise Unavailable(
                    f"could not write {rows:,} predictions to the log ({exc}); they stay "
                    "buffered and are retried. Check the metadata database."
                ) from exc
            finally:
                with self._lock:  # what is still pending of what was taken: the retries
                    self._pending -= count - sum(segment.rows for segment in self._retry)
                self.written += written
            self.last_error = None
            return written

    def _segments(self, taken: list[_Rows], answers: list[_Pending]) -> list[_Segment]:
        """The segments to store; a row that cannot be stored is logged and left out
        (`rejected`). Frees what it was given as it goes."""
        rows: dict[str, list[_Row]] = {}
        for at, given in taken:
            for row in given:
                try:
                    checked = _row(row, at)
                except Exception as exc:  # one bad row must not take the others with it
                    self.rejected += 1
                    log.error("prediction log row left out: %s", exc)
                    continue
                rows.setdefault(checked[1], []).append(checked)
        _release(taken)
        out: list[_Segment] = []
        for pending in answers:
            time.sleep(0)  # let the event loop's thread run meanwhile
            out += self._answer_segments(pending)
            pending.clear()  # a chunk at a time, not all of the flush's arrays at the end
        for endpoint, dict_rows in rows.items():
            out.append(_Segment.of(endpoint, _json_table(dict_rows)))
        return out

    def _answer_segments(self, pending: _Pending) -> list[_Segment]:
        """One segment of answers that share a layout. Where that fails, the answers are
        checked one by one and those that pass make one segment again; where even that fails
        (an array of the wrong length, values Arrow cannot store as their column), each
        answer goes on its own, in the JSON layout if need be. What cannot be stored at all
        is logged and left out."""
        endpoint = pending.layout[0]
        try:
            return [_Segment.of(endpoint, _columnar(pending))]
        except Exception:
            group = [pending.answer(i) for i in range(len(pending))]
            checked = []
            for answer in group:
                try:
                    _check_answer(answer)
                except Exception as exc:
                    self._reject(answer, exc)
                    continue
                checked.append(answer)
            if checked and len(checked) < len(group):
                with contextlib.suppress(Exception):
                    return [_Segment.of(endpoint, _columnar(_Pending.of(checked)))]
            out = []
            for answer in checked:
                try:
                    out.append(_Segment.of(endpoint, _alone(answer)))
                except Exception as exc:
                    self._reject(answer, exc)
            return out

    def _reject(self, answer: Answered, exc: BaseException) -> None:
        self.rejected += answer.n
        log.error("prediction log rows of request %r left out: %s", answer.request_id, exc)

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
            if time.monotonic() - self._compacted_at >= self.compact_seconds:
                self.compact()

    def compact(self) -> int:
        """Merge the small segments of the endpoints written since the last time
        (`store.logsegments.compact`); returns how many segments were merged away. The writer
        thread does this every `compact_seconds`; a failure is logged and tried next time."""
        with self._flush_lock:
            endpoints, self._written_to = self._written_to, set()
            self._compacted_at = time.monotonic()
            gone = 0
            for endpoint in sorted(endpoints):
                try:
                    gone += logsegments.compact(self.ws.db, endpoint)
                except Exception as exc:
                    self._written_to.add(endpoint)
                    log.warning("prediction log segments of %s not merged: %s", endpoint, exc)
                time.sleep(0)  # let the event loop's thread run meanwhile
            return gone

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


def _release(items: list[Any]) -> None:
    """Empty `items` a chunk at a time, yielding the interpreter in between.

    Freeing a flush's worth of objects at once (thousands of rows, or the tens of thousands of
    small input arrays of the requests they came from) holds the GIL for milliseconds, and
    the event loop waits that long: measured, the one-connection stalls behind the p99.
    """
    while items:
        del items[-_RELEASE_CHUNK:]
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


@dataclass(frozen=True, slots=True)
class _Segment:
    """A segment built and encoded, ready to insert (or to retry)."""

    endpoint: str
    table: pa.Table
    data: bytes

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @classmethod
    def of(cls, endpoint: str, table: pa.Table) -> _Segment:
        return cls(endpoint, table, logsegments.encode(table))


def _check_answer(answer: Answered) -> None:
    _check_ids(answer.request_id, answer.endpoint, answer.version_id)
    latency = float(answer.latency_ms)
    if not math.isfinite(latency):
        raise ValueError(f"latency_ms {latency!r} must be finite")


def _layout(answer: Answered) -> tuple[Any, ...]:
    """What answers must share to go in one columnar segment: the endpoint, the input
    columns (in order, and those that are rows of one matrix, `Batch.blocks`) and their
    types, the labels' type, the number of probabilities and the classes. Built by C-level
    iteration: it runs on the request's thread."""
    inputs = answer.inputs
    names = blocks = dtypes = None
    if inputs is not None and answer.schema is not None:
        names, blocks, dtypes = answer.schema  # the same for every answer of a signature
    elif inputs is not None:
        names = tuple(inputs)
        given = answer.blocks
        if given and sum(map(len, map(_NAMES, given))) == len(names):
            blocks = tuple(map(_NAMES, given))
            dtypes = tuple(block.matrix.dtype for block in given)
        else:  # no blocks, or some columns outside them: every column on its own
            blocks, dtypes = (), tuple(map(_DTYPE, inputs.values()))
    probabilities = answer.probabilities
    return (
        answer.endpoint,
        names,
        blocks or (),
        dtypes,
        answer.labels.dtype,
        None if probabilities is None else probabilities.shape[-1],
        None if answer.classes is None else tuple(answer.classes),
    )


_NAMES = attrgetter("names")
_DTYPE = attrgetter("dtype")


def _columnar(pending: _Pending) -> pa.Table:
    """The answers of one layout as one columnar segment (`store.logsegments`)."""
    endpoint, names, block_names, _, _, width, classes = pending.layout
    counts = np.array(pending.counts, dtype=np.int64)
    total = int(counts.sum())
    ids, versions = pending.ids, pending.versions
    if total == len(counts):  # one row each: the common case, no repeats needed
        positions = np.zeros(total, dtype=np.int64)
    else:
        positions = np.concatenate([np.arange(n) for n in pending.counts])
        ids = np.repeat(np.array(ids, dtype=object), counts).tolist()
        versions = np.repeat(np.array(versions, dtype=object), counts).tolist()
    latency = np.array(pending.latency, dtype=np.float64)
    _check_group(endpoint, ids, versions, latency)
    at_us = np.repeat((np.array(pending.at, dtype=np.float64) * 1e6).astype(np.int64), counts)
    shadow = np.array(pending.shadow, dtype=bool)
    base = logsegments.base_arrays(
        ids, positions, versions, at_us, np.repeat(latency, counts), np.repeat(shadow, counts)
    )
    inputs = None
    if names is not None:
        joined: dict[str, np.ndarray] = {}
        for block, parts in zip(block_names, pending.blocks, strict=True):
            joined.update(zip(block, np.concatenate(parts, axis=1), strict=True))
        for name, parts in pending.loose.items():
            joined[name] = np.concatenate(parts)
        inputs = {name: joined[name] for name in names}
    labels = np.concatenate(pending.labels)
    probabilities = None if width is None else np.concatenate(pending.probabilities)
    return logsegments.columnar_table(base, inputs, labels, probabilities, classes)


def _check_group(endpoint: Any, ids: list[Any], versions: list[Any], latency: np.ndarray) -> None:
    """`_check_answer` for a whole group at once; which answer failed is found by checking
    them one by one (`PredictionLog._answer_segments`)."""
    for key, values in (("endpoint", [endpoint]), ("request_id", ids), ("version_id", versions)):
        lengths = set(map(len, values)) if set(map(type, values)) == {str} else {0}
        if min(lengths) == 0 or max(lengths) > _LIMITS[key]:
            raise ValueError(f"a {key} is not a non-empty string of at most {_LIMITS[key]}")
    if not np.isfinite(latency).all():
        raise ValueError("a latency_ms is not finite")


def _alone(answer: Answered) -> pa.Table:
    """One answer's segment: columnar, or (values Arrow will not take as a column) JSON."""
    try:
        return _columnar(_Pending.of([answer]))
    except Exception:
        return _json_table(_answer_rows(answer))


def _json_table(rows: Sequence[_Row]) -> pa.Table:
    """Checked dict rows (`_row`) as one segment in the JSON layout."""
    at_us = np.array([int(r[3].timestamp() * 1e6) for r in rows], dtype=np.int64)
    base = logsegments.base_arrays(
        [r[0] for r in rows],
        np.array([r[6] for r in rows], dtype=np.int64),
        [r[2] for r in rows],
        at_us,
        np.array([r[4] for r in rows], dtype=np.float64),
        np.array([r[5] for r in rows], dtype=bool),
    )
    return logsegments.json_table(base, [r[7] for r in rows], [r[8] for r in rows])


def _answer_rows(answer: Answered) -> list[_Row]:
    """One dict row per row of an answered request, inputs and outputs as JSON text."""
    at = datetime.fromtimestamp(answer.at, UTC)
    try:
        inputs, outputs = _answer_json(answer, _dumps)
    except TypeError:  # a value orjson does not take as it is (an int beyond 64 bits, say)
        inputs, outputs = _answer_json(answer, _json_plain)
    request_id, endpoint, version_id = answer.request_id, answer.endpoint, answer.version_id
    latency, shadow = float(answer.latency_ms), bool(answer.shadow)
    logged: Sequence[str | None] = inputs or [None] * len(outputs)
    return [
        (request_id, endpoint, version_id, at, latency, shadow, i, logged_i, output)
        for i, (logged_i, output) in enumerate(zip(logged, outputs, strict=True))
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
        None if inputs is None else _json(inputs),
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
    with logsegments.snapshot(ws.db) as s:  # segments merged meanwhile stay readable
        _check_endpoint(s, endpoint)
        infos = logsegments.segments(s, endpoint, since, until)
        parts = list(logsegments.scan_segments(s, infos, since, until))
    found = _in_time_order(parts)
    if limit is not None:
        found = found[:limit]
    return [_prediction(endpoint, rows, i) for rows, i in found]


def record_feedback(
    ws: Workspace, endpoint: str, items: Sequence[Mapping[str, Any]]
) -> FeedbackResult:
    """Store ground-truth labels for logged predictions: {request_id, row (default 0), label},
    or {id, label} where `id` is the value of the data set's id column that the request's row
    carried (the label then joins the latest answer, not a shadow copy, that carried it).

    Items that match nothing the endpoint logged are counted and reported, not stored (an id
    only matches where the endpoint logs inputs). A later label for the same row replaces the
    earlier one in `labelled()`.

        >>> record_feedback(ws, "credit", [{"request_id": "r1", "label": "yes"},
        ...                                {"id": "L-1001", "label": "no"},
        ...                                {"request_id": "nope", "label": "no"}])
        FeedbackResult(matched=2, unknown=1, unknown_ids=['nope'])
    """
    if len(items) > _MAX_FEEDBACK:
        raise Invalid(
            f"{len(items):,} feedback items in one call; send at most {_MAX_FEEDBACK:,} at a time."
        )
    given = [_feedback_item(i, item) for i, item in enumerate(items)]
    by_id = sorted({key for kind, key, _, _ in given if kind == "id"})
    column = _id_column(ws, endpoint) if by_id else None
    now = datetime.now(UTC)
    with ws.db.write() as s:
        _check_endpoint(s, endpoint)
        found = _rows_of_ids(s, endpoint, column, by_id) if column else {}
        wanted = [
            (key, row, label, key)
            if kind == "request_id"
            else (*found.get(key, ("", 0)), label, key)
            for kind, key, row, label in given
        ]
        known = _logged_rows(s, endpoint, sorted({rid for rid, _, _, _ in wanted if rid}))
        matched = [(rid, row, label) for rid, row, label, _ in wanted if (rid, row) in known]
        unknown = [key for rid, row, _, key in wanted if (rid, row) not in known]
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


def _id_column(ws: Workspace, endpoint: str) -> str:
    """The id column of the data the endpoint's champion was trained on (Invalid if none)."""
    champion = get_endpoint(ws, endpoint).champion_ref
    version = get_version(ws, champion)
    column = with_carried(ws, version, version.signature).id_column
    if column is None:
        raise Invalid(
            f"feedback by 'id' joins on the data set's id column, but {champion}, the champion "
            f"of endpoint {endpoint!r}, was trained on data that declares none (data.id in "
            "shipyard.yaml); send the request_id each prediction returned instead."
        )
    return column


def _rows_of_ids(s: Session, endpoint: str, column: str, ids: list[str]) -> dict[str, Any]:
    """id → (request id, row) of the latest answer (not a shadow copy) whose row carried it.
    Every segment that logged the column is read, but only these five of its columns."""
    wanted = pa.array(ids, type=pa.string())
    name = logsegments.INPUT + column
    for attempt in range(3):
        found: dict[str, tuple[Any, str, int]] = {}  # id → (at, request id, row)
        try:
            for info in logsegments.segments(s, endpoint):
                table = logsegments.load(s, info.id, ["request_id", "row", "at", "shadow", name])
                if name in table.column_names:
                    _latest_of(table, table[name], wanted, found)
            break
        except LookupError:  # merged away since listed: list again (the rows are all kept)
            if attempt == 2:
                raise
    return {key: (rid, row) for key, (_, rid, row) in found.items()}


def _latest_of(
    table: pa.Table, values: pa.ChunkedArray, wanted: pa.Array, found: dict[str, Any]
) -> None:
    if not pa.types.is_string(values.type):  # logged as numbers (not by this server)
        values = pc.cast(values, pa.string())
    mask = pc.and_(pc.is_in(values, value_set=wanted), pc.invert(table["shadow"]))
    hits = table.filter(mask)
    for key, at, rid, row in zip(
        pc.filter(values, mask).to_pylist(),
        hits["at"].to_pylist(),
        hits["request_id"].to_pylist(),
        hits["row"].to_pylist(),
        strict=True,
    ):
        if key not in found or at >= found[key][0]:
            found[key] = (at, rid, row)


def _logged_rows(s: Session, endpoint: str, request_ids: list[str]) -> set[tuple[str, int]]:
    """The (request id, row) pairs of `request_ids` (sorted) that `endpoint` logged: only the
    segments whose request-id range takes one in are read, and of them two columns."""
    known: set[tuple[str, int]] = set()
    if not request_ids:
        return known
    wanted = pa.array(request_ids, type=pa.string())
    for attempt in range(3):
        try:
            for info in logsegments.holding(logsegments.segments(s, endpoint), request_ids):
                table = logsegments.load(s, info.id, ["request_id", "row"])
                hits = table.filter(pc.is_in(table["request_id"], value_set=wanted))
                pairs = zip(hits["request_id"].to_pylist(), hits["row"].to_pylist(), strict=True)
                known.update(pairs)
            break
        except LookupError:
            # Merged away since listed (on PostgreSQL a write transaction sees each statement's
            # own snapshot): list again; the merged segment holds the same rows, and a set
            # counts them once.
            if attempt == 2:
                raise
    return known


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
    query = select(FeedbackRow.request_id, FeedbackRow.row, FeedbackRow.label, FeedbackRow.at).join(
        latest, FeedbackRow.id == latest.c.fid
    )
    with logsegments.snapshot(ws.db) as s:
        _check_endpoint(s, endpoint)
        labels = {(rid, row): (label, at) for rid, row, label, at in s.execute(query)}
        ids = sorted({rid for rid, _ in labels})
        infos = logsegments.holding(logsegments.segments(s, endpoint, since, until), ids)
        parts = list(logsegments.scan_segments(s, infos, since, until))
    out = []
    for rows, i in _in_time_order(parts, lambda rows, i: _key(rows, i) in labels):
        label, labelled_at = labels[_key(rows, i)]
        logged = _prediction(endpoint, rows, i).model_dump(exclude=_NOT_LABELLED)
        out.append(LabelledPrediction(**logged, label=label, labelled_at=labelled_at))
    return out


def _key(rows: Rows, i: int) -> tuple[str, int]:
    """Row i's (request id, row in its request): what feedback names."""
    return str(rows.request_ids[i]), int(rows.positions[i])


def _in_time_order(
    parts: Sequence[Rows], keep: Callable[[Rows, int], bool] | None = None
) -> list[tuple[Rows, int]]:
    """(segment rows, position) of every row of `parts` (those `keep` accepts), by time, rows
    at the same time as they were written."""
    found = [
        (rows.at[i], k, i, rows)
        for k, rows in enumerate(parts)
        for i in range(rows.n)
        if keep is None or keep(rows, i)
    ]
    found.sort(key=lambda hit: hit[:3])
    return [(rows, i) for _, _, i, rows in found]


def _feedback_item(index: int, item: Mapping[str, Any]) -> tuple[str, str, int, Any]:
    """("request_id" or "id", that key as text, row, label) of one feedback item."""
    if isinstance(item, Mapping) and "id" in item and "request_id" not in item:
        return _feedback_by_id(index, item)
    request_id = item.get("request_id") if isinstance(item, Mapping) else None
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise Invalid(
            f"feedback item {index}: request_id {request_id!r} must be the id a prediction "
            "returned (a non-empty string of at most 128 characters), or send 'id', the "
            "value of the data set's id column the row carried."
        )
    if "label" not in item:
        raise Invalid(f"feedback item {index} (request {request_id}) has no 'label'.")
    row = item.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        raise Invalid(
            f"feedback item {index} (request {request_id}): row {row!r} must be the row's "
            "position in its request (0, 1, ...)."
        )
    return "request_id", request_id, row, _plain(item["label"])


def _feedback_by_id(index: int, item: Mapping[str, Any]) -> tuple[str, str, int, Any]:
    value = item["id"]
    if type(value) is int or (type(value) is float and value.is_integer()):
        value = str(int(value))  # as the server logs an id (serve.inputs)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise Invalid(
            f"feedback item {index}: id {value!r} must be the value of the data set's id "
            "column that the predicted row carried (text or a whole number)."
        )
    if "row" in item:
        raise Invalid(
            f"feedback item {index} (id {value}): 'row' goes with 'request_id'; an id names "
            "its row already."
        )
    if "label" not in item:
        raise Invalid(f"feedback item {index} (id {value}) has no 'label'.")
    return "id", value, 0, _plain(item["label"])


def _check_endpoint(s: Session, endpoint: str) -> None:
    if s.get(EndpointRow, endpoint) is None:
        raise unknown_endpoint(s, endpoint)


# what a labelled prediction leaves out of a logged one (endpoint, latency)
_NOT_LABELLED = set(Prediction.model_fields) - set(LabelledPrediction.model_fields)


def _prediction(endpoint: str, rows: Rows, i: int) -> Prediction:
    return Prediction(
        request_id=str(rows.request_ids[i]),
        endpoint=endpoint,
        version_id=str(rows.version_ids[i]),
        at=_aware(rows.at[i]),
        latency_ms=float(rows.latency_ms[i]),
        shadow=bool(rows.shadow[i]),
        row=int(rows.positions[i]),
        inputs=rows.input(i),
        outputs=rows.output(i),
    )


def _aware(at: np.datetime64) -> datetime:
    return cast(datetime, at.astype("datetime64[us]").item()).replace(tzinfo=UTC)
