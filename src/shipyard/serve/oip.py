"""The Open Inference Protocol v2 routes (KServe, Triton, Seldon clients): a model is an endpoint.

    GET  /v2                          server metadata
    GET  /v2/health/live              open liveness probe
    GET  /v2/health/ready             every endpoint loaded
    GET  /v2/models/{name}            inputs (datatypes from the signature) and outputs
    GET  /v2/models/{name}/ready
    POST /v2/models/{name}/infer      one tensor per column, or one [n, k] tensor

Tensors may come as JSON `data` or in the binary tensor extension (the request's
`Inference-Header-Content-Length` header gives the JSON part's length; each input with
`parameters.binary_data_size` takes its bytes from what follows, in order; NaN in a binary
float tensor is a missing value, as null is in JSON). Outputs are always
JSON: `label` (BYTES class names for classifiers, FP64 values for regressors, INT64 clusters)
and, for classifiers, `probabilities` (FP64, [n, classes]); `parameters.request_id` is the id to
send feedback for. Per-row explanations are not part of the protocol: `?explain=true`, or
`"parameters": {"explain": true}`, is answered 501 pointing to the /v1 route that has them.
"""

from __future__ import annotations

import importlib.metadata
import struct
import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from shipyard.core.errors import Invalid, NotSupported
from shipyard.core.records import Signature
from shipyard.serve.handlers import answer, find_route, flags_for_inputs, respond, runtime
from shipyard.serve.inputs import Batch, InputError, decode, from_oip
from shipyard.serve.limits import read_body
from shipyard.serve.models import ServedModel
from shipyard.serve.responses import dumps, json_response

DATATYPES = {
    "float64": "FP64",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
    "timestamp": "BYTES",
    "date": "BYTES",
}
_NUMPY = {
    "BOOL": np.dtype("bool"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_HEADER_LENGTH = "inference-header-content-length"


async def server_metadata(request: Request) -> Response:
    """GET /v2."""
    return json_response(
        {
            "name": "shipyard",
            "version": importlib.metadata.version("shipyard"),
            "extensions": ["binary_tensor_data"],
        }
    )


async def live(request: Request) -> Response:
    """GET /v2/health/live (open)."""
    return json_response({"live": True})


async def server_ready(request: Request) -> Response:
    """GET /v2/health/ready."""
    ready = runtime(request).ready
    return json_response({"ready": ready}, 200 if ready else 503)


async def model_metadata(request: Request) -> Response:
    """GET /v2/models/{name}: the champion's signature as OIP tensors."""
    route = find_route(runtime(request), request.path_params["name"])
    champion = route.models[route.endpoint.champion_id]
    refs = sorted({m.ref for m in route.models.values()})
    return json_response(
        {
            "name": route.name,
            "versions": refs,
            "platform": f"shipyard/{champion.loaded.flavor}",
            "inputs": [
                {"name": c.name, "datatype": DATATYPES[c.dtype], "shape": [-1]}
                for c in champion.signature.inputs
            ],
            "outputs": _output_metadata(champion),
            "parameters": {"champion": champion.ref, "task": champion.task},
        }
    )


async def model_ready(request: Request) -> Response:
    """GET /v2/models/{name}/ready."""
    route = find_route(runtime(request), request.path_params["name"])  # 404, or 503 if not loaded
    return json_response({"name": route.name, "ready": True})


async def infer(request: Request) -> Response:
    """POST /v2/models/{name}/infer."""
    started = time.perf_counter()
    rt = runtime(request)
    route = find_route(rt, request.path_params["name"])
    body = await read_body(request, rt.options.max_body)
    payload = _payload(body, request.headers.get(_HEADER_LENGTH))
    _refuse_explain(request, payload)
    wanted = _requested_outputs(payload)
    strict, extra = flags_for_inputs(route)
    max_rows = rt.options.max_rows

    def make_batch(signature: Signature) -> Batch:
        return from_oip(
            signature, payload, max_rows=max_rows, strict_ranges=strict, allow_extra=extra
        )

    result = await answer(request, route, make_batch, started)
    outputs = _outputs(result.served, result.output.labels, result.output.probabilities)
    if wanted is not None:
        known = {o["name"] for o in outputs}
        if unknown := [w for w in wanted if w not in known]:
            raise Invalid(
                f"output(s) {', '.join(map(repr, unknown))} do not exist; this model gives "
                f"{', '.join(sorted(known))}."
            )
        outputs = [o for o in outputs if o["name"] in wanted]
    data: dict[str, Any] = {
        "model_name": route.name,
        "model_version": result.served.ref,
        "outputs": outputs,
        "parameters": {"request_id": result.request_id},
    }
    if isinstance(payload.get("id"), str):
        data["id"] = payload["id"]
    return respond(request, route, result, dumps(data), make_batch)


def _refuse_explain(request: Request, payload: dict[str, Any]) -> None:
    parameters = payload.get("parameters")
    asked = request.query_params.get("explain", "").lower() in ("1", "true", "yes", "on") or (
        isinstance(parameters, dict) and parameters.get("explain") in (True, "true")
    )
    if asked:
        name = request.path_params["name"]
        raise NotSupported(
            "per-row explanations are not part of the Open Inference Protocol routes; send the "
            f"rows to POST /v1/endpoints/{name}/predict?explain=true for SHAP values per row."
        )


# -- tensors ------------------------------------------------------------------------------------


def _output_metadata(served: ServedModel) -> list[dict[str, Any]]:
    if served.task == "classification":
        classes = len(served.signature.classes or [])
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, classes]},
        ]
    datatype = "INT64" if served.task == "clustering" else "FP64"
    return [{"name": "label", "datatype": datatype, "shape": [-1]}]


