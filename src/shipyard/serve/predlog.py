"""The prediction log: every answered row, written off the hot path; feedback labels joined.

`PredictionLog.append()` only extends an in-memory list under a lock (microseconds). A
background thread writes the buffer in one bulk insert (SQLAlchemy Core) every
`flush_seconds`, or sooner when it fills; `flush()` writes now and `close()` writes whatever
is left, so a row `append()` accepted is never lost on a graceful shutdown. When the database
falls behind and the buffer holds `max_buffer` rows, `append()` refuses new rows (it returns
how many it accepted, and `dropped` counts the rest) instead of growing without bound.

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
import logging
import math
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, NotFound, Unavailable
from shipyard.core.records import FeedbackResult, LabelledPrediction, Prediction
from shipyard.store.tables import EndpointRow, FeedbackRow, PredictionRow
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve.predlog")

_PREDICTIONS = cast(Table, PredictionRow.__table__)
_FEEDBACK = cast(Table, FeedbackRow.__table__)
REQUIRED = frozenset({"request_id", "endpoint", "version_id", "outputs"})
_INSERT_CHUNK = 5_000  # rows per executemany inside one transaction
_LOOKUP_CHUNK = 500  # request ids per IN (...) query
_MAX_FEEDBACK = 100_000
_UNKNOWN_SHOWN = 20
_LIMITS = {"request_id": 128, "endpoint": 64, "version_id": 32}


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
        self._buffer: list[tuple[datetime, Sequence[Mapping[str, Any]]]] = []
        self._retry: list[dict[str, Any]] = []  # checked rows a failed write put back
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
        now = datetime.now(UTC)
        with self._lock:
            if self._closed or self._pending + len(rows) > self.max_buffer:
                self.dropped += len(rows)
                accepted = 0
            else:
                self._buffer.append((now, rows))
                self._pending += len(rows)
                accepted = len(rows)
            full = self._pending >= self._flush_rows
        if full:
            self._wake.set()
        if not accepted:
            self._warn_dropped(len(rows))
        return accepted

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written."""
        return self._pending

    # -- writing --------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write every accepted row now; returns how many were written.

        On a database error the rows stay buffered for the next attempt and the error is
        raised as Unavailable.
        """
        with self._flush_lock:
            with self._lock:
                taken, self._buffer = self._buffer, []
                count = self._pending
            if not taken and not self._retry:
                return 0
            params = [*self._retry, *self._params(taken)]
            self._retry = []
            try:
                if params:
                    with self.ws.db.write() as s:
                        for start in range(0, len(params), _INSERT_CHUNK):
                            s.execute(insert(_PREDICTIONS), params[start : start + _INSERT_CHUNK])
            except Exception as exc:
                self._retry = params  # kept, in order, for the next attempt
                self.last_error = exc
                raise Unavailable(
                    f"could not write {len(params):,} predictions to the log ({exc}); they stay "
                    "buffered and are retried. Check the metadata database."
                ) from exc
            with self._lock:
                self._pending -= count
            self.written += len(params)
            self.last_error = None
            return len(params)

    def _params(
        self, taken: list[tuple[datetime, Sequence[Mapping[str, Any]]]]
    ) -> list[dict[str, Any]]:
        """Insert parameters; a row that cannot be stored is logged and left out (`rejected`)."""
        out: list[dict[str, Any]] = []
        for at, rows in taken:
            for item in rows:
                try:
                    out.append(_row(item, at))
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


def _row(item: Mapping[str, Any], default_at: datetime) -> dict[str, Any]:
    out = {key: item[key] for key in ("request_id", "endpoint", "version_id")}
    for key, limit in _LIMITS.items():
        value = out[key]
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ValueError(f"{key} {value!r} must be a non-empty string of at most {limit}")
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
    out.update(
        at=at,
        latency_ms=latency,
        shadow=bool(item.get("shadow", False)),
        row=int(item.get("row", 0)),
        inputs=inputs,
        outputs=outputs,
    )
    return out


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
        names = list(s.scalars(select(EndpointRow.name).order_by(EndpointRow.name).limit(20)))
        known = f"known endpoints: {', '.join(names)}" if names else "there are no endpoints yet"
        raise NotFound(f"endpoint {endpoint!r} does not exist ({known}).")


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
