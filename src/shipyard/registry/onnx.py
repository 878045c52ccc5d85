"""Optional ONNX Runtime compilation of a registered version, kept only when it is exact.

`compile_onnx` converts a version's pipeline (the `ColumnTransformer` + estimator that
`shipyard.train` builds; LightGBM through onnxmltools' converter, registered with skl2onnx,
scikit-learn estimators through skl2onnx), runs the ONNX graph with onnxruntime on the check
rows the caller passes (held-out data), and compares its probabilities (a classifier) or
predictions (anything else) with the original pipeline's. Only when the largest absolute
difference is at most `tolerance` is the graph stored: the blob "model.onnx" and the record
"onnx.json" are added to the version's documents. Accepted or not, an audit event
`model.onnx` says what happened.

The ONNX graph takes one `[n, 1]` input per feature column, in the pipeline's column order:
float32 for numbers, strings for everything else. Strings cannot be missing in ONNX, so a
missing category is fed as the fill value of the column's constant imputer ("onnx.json"
records it per column), which is exactly what the imputer would have put there.

Needs the `onnx` extra (`pip install 'shipyard[onnx]'`); the libraries are imported only here.

    >>> result = compile_onnx(ws, "credit-risk@3", X_holdout)
    >>> result.accepted, result.max_abs_diff
    (True, 2.8e-07)
    >>> load_onnx(ws, "credit-risk@3").run(X_holdout)[:2]
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from shipyard.core.errors import Integrity, Invalid, NotFound
from shipyard.core.records import ModelVersion, Ref
from shipyard.registry.models import _resolve, get_version, load_model, parse_ref
from shipyard.registry.native import NativeLightGBM
from shipyard.store import audit
from shipyard.store.workspace import Workspace

MODEL_DOCUMENT = "model.onnx"
RECORD_DOCUMENT = "onnx.json"
DEFAULT_TOLERANCE = 1e-5
_OPSET = {"": 17, "ai.onnx.ml": 3}
_INSTALL = "install the onnx extra: pip install 'shipyard[onnx]'"


@dataclass(frozen=True)
class OnnxResult:
    """The verdict of `compile_onnx`: `max_abs_diff` over `rows` check rows (inf when the
    pipeline could not be converted or run), and `reason` in words."""

    accepted: bool
    max_abs_diff: float
    rows: int
    reason: str


@dataclass(frozen=True, eq=False)
class OnnxModel:
    """An accepted ONNX graph in an onnxruntime session; `run` takes the original columns."""

    session: Any
    columns: tuple[str, ...]
    strings: dict[str, str]  # string column → what a missing value is fed as
    output: str  # "probabilities" or "predictions"
    tolerance: float = DEFAULT_TOLERANCE  # the largest |difference| it was accepted with

    def run(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities (one column per class) for a classifier, else predictions."""
        feed = _feed(X, self.columns, self.strings)
        names = [i.name for i in self.session.get_inputs()]
        outputs = self.session.run(None, dict(zip(names, feed, strict=True)))
        result = np.asarray(outputs[1] if self.output == "probabilities" else outputs[0])
        return result if self.output == "probabilities" else result.ravel()