def _outputs(
    served: ServedModel, labels: np.ndarray, probabilities: np.ndarray | None
) -> list[dict[str, Any]]:
    n = int(labels.shape[0])
    label: dict[str, Any]
    if served.task == "classification":
        label = {
            "name": "label",
            "datatype": "BYTES",
            "shape": [n],
            "data": [str(v) for v in labels.tolist()],
        }
    elif served.task == "clustering":
        label = {
            "name": "label",
            "datatype": "INT64",
            "shape": [n],
            "data": labels.astype(np.int64),
        }
    else:
        label = {
            "name": "label",
            "datatype": "FP64",
            "shape": [n],
            "data": labels.astype(np.float64),
        }
    out = [label]
    if probabilities is not None:
        out.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": list(probabilities.shape),
                "data": np.ascontiguousarray(probabilities, dtype=np.float64).ravel(),
            }
        )
    return out


def _requested_outputs(payload: dict[str, Any]) -> set[str] | None:
    requested = payload.get("outputs")
    if requested is None:
        return None
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise Invalid('\'outputs\' must be a list of objects such as {"name": "label"}.')
    return {o["name"] for o in requested}


def _payload(body: bytes, header_length: str | None) -> dict[str, Any]:
    """The decoded request, with binary tensor data (if any) turned into `data` lists."""
    if header_length is None:
        return decode(body)
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise _binary_error(
            f"Inference-Header-Content-Length {header_length[:20]!r} is not a length within the "
            f"{len(body):,}-byte body"
        )
    payload = decode(body[:length])
    rest = memoryview(body)[length:]
    offset = 0
    inputs = payload.get("inputs")
    for tensor in inputs if isinstance(inputs, list) else []:
        if not isinstance(tensor, dict):
            continue
        parameters = tensor.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        name = tensor.get("name")
        if not isinstance(size, int) or size < 0 or offset + size > len(rest):
            raise _binary_error(
                f"input {name!r}: binary_data_size {size!r} does not fit the "
                f"{len(rest) - offset:,} bytes left in the body"
            )
        tensor["data"] = _binary_values(
            str(name), tensor.get("datatype"), rest[offset : offset + size]
        )
        offset += size
    if offset != len(rest):
        raise _binary_error(
            f"{len(rest) - offset:,} bytes of binary data follow the last input that declares "
            "binary_data_size"
        )
    return payload


def _binary_values(name: str, datatype: Any, raw: memoryview) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise _binary_error(f"input {name!r}: a BYTES element is cut short")
            (size,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise _binary_error(f"input {name!r}: a BYTES element is cut short")
            try:
                values.append(bytes(raw[offset : offset + size]).decode("utf-8"))
            except UnicodeDecodeError:
                raise _binary_error(f"input {name!r}: a BYTES element is not UTF-8 text") from None
            offset += size
        return values
    dtype = _NUMPY.get(str(datatype))
    if dtype is None:
        raise _binary_error(f"input {name!r}: datatype {datatype!r} has no binary form here")
    if len(raw) % dtype.itemsize:
        raise _binary_error(
            f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} values"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "f" and np.isnan(array).any():
        # Binary tensors have no null: NaN is how they carry a missing value.
        out = array.astype(object)
        out[np.isnan(array)] = None
        return list(out.tolist())
    return list(array.tolist())


def _binary_error(message: str) -> InputError:
    return InputError(
        f"{message}; check the binary tensor data extension request.",
        details={"errors": [{"row": None, "column": None, "rule": "binary", "value": None}]},
    )
