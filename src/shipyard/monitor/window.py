"""Windows of the prediction log, read back as columns: the monitor's view of production.

The serving layer writes one row per answered row of a request (`store.tables.PredictionRow`:
inputs and outputs as JSON objects). `scan()` reads a time range of one endpoint in chunks
(keyset pagination on the row id, so memory is bounded by the chunk however long the window)
and turns each chunk into NumPy columns that a `WindowSketch` takes in one vectorised update.
`labelled()` does the same for rows that received a feedback label (the latest label wins).

    >>> for chunk in scan(ws, "credit", start, end, version_id=champion.id):
    ...     sketch.update(chunk.inputs, rows=chunk.rows)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, NotFound
from shipyard.store.tables import EndpointRow, FeedbackRow, PredictionRow
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
    check_endpoint(ws, endpoint)
    query = _where(select(*_COLUMNS), endpoint, start, end, version_id, shadow)
    yield from _chunks(ws, query, features, chunk_rows, with_truth=False)


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
    """Like `scan()`, only rows that have a feedback label, with it in `truth`."""
    check_endpoint(ws, endpoint)
    latest = (
        select(FeedbackRow.request_id, FeedbackRow.row, func.max(FeedbackRow.id).label("fid"))
        .where(FeedbackRow.endpoint == endpoint)
        .group_by(FeedbackRow.request_id, FeedbackRow.row)
        .subquery()
    )
    query = (
        select(*_COLUMNS, FeedbackRow.label)
        .join(
            latest,
            (latest.c.request_id == PredictionRow.request_id) & (latest.c.row == PredictionRow.row),
        )
        .join(FeedbackRow, FeedbackRow.id == latest.c.fid)
    )
    query = _where(query, endpoint, start, end, version_id, shadow)
    yield from _chunks(ws, query, features, chunk_rows, with_truth=True)


def window_bounds(end: datetime, size: timedelta, count: int) -> list[tuple[datetime, datetime]]:
    """`count` consecutive windows of `size` ending at `end`, oldest first."""
    if size <= timedelta(0):
        raise Invalid(f"window {size} must be positive (for example 1h).")
    if not 1 <= count <= MAX_WINDOWS:
        raise Invalid(f"{count} windows asked for; give 1 to {MAX_WINDOWS}.")
    first = end - size * count
    return [(first + size * i, first + size * (i + 1)) for i in range(count)]


def first_prediction(
    ws: Workspace, endpoint: str, version_id: str | None = None
) -> datetime | None:
    """When the endpoint (or one version on it) first answered, or None."""
    query = select(func.min(PredictionRow.at)).where(PredictionRow.endpoint == endpoint)
    if version_id is not None:
        query = query.where(PredictionRow.version_id == version_id)
    with ws.db.read() as s:
        found = s.scalar(query)
    return found


# -- internals ----------------------------------------------------------------------------------

_COLUMNS = (
    PredictionRow.id,
    PredictionRow.request_id,
    PredictionRow.version_id,
    PredictionRow.at,
    PredictionRow.latency_ms,
    PredictionRow.shadow,
    PredictionRow.inputs,
    PredictionRow.outputs,
    PredictionRow.row,
)


def _where(
    query: Select[Any],
    endpoint: str,
    start: datetime | None,
    end: datetime | None,
    version_id: str | None,
    shadow: bool | None,
) -> Select[Any]:
    query = query.where(PredictionRow.endpoint == endpoint)
    if start is not None:
        query = query.where(PredictionRow.at >= start)
    if end is not None:
        query = query.where(PredictionRow.at < end)
    if version_id is not None:
        query = query.where(PredictionRow.version_id == version_id)
    if shadow is not None:
        query = query.where(PredictionRow.shadow == shadow)
    return query


def _chunks(
    ws: Workspace,
    query: Select[Any],
    features: Sequence[str] | None,
    chunk_rows: int,
    *,
    with_truth: bool,
) -> Iterator[LogChunk]:
    if chunk_rows < 1:
        raise Invalid(f"chunk_rows={chunk_rows} must be at least 1.")
    after = -1
    while True:
        page = query.where(PredictionRow.id > after).order_by(PredictionRow.id).limit(chunk_rows)
        with ws.db.read() as s:
            rows = s.execute(page).all()
        if not rows:
            return
        after = rows[-1][0]
        yield _chunk(rows, features, with_truth=with_truth)
        if len(rows) < chunk_rows:
            return


def _chunk(rows: Sequence[Any], features: Sequence[str] | None, *, with_truth: bool) -> LogChunk:
    n = len(rows)
    inputs_list = [r[6] for r in rows]
    outputs = [r[7] or {} for r in rows]
    if features is None:
        names: dict[str, None] = {}
        for item in inputs_list:
            if item:
                names.update(dict.fromkeys(item))
        features = list(names)
    inputs: dict[str, np.ndarray] = {}
    for name in features:
        column = np.empty(n, dtype=object)
        column[:] = [item.get(name) if item else None for item in inputs_list]
        inputs[name] = column
    labels = np.empty(n, dtype=object)
    labels[:] = [o.get("label") for o in outputs]
    probabilities = [o.get("probabilities") for o in outputs]
    scores = _positive_scores(probabilities)
    truth = None
    if with_truth:
        truth = np.empty(n, dtype=object)
        truth[:] = [r[9] for r in rows]
    return LogChunk(
        rows=n,
        request_ids=np.array([r[1] for r in rows], dtype=object),
        positions=np.array([r[8] for r in rows], dtype=np.int64),
        version_ids=np.array([r[2] for r in rows], dtype=object),
        at=np.array([_naive_utc(r[3]) for r in rows], dtype="datetime64[us]"),
        latency_ms=np.array([r[4] for r in rows], dtype=np.float64),
        shadow=np.array([bool(r[5]) for r in rows], dtype=bool),
        inputs=inputs,
        labels=labels,
        scores=scores,
        probabilities=probabilities,
        truth=truth,
    )


def _positive_scores(probabilities: Sequence[dict[str, float] | None]) -> np.ndarray | None:
    """The last class's probability per row (the positive class of a binary model)."""
    if not probabilities or probabilities[0] is None:
        return None
    out = np.full(len(probabilities), np.nan)
    for i, p in enumerate(probabilities):
        if p:
            out[i] = float(list(p.values())[-1])
    return out


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _check_endpoint(s: Session, endpoint: str) -> None:
    if s.get(EndpointRow, endpoint) is None:
        names = list(s.scalars(select(EndpointRow.name).order_by(EndpointRow.name).limit(20)))
        known = f"known endpoints: {', '.join(names)}" if names else "there are no endpoints yet"
        raise NotFound(f"endpoint {endpoint!r} does not exist ({known}).")