def compile_onnx(
    ws: Workspace, ref: str | Ref, X_check: pd.DataFrame, *, tolerance: float = DEFAULT_TOLERANCE
) -> OnnxResult:
    """Compile a version to ONNX and keep it only if it matches the original on `X_check`.

        >>> compile_onnx(ws, "credit-risk@3", X_holdout, tolerance=1e-5)
        OnnxResult(accepted=True, max_abs_diff=2.8e-07, rows=114, reason='...')

    Raises NotFound for an unknown version, Conflict for one rejected by its gates, Invalid
    for unusable check rows or a missing `onnx` extra.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise Invalid(f"tolerance is {tolerance}; give a finite number >= 0, e.g. 1e-5.")
    version = get_version(ws, ref)
    model = load_model(ws, version.ref)  # refuses a version rejected by its gates
    columns = _columns(model.pipeline, version)
    X = _check_rows(X_check, columns, version)
    output = "probabilities" if hasattr(model.pipeline, "predict_proba") else "predictions"
    expected = model.predict_proba(X) if output == "probabilities" else model.predict(X)
    strings = _string_fills(model.pipeline, X, columns, version)
    try:
        graph = _convert(model.pipeline, columns, strings, output)
        actual = _session_output(graph, X, columns, strings, output)
    except ImportError as exc:
        raise Invalid(
            f"ONNX compilation needs skl2onnx, onnxmltools and onnxruntime; {_INSTALL}."
        ) from exc
    except Exception as exc:  # converters and onnxruntime raise many types: it is a verdict
        reason = f"the pipeline could not be compiled to ONNX ({type(exc).__name__}: {exc})"
        return _record(ws, version, OnnxResult(False, math.inf, len(X), reason), tolerance, None)
    diff = _max_abs_diff(np.asarray(expected, dtype=np.float64), actual)
    if diff <= tolerance:
        reason = f"{output} match within {tolerance:g} (max |diff| {diff:.3g}) on {len(X)} rows"
        result = OnnxResult(True, diff, len(X), reason)
        spec = {"columns": list(columns), "strings": strings, "output": output}
        return _record(ws, version, result, tolerance, (graph, spec))
    reason = (
        f"{output} differ by up to {diff:.3g} on {len(X)} rows, more than the tolerance "
        f"{tolerance:g}; the original pipeline stays the only way to serve this version"
    )
    return _record(ws, version, OnnxResult(False, diff, len(X), reason), tolerance, None)


def load_onnx(ws: Workspace, ref: str | Ref, *, threads: int | None = None) -> OnnxModel:
    """The accepted ONNX graph of a version in an onnxruntime session (`threads`: its
    intra-op threads; None, onnxruntime's default of one per core).

    >>> load_onnx(ws, "credit-risk@3").run(frame)
    """
    version = get_version(ws, ref)
    if MODEL_DOCUMENT not in version.documents or RECORD_DOCUMENT not in version.documents:
        raise NotFound(
            f"{version.ref} has no accepted ONNX graph; `shipyard models onnx {version.ref} "
            "--check FILE` compiles one."
        )
    record = json.loads(ws.artifacts.get_bytes(version.documents[RECORD_DOCUMENT]))
    graph = ws.artifacts.get_bytes(version.documents[MODEL_DOCUMENT])
    if record.get("artifact") != version.artifact:
        raise Integrity(
            f"{version.ref}: its ONNX graph was compiled from artifact "
            f"{str(record.get('artifact'))[:12]}…, not the version's {version.artifact[:12]}…; "
            "compile it again."
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise Invalid(f"running an ONNX graph needs onnxruntime; {_INSTALL}.") from exc
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    return OnnxModel(
        session,
        tuple(record["columns"]),
        dict(record["strings"]),
        str(record["output"]),
        float(record.get("onnx", {}).get("tolerance", DEFAULT_TOLERANCE)),
    )


# -- converting ---------------------------------------------------------------------------------


def _columns(pipeline: Any, version: ModelVersion) -> tuple[str, ...]:
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is not None:
        return tuple(str(c) for c in fitted)
    return tuple(version.signature.names)


def _check_rows(X_check: pd.DataFrame, columns: tuple[str, ...], version: ModelVersion) -> Any:
    if not isinstance(X_check, pd.DataFrame) or len(X_check) == 0:
        raise Invalid(
            f"the check rows for {version.ref} are {type(X_check).__name__} with "
            f"{len(X_check) if hasattr(X_check, '__len__') else 0} rows; pass a non-empty "
            "DataFrame of held-out rows with the model's feature columns."
        )
    missing = [c for c in columns if c not in X_check.columns]
    if missing:
        raise Invalid(
            f"the check rows lack columns {missing} that {version.ref} uses; pass held-out rows "
            f"with every feature column ({', '.join(columns)})."
        )
    return X_check[list(columns)]


def _string_fills(
    pipeline: Any, X: pd.DataFrame, columns: tuple[str, ...], version: ModelVersion
) -> dict[str, str]:
    """Each string column (by the signature, else by its dtype in X) → what a missing value in
    it is fed to ONNX as."""
    declared = {c.name: c.dtype for c in version.signature.inputs}

    def is_string(c: str) -> bool:
        if c in declared:
            return declared[c] == "string"
        return not pd.api.types.is_numeric_dtype(X[c].dtype)

    fills = dict.fromkeys((c for c in columns if is_string(c)), "")
    prep = pipeline[0] if isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1 else None
    if isinstance(prep, ColumnTransformer):
        for _name, transformer, cols in getattr(prep, "transformers_", []):
            first = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
            if isinstance(first, SimpleImputer) and first.strategy == "constant":
                for col in [cols] if isinstance(cols, str) else list(cols):
                    if str(col) in fills and isinstance(first.fill_value, str):
                        fills[str(col)] = first.fill_value
    return fills


def _convert(
    pipeline: Any, columns: tuple[str, ...], strings: dict[str, str], output: str
) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    _register_lightgbm()
    graph_pipeline = _for_conversion(pipeline, strings)
    inputs = [
        (c, StringTensorType([None, 1]) if c in strings else FloatTensorType([None, 1]))
        for c in columns
    ]
    final = graph_pipeline.steps[-1][1] if isinstance(graph_pipeline, Pipeline) else graph_pipeline
    options = {id(final): {"zipmap": False}} if output == "probabilities" else None
    model = convert_sklearn(
        graph_pipeline, initial_types=inputs, target_opset=_OPSET, options=options
    )
    return bytes(model.SerializeToString())


def _for_conversion(pipeline: Any, strings: dict[str, str]) -> Any:
    """A copy the converters accept: LightGBM as an adapter they know, and string imputers that
    treat their own fill value as missing (skl2onnx only converts string `missing_values`; the
    feed already puts the fill value where a value is missing, so they change nothing)."""
    graph = copy.deepcopy(pipeline)
    fills = set(strings.values())
    prep = graph[0] if isinstance(graph, Pipeline) and len(graph.steps) > 1 else None
    if isinstance(prep, ColumnTransformer):
        for _name, transformer, _cols in prep.transformers_:
            first = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
            if isinstance(first, SimpleImputer) and first.fill_value in fills:
                first.missing_values = first.fill_value
            steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
            for _step, encoder in steps:
                if (
                    isinstance(encoder, OneHotEncoder)
                    and encoder.handle_unknown == "infrequent_if_exist"
                    and not getattr(encoder, "_infrequent_enabled", False)
                ):
                    # With no infrequent categories this is "ignore", which skl2onnx converts.
                    encoder.handle_unknown = "ignore"
    if isinstance(graph, Pipeline):
        name, final = graph.steps[-1]
        graph.steps[-1] = (name, _lightgbm_adapter(final))
        return graph
    return _lightgbm_adapter(graph)


class _LightGBMAdapter(BaseEstimator):
    """What onnxmltools' LightGBM converter reads (`booster_`, `classes_`, `boosting_type`),
    typed as a scikit-learn classifier or regressor so skl2onnx parses its outputs."""

    def __init__(self, model: NativeLightGBM) -> None:
        self.model = model

    @property
    def booster_(self) -> Any:
        return self.model.booster_

    @property
    def boosting_type(self) -> str:
        return str(self.model.booster_.params.get("boosting", "gbdt"))


class _LightGBMClassifier(ClassifierMixin, _LightGBMAdapter):
    @property
    def classes_(self) -> np.ndarray:
        return self.model.classes_


class _LightGBMRegressor(RegressorMixin, _LightGBMAdapter):
    pass


def _lightgbm_adapter(step: Any) -> Any:
    if not isinstance(step, NativeLightGBM):
        return step
    return _LightGBMClassifier(step) if step.classes is not None else _LightGBMRegressor(step)


def _register_lightgbm() -> None:
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        _LightGBMClassifier,
        "ShipyardLightGbmClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        _LightGBMRegressor,
        "ShipyardLightGbmRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )


def _feed(X: pd.DataFrame, columns: tuple[str, ...], strings: dict[str, str]) -> list[np.ndarray]:
    out = []
    for c in columns:
        values = X[c]
        if c in strings:
            text = values.astype(object).where(values.notna(), strings[c])
            out.append(np.asarray([[str(v)] for v in text], dtype=object))
        else:
            out.append(values.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1))
    return out


def _session_output(
    graph: bytes, X: pd.DataFrame, columns: tuple[str, ...], strings: dict[str, str], output: str
) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return OnnxModel(session, columns, strings, output).run(X).astype(np.float64)


def _max_abs_diff(expected: np.ndarray, actual: np.ndarray) -> float:
    if expected.shape != actual.shape:
        return math.inf
    diff = np.abs(expected - actual)
    if np.isnan(diff).any():
        return math.inf
    return float(diff.max()) if diff.size else 0.0


# -- recording ----------------------------------------------------------------------------------


def _record(
    ws: Workspace,
    version: ModelVersion,
    result: OnnxResult,
    tolerance: float,
    accepted: tuple[bytes, dict[str, Any]] | None,
) -> OnnxResult:
    """Store the graph and its record (accepted) and write the audit event, in one transaction."""
    measured = result.max_abs_diff if math.isfinite(result.max_abs_diff) else None
    details: dict[str, Any] = {
        "ref": version.ref,
        "accepted": result.accepted,
        "max_abs_diff": measured,
        "rows": result.rows,
        "tolerance": tolerance,
        "reason": result.reason,
    }
    documents: dict[str, str] = {}
    if accepted is not None:
        graph, spec = accepted
        record = {
            "onnx": {
                "accepted": True,
                "max_abs_diff": measured,
                "rows": result.rows,
                "tolerance": tolerance,
                "artifact": version.artifact,
                "compiled_at": datetime.now(UTC).isoformat(),
            },
            "artifact": version.artifact,
            **spec,
        }
        documents = {
            MODEL_DOCUMENT: ws.artifacts.put_bytes(graph),
            RECORD_DOCUMENT: ws.artifacts.put_bytes(
                json.dumps(record, sort_keys=True, indent=2).encode()
            ),
        }
        details["documents"] = documents
    with ws.db.write() as s:
        row = _resolve(s, parse_ref(version.ref))
        if documents:
            row.documents = {**row.documents, **documents}  # a new dict, so the change is saved
            s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="model.onnx",
            object_type="model_version",
            object_id=row.id,
            before=None,
            after=documents.get(MODEL_DOCUMENT),
            details=details,
        )
    return result
