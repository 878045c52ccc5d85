"""Windows of the prediction log, read back as columns: the monitor's view of production.

The serving layer writes the log as segments (`store.logsegments`: a flush's rows of one
endpoint as one Parquet file). `scan()` reads the segments that overlap a time range of one
endpoint, one at a time, keeps the rows asked for and hands them on in chunks of NumPy columns
(memory is bounded by the chunk and one segment however long the window) that a `WindowSketch`
takes in one vectorised update.
`labelled()` does the same for rows that received a feedback label (the latest label wins).

    >>> for chunk in scan(ws, "credit", start, end, version_id=champion.id):
    ...     sketch.update(chunk.inputs, rows=chunk.rows)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, NotFound
from shipyard.store import logsegments
from shipyard.store.logsegments import Rows
from shipyard.store.tables import EndpointRow, FeedbackRow
from shipyard.store.workspace import Workspace

CHUNK_ROWS = 20_000
MAX_WINDOWS = 1_000


@dataclass
class LogChunk:
    """Consecutive logged rows of one endpoint as columns (object arrays keep JSON values)."""

    rows: int
    request_ids: np.ndarray
    positions: np.ndarray  # the row's position in its request
    version_ids: np.ndarray
    at: np.ndarray  # datetime64[us], UTC
    latency_ms: np.ndarray
    shadow: np.ndarray
    inputs: dict[str, np.ndarray]
    labels: np.ndarray  # the predicted label (class or number)
    scores: np.ndarray | None  # probability of the positive (last) class, when known
    probabilities: list[dict[str, float] | None] = field(default_factory=list)
    truth: np.ndarray | None = None  # feedback labels (only from `labelled()`)
    errors: np.ndarray | None = None  # True where the server failed (5xx) instead of answering

    def answered(self) -> LogChunk:
        """The rows that were answered (the server's failures left out)."""
        if self.errors is None or not self.errors.any():
            return self
        keep = np.flatnonzero(~self.errors)
        return _take(self, keep, self.truth[keep] if self.truth is not None else None)


def check_endpoint(ws: Workspace, endpoint: str) -> None:
    """NotFound naming the known endpoints when `endpoint` does not exist."""
    with ws.db.read() as s:
        _check_endpoint(s, endpoint)


def scan(
    ws: Workspace,
    endpoint: str,
    start: datetime | None,
    end: datetime | None,
    *,
    version_id: str | None = None,
    shadow: bool | None = False,
    features: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[LogChunk]:
    """Logged rows of `endpoint` with `start <= at < end`, oldest first, in chunks.

    `shadow=False` reads what clients were answered, `True` only shadow copies, `None` both.
    `features` fixes the input columns (absent ones come back as missing); by default, the
    columns seen in the chunk.
    """
    if chunk_rows < 1:
        raise Invalid(f"chunk_rows={chunk_rows} must be at least 1.")
    held: list[Rows] = []
    count = 0
    # One snapshot from the listing to the last segment: the server merges small segments
    # (logsegments.compact) while a scan runs, and a segment listed here must stay readable.
    with logsegments.snapshot(ws.db) as s:
        _check_endpoint(s, endpoint)
        for info in logsegments.segments(s, endpoint, start, end):
            rows = logsegments.read_rows(s, info, start, end)
            mask = np.ones(rows.n, dtype=bool)
            if version_id is not None:
                mask &= rows.version_ids == version_id
            if shadow is not None:
                mask &= rows.shadow == shadow
            if not mask.all():
                rows = rows.take(mask)
            first = 0
            while first < rows.n:  # the segment's rows, as much of each chunk as they fill
                stop = min(rows.n, first + chunk_rows - count)
                part = rows if stop - first == rows.n else rows.take(np.arange(first, stop))
                held.append(part)
                count += part.n
                first = stop
                if count == chunk_rows:
                    yield _chunk(held, features)
                    held, count = [], 0
    if count:
        yield _chunk(held, features)


def labelled(
    ws: Workspace,
    endpoint: str,
    start: datetime | None,
    end: datetime | None,
    *,
    version_id: str | None = None,
    shadow: bool | None = False,
    features: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[LogChunk]:
    """Like `scan()`, only rows that have a feedback label, with the latest one in `truth`.

    Labels are looked up per chunk by request id (an index look-up), not joined in SQL: a join
    with a time range makes SQLite range-scan the log once per label.
    """
    for chunk in scan(
        ws,
        endpoint,
        start,
        end,
        version_id=version_id,
        shadow=shadow,
        features=features,
        chunk_rows=chunk_rows,
    ):
        chunk = chunk.answered()
        found = _labels(ws, endpoint, sorted(set(chunk.request_ids.tolist())))
        keys = zip(chunk.request_ids.tolist(), chunk.positions.tolist(), strict=True)
        hits = [(i, found[k]) for i, k in enumerate(keys) if k in found]
        if not hits:
            continue
        keep = np.array([i for i, _ in hits], dtype=np.int64)
        truth = np.empty(len(hits), dtype=object)
        truth[:] = [label for _, label in hits]
        yield _take(chunk, keep, truth)


def window_bounds(end: datetime, size: timedelta, count: int) -> list[tuple[datetime, datetime]]:
    """`count` consecutive windows of `size` ending at `end`, oldest first."""
    if size <= timedelta(0):
        raise Invalid(f"window {size} must be positive (for example 1h).")
    if not 1 <= count <= MAX_WINDOWS:
        raise Invalid(f"{count} windows asked for; give 1 to {MAX_WINDOWS}.")
    first = end - size * count
    return [(first + size * i, first + size * (i + 1)) for i in range(count)]


# -- internals ----------------------------------------------------------------------------------

_LOOKUP = 500  # request ids per IN (...) query


def _labels(ws: Workspace, endpoint: str, request_ids: Sequence[str]) -> dict[tuple[str, int], Any]:
    """(request id, row) → the latest label fed back for it."""
    out: dict[tuple[str, int], tuple[int, Any]] = {}
    with ws.db.read() as s:
        for first in range(0, len(request_ids), _LOOKUP):
            part = request_ids[first : first + _LOOKUP]
            query = select(
                FeedbackRow.id, FeedbackRow.request_id, FeedbackRow.row, FeedbackRow.label
            )
            query = query.where(FeedbackRow.endpoint == endpoint, FeedbackRow.request_id.in_(part))
            for fid, rid, row, value in s.execute(query):
                seen = out.get((rid, row))
                if seen is None or fid > seen[0]:
                    out[(rid, row)] = (fid, value)
    return {key: value for key, (_, value) in out.items()}


def _take(chunk: LogChunk, keep: np.ndarray, truth: np.ndarray | None) -> LogChunk:
    return LogChunk(
        rows=len(keep),
        request_ids=chunk.request_ids[keep],
        positions=chunk.positions[keep],
        version_ids=chunk.version_ids[keep],
        at=chunk.at[keep],
        latency_ms=chunk.latency_ms[keep],
        shadow=chunk.shadow[keep],
        inputs={name: values[keep] for name, values in chunk.inputs.items()},
        labels=chunk.labels[keep],
        scores=chunk.scores[keep] if chunk.scores is not None else None,
        probabilities=[chunk.probabilities[i] for i in keep.tolist()],
        truth=truth,
        errors=chunk.errors[keep] if chunk.errors is not None else None,
    )


def _chunk(parts: Sequence[Rows], features: Sequence[str] | None) -> LogChunk:
    """Consecutive rows (of one or more segments) as one chunk."""
    n = sum(p.n for p in parts)
    if features is None:
        names: dict[str, None] = {}
        for part in parts:
            names.update(dict.fromkeys(part.inputs))
        features = list(names)
    inputs = {name: _concat([_input(p, name) for p in parts]) for name in features}
    probabilities: list[dict[str, float] | None] = []
    for part in parts:
        outputs = [part.output(i) for i in range(part.n)]
        probabilities += [o.get("probabilities") for o in outputs]
    return LogChunk(
        rows=n,
        request_ids=_concat([p.request_ids for p in parts]),
        positions=_concat([p.positions for p in parts]),
        version_ids=_concat([p.version_ids for p in parts]),
        at=_concat([p.at for p in parts]),
        latency_ms=_concat([p.latency_ms for p in parts]),
        shadow=_concat([p.shadow for p in parts]),
        inputs=inputs,
        labels=_concat([p.labels for p in parts]),
        scores=_positive_scores(probabilities),
        probabilities=probabilities,
        errors=_concat([p.errors for p in parts]),
    )


def _input(part: Rows, name: str) -> np.ndarray:
    """A part's values of an input column; None (as objects) where it has none or where the
    row's inputs were not logged."""
    values = part.inputs.get(name)
    if values is None:
        return np.full(part.n, None, dtype=object)
    if part.logged.all():
        return values
    out = values.astype(object)
    out[~part.logged] = None
    return out


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    if len({a.dtype for a in arrays}) > 1:  # numbers in one segment, objects in another
        arrays = [a.astype(object) for a in arrays]
    return np.concatenate(arrays)


def _positive_scores(probabilities: Sequence[dict[str, float] | None]) -> np.ndarray | None:
    """The last class's probability per row (the positive class of a binary model)."""
    if not probabilities or probabilities[0] is None:
        return None
    out = np.full(len(probabilities), np.nan)
    for i, p in enumerate(probabilities):
        if p:
            out[i] = float(list(p.values())[-1])
    return out


def _check_endpoint(s: Session, endpoint: str) -> None:
    if s.get(EndpointRow, endpoint) is None:
        names = list(s.scalars(select(EndpointRow.name).order_by(EndpointRow.name).limit(20)))
        known = f"known endpoints: {', '.join(names)}" if names else "there are no endpoints yet"
        raise NotFound(f"endpoint {endpoint!r} does not exist ({known}).")
