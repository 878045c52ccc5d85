"""ONNX Runtime in serving: a version's accepted ONNX graph answers when it is the faster way.

`shipyard models onnx REF --check FILE` keeps a graph only if it matches the pipeline within a
tolerance on held-out rows (`registry.onnx`). When such a version is loaded for serving,
`prefer_onnx` checks the graph again on the compiled predictor's probe rows (every category, a
missing value in every column, an unknown category; as one batch and a row at a time) against
the compiled predictor, within the tolerance it was accepted at, then times both on one row
and on a batch of `max_batch` rows: the graph is used only if it matches and is faster on
both. Otherwise the compiled predictor stays, and the reason is logged and kept in
`Predictor.reason`. (Measured: trees in NumPy or LightGBM's booster are usually faster than
onnxruntime for one row; a random forest through scikit-learn is not.)

A graph takes one `[n, 1]` input per column: float32 for numbers, strings for the rest, a
missing string fed as the fill value its imputer would have used (`registry.onnx`). Its session
runs on `threads` intra-op threads, as the other predictors do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shipyard.core.records import ModelVersion
from shipyard.serve.fastpath import Output, Predictor, probe_batch
from shipyard.serve.inputs import Batch
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve")
_TIMING_CALLS = 30


class OnnxEstimate:
    """`predict(batch)` through an onnxruntime session of an accepted graph."""

    def __init__(self, model: Any, classes: list[str] | None) -> None:
        self.model = model  # registry.onnx.OnnxModel
        self.classes = classes
        self._names = [i.name for i in model.session.get_inputs()]

    def __call__(self, batch: Batch) -> Output:
        feed = {}
        for name, column in zip(self._names, self.model.columns, strict=True):
            values = batch.columns[column]
            fill = self.model.strings.get(column)
            if fill is not None:
                texts = [fill if v is None else str(v) for v in values.tolist()]
                feed[name] = np.array(texts, dtype=object).reshape(-1, 1)
            else:
                feed[name] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
        outputs = self.model.session.run(None, feed)
        if self.model.output == "probabilities":
            probabilities = np.asarray(outputs[1], dtype=np.float64)
            labels = np.asarray(self.classes, dtype=object)[np.argmax(probabilities, axis=1)]
            return Output(labels, probabilities, self.classes)
        return Output(np.asarray(outputs[0], dtype=np.float64).ravel(), None, self.classes)


Timer = Callable[
    [Callable[[Batch], Output], Callable[[Batch], Output], Batch, int],
    tuple[list[float], list[float]],
]


def prefer_onnx(
    ws: Workspace,
    version: ModelVersion,
    compiled: Predictor,
    *,
    max_batch: int = 64,
    timer: Timer | None = None,
) -> Predictor:
    """`compiled`, or a predictor running the version's accepted ONNX graph when that one
    matches it on the probe rows and is faster (see the module's docstring). `timer` times
    both (default: medians of repeated calls on one row and on `max_batch` rows)."""
    from shipyard.registry.onnx import RECORD_DOCUMENT

    if RECORD_DOCUMENT not in version.documents or not compiled.fast:
        return compiled
    try:
        from shipyard.registry import load_onnx

        model = load_onnx(ws, version.ref, threads=compiled.threads)
        tolerance = float(model.tolerance)
        estimate = OnnxEstimate(model, compiled.classes)
        probe = probe_batch(compiled)
        problem = _differs(estimate, compiled.predict, probe, tolerance)
    except Exception as exc:  # no onnxruntime, a graph that fails: it costs speed, not service
        problem = f"its ONNX graph could not be used ({type(exc).__name__}: {exc})"
    if problem is None:
        onnx_s, compiled_s = (timer or _timings)(estimate, compiled.predict, probe, max_batch)
        if all(o < c for o, c in zip(onnx_s, compiled_s, strict=True)):
            return Predictor(
                fast=True,
                reason=(
                    f"onnxruntime ({_speed(onnx_s, compiled_s)} than {compiled.reason}; "
                    f"matches it within {tolerance:g} on probe rows)"
                ),
                classes=compiled.classes,
                threads=compiled.threads,
                estimate=estimate,
                flavor=compiled.flavor,
                holds_gil=False,  # the graph runs in onnxruntime with the lock let go
            )
        problem = f"its ONNX graph is not faster ({_speed(onnx_s, compiled_s)})"
    log.info("%s: serving with %s; %s", version.ref, compiled.reason, problem)
    compiled.reason = f"{compiled.reason}; {problem}"
    return compiled


def _differs(
    onnx: Callable[[Batch], Output],
    compiled: Callable[[Batch], Output],
    probe: Batch,
    tolerance: float,
) -> str | None:
    singles = [probe.take(slice(i, i + 1)) for i in range(probe.n)]
    for batch in (probe, *singles):
        got, want = onnx(batch), compiled(batch)
        if want.probabilities is not None:
            if got.probabilities is None or not np.allclose(
                got.probabilities, want.probabilities, rtol=0, atol=tolerance
            ):
                return "its ONNX graph's probabilities differ from the pipeline's on probe rows"
        elif not np.allclose(
            np.asarray(got.labels, dtype=np.float64),
            np.asarray(want.labels, dtype=np.float64),
            rtol=0,
            atol=tolerance,
        ):
            return "its ONNX graph's predictions differ from the pipeline's on probe rows"
    return None


def _timings(
    onnx: Callable[[Batch], Output],
    compiled: Callable[[Batch], Output],
    probe: Batch,
    max_batch: int,
) -> tuple[list[float], list[float]]:
    """Median seconds a call of each, on one row and on `max_batch` rows."""
    big = probe.take(np.arange(max_batch) % probe.n)
    one = probe.take(slice(0, 1))
    out: tuple[list[float], list[float]] = ([], [])
    for batch in (one, big):
        for timed, fn in zip(out, (onnx, compiled), strict=True):
            fn(batch)  # warm
            seconds = []
            for _ in range(_TIMING_CALLS):
                started = time.perf_counter()
                fn(batch)
                seconds.append(time.perf_counter() - started)
            timed.append(float(np.median(seconds)))
    return out


def _speed(onnx_s: list[float], compiled_s: list[float]) -> str:
    one, big = (c / o for o, c in zip(onnx_s, compiled_s, strict=True))
    return f"{one:.2g}× as fast for one row, {big:.2g}× for a batch"
