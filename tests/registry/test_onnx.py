"""ONNX Runtime compilation of registered versions: kept only when it matches the original."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from registry_cases import Fitted
from test_models import FAILED, add, chain_ok, events

from shipyard.core.errors import Conflict, Invalid, NotFound
from shipyard.registry import compile_onnx, get_document, get_version, load_model, load_onnx
from shipyard.store.workspace import Workspace

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxmltools")


def holdout(f: Fitted) -> pd.DataFrame:
    """Rows with a missing number, a missing category and an unknown category."""
    X = f.X.iloc[::4].copy()
    X.loc[X.index[0], "grade"] = "Z"
    return X


@pytest.mark.parametrize("case", ["logistic", "lightgbm", "lightgbm_multiclass"])
def test_an_exact_compilation_is_stored_and_reproduces_predictions(
    workspace: Workspace, fitted: dict[str, Fitted], case: str
) -> None:
    f = fitted[case]
    v = add(workspace, f)
    X = holdout(f)

    result = compile_onnx(workspace, v.ref, X)

    assert result.accepted, result.reason
    assert result.max_abs_diff <= 1e-5
    assert result.rows == len(X)
    stored = get_version(workspace, v.ref).documents
    assert {"model.onnx", "onnx.json"} <= set(stored)
    record = json.loads(get_document(workspace, v.ref, "onnx.json"))
    assert record["onnx"]["accepted"] is True
    assert record["onnx"]["max_abs_diff"] == result.max_abs_diff
    assert record["onnx"]["rows"] == len(X)
    assert record["onnx"]["tolerance"] == 1e-5
    expected = load_model(workspace, v.ref).predict_proba(f.X)
    assert np.abs(load_onnx(workspace, v.ref).run(f.X) - expected).max() <= 1e-5
    ((_, after, details),) = events(workspace, "model.onnx")
    assert details["accepted"] is True and after == stored["model.onnx"]
    assert chain_ok(workspace)


def test_a_regressor_beyond_tolerance_is_rejected_and_nothing_stored(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    # ONNX trees compute in float32: on targets in the hundreds that is ~1e-4 off.
    f = fitted["lightgbm_regressor"]
    v = add(workspace, f)

    result = compile_onnx(workspace, v.ref, holdout(f))

    assert not result.accepted
    assert result.max_abs_diff > 1e-5
    assert "more than the tolerance" in result.reason
    assert get_version(workspace, v.ref).documents == v.documents
    ((_, after, details),) = events(workspace, "model.onnx")
    assert after is None and details["accepted"] is False
    assert details["reason"] == result.reason
    with pytest.raises(NotFound, match="has no accepted ONNX graph"):
        load_onnx(workspace, v.ref)


def test_a_zero_tolerance_rejects_a_float32_graph(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    f = fitted["logistic"]
    v = add(workspace, f)

    result = compile_onnx(workspace, v.ref, holdout(f), tolerance=0.0)

    assert not result.accepted and result.max_abs_diff > 0
    assert "model.onnx" not in get_version(workspace, v.ref).documents


def test_unknown_rejected_and_unusable_inputs_are_refused(
    workspace: Workspace, fitted: dict[str, Fitted]
) -> None:
    f = fitted["logistic"]
    X = holdout(f)
    with pytest.raises(NotFound, match="does not exist"):
        compile_onnx(workspace, "nope@1", X)
    rejected = add(workspace, f, name="weak", gates=[FAILED])
    with pytest.raises(Conflict, match="rejected"):
        compile_onnx(workspace, rejected.ref, X)
    v = add(workspace, f)
    with pytest.raises(Invalid, match="lack columns"):
        compile_onnx(workspace, v.ref, X.drop(columns=["grade"]))
    with pytest.raises(Invalid, match="non-empty DataFrame"):
        compile_onnx(workspace, v.ref, X.iloc[:0])
    with pytest.raises(Invalid, match="tolerance is -1"):
        compile_onnx(workspace, v.ref, X, tolerance=-1)
    assert events(workspace, "model.onnx") == []
