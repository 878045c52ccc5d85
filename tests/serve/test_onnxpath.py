"""ONNX Runtime in serving: an accepted graph answers only where it is as exact and faster.

Which is faster is measured when a version loads; these tests hand `prefer_onnx` the timings
(timed assertions do not belong in unit tests) and check the rest for real: the graph compiled
and accepted by the registry, run by onnxruntime, against the compiled predictor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from serve_cases import add, fit, frame

from shipyard.core.records import ModelVersion
from shipyard.registry import compile_onnx, get_version, load_model
from shipyard.serve.fastpath import Predictor, compile_predictor
from shipyard.serve.inputs import to_columns
from shipyard.serve.onnxpath import prefer_onnx
from shipyard.store.workspace import Workspace

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")


def onnx_faster(*_: Any) -> tuple[list[float], list[float]]:
    return [1e-5, 2e-5], [3e-5, 4e-5]  # (onnx, compiled) seconds: one row, a batch


def onnx_slower(*_: Any) -> tuple[list[float], list[float]]:
    return [3e-5, 2e-5], [1e-5, 4e-5]  # slower for one row, faster for a batch: not used


def with_graph(ws: Workspace, C: float = 1.0) -> tuple[ModelVersion, Predictor]:
    version = add(ws, fit(C))
    X, _ = frame(300, seed=7)
    assert compile_onnx(ws, version.ref, X).accepted
    return get_version(ws, version.ref), compile_predictor(load_model(ws, version.ref))


def test_an_accepted_graph_that_is_faster_serves_and_answers_as_the_pipeline(
    workspace: Workspace,
) -> None:
    version, compiled = with_graph(workspace)

    served = prefer_onnx(workspace, version, compiled, timer=onnx_faster)

    assert served is not compiled and served.reason.startswith("onnxruntime (3× as fast")
    assert compiled.holds_gil and not served.holds_gil  # onnxruntime runs with the lock let go
    loaded = load_model(workspace, version.ref)
    X, _ = frame(50, seed=9)
    rows = X.to_dict("records")
    rows[0]["grade"] = None  # a missing category: fed as its imputer's fill value
    rows[1]["income"] = None  # a missing number: NaN, imputed in the graph
    batch = to_columns(loaded.signature, {"rows": rows})  # type: ignore[arg-type]
    got, want = served.predict(batch), compiled.predict(batch)
    assert got.probabilities is not None and want.probabilities is not None
    assert np.abs(got.probabilities - want.probabilities).max() <= 1e-5
    assert got.labels.tolist() == want.labels.tolist()
    assert got.classes == want.classes


def test_a_graph_that_is_not_faster_on_both_sizes_is_not_used(workspace: Workspace) -> None:
    version, compiled = with_graph(workspace)

    kept = prefer_onnx(workspace, version, compiled, timer=onnx_slower)

    assert kept is compiled
    assert "its ONNX graph is not faster (0.33× as fast for one row, 2× for a batch)" in (
        kept.reason
    )


def test_a_graph_that_does_not_match_the_served_predictor_is_not_used(
    workspace: Workspace,
) -> None:
    version, _ = with_graph(workspace, C=1.0)
    other = compile_predictor(load_model(workspace, add(workspace, fit(0.001)).ref))

    # The first version's graph against another version's predictor: the probe rows differ.
    kept = prefer_onnx(workspace, version, other, timer=onnx_faster)

    assert kept is other
    assert "ONNX graph's probabilities differ from the pipeline's on probe rows" in kept.reason


def test_a_version_without_a_graph_keeps_its_compiled_predictor(workspace: Workspace) -> None:
    version = add(workspace, fit())
    compiled = compile_predictor(load_model(workspace, version.ref))

    assert prefer_onnx(workspace, version, compiled, timer=onnx_faster) is compiled
    assert "onnx" not in compiled.reason.lower()
