"""Hands answered requests to the prediction log, turning columns into rows off the event loop.

The request handler only puts one small entry on a queue (the request's columns and outputs as
NumPy arrays); a thread turns each entry into one row per prediction and appends them to the
`PredictionLog`, whose own thread writes them to the database in bulk.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from shipyard.serve.fastpath import Output
from shipyard.serve.inputs import Batch
from shipyard.serve.predlog import PredictionLog

log = logging.getLogger("shipyard.serve")


@dataclass(frozen=True, slots=True)
class Entry:
    """One request's answer from one version (primary or shadow)."""

    request_id: str
    endpoint: str
    version_id: str
    at: datetime
    latency_ms: float
    shadow: bool
    output: Output
    inputs: Batch | None  # None when the endpoint's flag log_inputs=off


class LogWriter:
    """`put()` from the event loop (cheap); `flush()` and `close()` from a worker thread."""

    def __init__(self, predictions: PredictionLog) -> None:
        self.predictions = predictions
        self._queue: queue.Queue[Entry | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="shipyard-logwriter", daemon=True)
        self._thread.start()

    def put(self, entry: Entry) -> None:
        self._queue.put_nowait(entry)

    def flush(self) -> None:
        """Every entry put so far is in the database when this returns (blocking)."""
        self._queue.join()
        self.predictions.flush()

    def close(self) -> None:
        """Write everything put so far, then stop (blocking)."""
        self._queue.put(None)
        self._thread.join()
        self.predictions.close()

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                if entry is None:
                    return
                self.predictions.append(rows(entry))
            except Exception:  # a bad entry must not stop the log
                log.exception("could not log the predictions of request %s", entry)
            finally:
                self._queue.task_done()


def rows(entry: Entry) -> list[dict[str, Any]]:
    """One prediction-log row per row of the request."""
    out = entry.output
    labels = out.labels.tolist()
    probabilities: list[dict[str, Any]] | None = None
    if out.probabilities is not None:
        classes = [str(c) for c in (out.classes or range(out.probabilities.shape[1]))]
        probabilities = [dict(zip(classes, p, strict=True)) for p in out.probabilities.tolist()]
    inputs: list[dict[str, Any]] | None = None
    if entry.inputs is not None:
        names = list(entry.inputs.columns)
        columns = [_values(entry.inputs.columns[name]) for name in names]
        inputs = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    result = []
    for i, label in enumerate(labels):
        outputs: dict[str, Any] = {"label": label}
        if probabilities is not None:
            outputs["probabilities"] = probabilities[i]
        result.append(
            {
                "request_id": entry.request_id,
                "endpoint": entry.endpoint,
                "version_id": entry.version_id,
                "at": entry.at,
                "latency_ms": entry.latency_ms,
                "shadow": entry.shadow,
                "row": i,
                "inputs": inputs[i] if inputs is not None else None,
                "outputs": outputs,
            }
        )
    return result


def _values(column: np.ndarray) -> list[Any]:
    return column.tolist()  # NaN → None and datetimes → text happen in PredictionLog
