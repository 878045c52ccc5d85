"""The app's OpenAPI 3.1 description, built from its own routes and the models it serves.

    GET /openapi.json    viewer   the document (JSON)
    GET /docs            viewer   the same, as a self-contained HTML page (no scripts, no CDN)

Both need a viewer-level token, like the other read routes: the document names every served
endpoint and the columns, ranges and categories its model accepts, which is as much as
`GET /v1/endpoints` and `GET /v2/models/{name}` tell.

The paths come from the app's route table, so a route cannot be served undescribed: each
(method, path) is looked up in `OPERATIONS`, and a route missing there still appears, marked
`x-shipyard-undocumented` (`undocumented()` lists them; a test keeps that list empty). Who may
call an operation is read from the route itself (the `Access` that `app.protected` puts on
it). Beside the templated paths, each served endpoint gets its own
`/v1/endpoints/<name>/predict` whose request schema is generated from its champion's
`Signature`: the column names, JSON types, min/max, allowed categories and nullability, so a
client sees exactly what to send.

The document is rebuilt only when the route table or an endpoint's revision changes
(`DocumentCache`).

    >>> doc = openapi_document(app.routes, runtime)          # or a list of `Described`
    >>> doc["paths"]["/v1/endpoints/credit/predict"]["post"]["requestBody"]
"""

from __future__ import annotations

import html
import importlib.metadata
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as HttpRoute

from shipyard.core.records import Endpoint, FeedbackResult, Signature, SignatureColumn
from shipyard.serve.auth import Access
from shipyard.serve.inputs import MAX_ROWS
from shipyard.serve.responses import dumps
from shipyard.serve.runtime import Runtime

OPENAPI_VERSION: Final = "3.1.0"
_SCHEMAS: Final = "#/components/schemas/"
_BOOL_TEXT: Final = ["true", "false", "True", "False"]
_OIP_DATATYPES: Final = [
    *("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"),
    *("FP16", "FP32", "FP64", "BYTES"),
]


# -- what the document is built from ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Described:
    """One served endpoint as the document shows it: its champion's signature."""

    name: str
    revision: int
    model: str
    task: str
    signature: Signature
    strict_ranges: bool = False
    extra_columns: bool = False  # the endpoint's extra_columns=ignore


def described(runtime: Runtime) -> list[Described]:
    """Every endpoint `runtime` serves, by name."""
    out: list[Described] = []
    for name in sorted(runtime.routes):
        route = runtime.routes[name]
        champion = route.models.get(route.endpoint.champion_id)
        if champion is None:
            continue
        out.append(
            Described(
                name=name,
                revision=route.revision,
                model=champion.ref,
                task=champion.task,
                signature=champion.signature,
                strict_ranges=route.flag_on("strict_ranges", False),
                extra_columns=route.endpoint.flags.get("extra_columns") == "ignore",
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Operation:
    """How one (method, path) is described: what it does, what it takes and answers."""

    operation_id: str
    summary: str
    tag: str
    ok: Mapping[str, Any]  # the 200 response object
    body: Mapping[str, Any] | None = None  # the requestBody object
    errors: tuple[int, ...] = ()  # beyond the ones every protected route can answer
    parameters: tuple[Mapping[str, Any], ...] = ()
    description: str = ""


# -- shared pieces --------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + name}


def _json(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: Mapping[str, Any], *, binary: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if binary:
        content["application/octet-stream"] = {
            "schema": {"type": "string", "contentMediaType": "application/octet-stream"},
        }
    return {"required": True, "content": content}


def _obj(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STRING: Final = {"type": "string"}
_ANY_OBJECT: Final = {"type": "object"}
_NAME: Final = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The endpoint's name (an OIP model is an endpoint).",
    "schema": {"type": "string"},
}
_KEY: Final = {
    "name": "X-Shipyard-Key",
    "in": "header",
    "required": False,
    "description": "A user or account id: the same key is routed to the same version (A/B, "
    "canary).",
    "schema": {"type": "string"},
}
_EXPLAIN: Final = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": "true: per-row explanations (501 if the model cannot explain them); false: "
    "none, whatever the endpoint's `explain` flag says.",
    "schema": {"type": "string"},
}
_HEADER_LENGTH: Final = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "Binary tensor extension: the length of the JSON part of the body; binary "
    "tensor data follows it.",
    "schema": {"type": "integer", "minimum": 1},
}
_REQUEST_ID: Final = {
    "X-Request-ID": {
        "description": "The id to send feedback for.",
        "schema": {"type": "string"},
    }
}

_STATUS_TEXT: Final = {
    401: "No token, or an unknown or revoked one (`WWW-Authenticate: Bearer`).",
    403: "The token's role may not call this operation.",
    404: "No endpoint of that name.",
    413: "The request body is over the server's size limit.",
    422: "The request does not fit (bad JSON, wrong shape, or rows that break the model's "
    "signature: `details.errors` lists them as {row, column, rule, value}).",
    429: "Over the token's rate limit; retry after `Retry-After` seconds.",
    501: "A feature that exists but is not available on this server.",
    503: "The server is starting or stopping, the endpoint's models are not loaded, or the "
    "token database cannot be reached; retry.",
}
_PROTECTED_ERRORS: Final = (401, 403, 429, 503)


def _predict_body(rows: Mapping[str, Any], columns: Mapping[str, Any]) -> dict[str, Any]:
    return _body({"oneOf": [rows, columns]})


_PREDICT_OK: Final = _json(_ref("PredictResponse"))
_OPERATIONS_LIST: Final = [
    (
        "GET",
        "/health",
        Operation("health", "Liveness: the process is up.", "health", _json(_ref("Health"))),
    ),
    (
        "GET",
        "/ready",
        Operation(
            "ready",
            "Readiness: every endpoint has loaded models (503 with the same body if not).",
            "health",
            _json(_ref("Ready")),
        ),
    ),
    (
        "GET",
        "/metrics",
        Operation(
            "metrics",
            "Prometheus metrics.",
            "health",
            {"description": "OK", "content": {"text/plain": {"schema": _STRING}}},
        ),
    ),
    (
        "GET",
        "/openapi.json",
        Operation(
            "openapi",
            "This OpenAPI document, built from the routes and the models served now.",
            "docs",
            _json(_ANY_OBJECT),
        ),
    ),
    (
        "GET",
        "/docs",
        Operation(
            "docs",
            "This document as a self-contained HTML page.",
            "docs",
            {"description": "OK", "content": {"text/html": {"schema": _STRING}}},
        ),
    ),
    (
        "GET",
        "/v1/endpoints",
        Operation(
            "list_endpoints",
            "Every endpoint's routing and what this server serves of it.",
            "v1",
            _json(_obj(["endpoints"], endpoints={"type": "array", "items": _ref("EndpointView")})),
        ),
    ),
    (
        "GET",
        "/v1/endpoints/{name}",
        Operation(
            "show_endpoint",
            "One endpoint's routing and serving state.",
            "v1",
            _json(_ref("EndpointView")),
            errors=(404,),
            parameters=(_NAME,),
        ),
    ),
    (
        "POST",
        "/v1/endpoints/{name}/predict",
        Operation(
            "predict",
            "Predict rows, as records or columns.",
            "v1",
            _PREDICT_OK,
            body=_predict_body(_ref("RowsRequest"), _ref("ColumnsRequest")),
            errors=(404, 413, 422, 501),
            parameters=(_NAME, _KEY, _EXPLAIN),
            description="The columns each endpoint takes are in its own path, "
            "`/v1/endpoints/<name>/predict`. The response's `request_id` (also the "
            "`X-Request-ID` header) is the id to send feedback for.",
        ),
    ),
    (
        "POST",
        "/v1/endpoints/{name}/feedback",
        Operation(
            "feedback",
            "Ground-truth labels for earlier predictions.",
            "v1",
            _json(_ref("FeedbackResult")),
            body=_body(_ref("FeedbackRequest")),
            errors=(404, 413, 422),
            parameters=(_NAME,),
        ),
    ),
    (
        "GET",
        "/v2",
        Operation(
            "oip_server_metadata",
            "Open Inference Protocol v2 server metadata.",
            "v2",
            _json(_ref("OipServerMetadata")),
        ),
    ),
    (
        "GET",
        "/v2/health/live",
        Operation(
            "oip_live",
            "OIP liveness.",
            "v2",
            _json(_obj(["live"], live={"type": "boolean"})),
        ),
    ),
    (
        "GET",
        "/v2/health/ready",
        Operation(
            "oip_ready",
            "OIP readiness (503 with the same body if not ready).",
            "v2",
            _json(_obj(["ready"], ready={"type": "boolean"})),
        ),
    ),
    (
        "GET",
        "/v2/models/{name}",
        Operation(
            "oip_model_metadata",
            "OIP model metadata: the champion's signature as tensors.",
            "v2",
            _json(_ref("OipModelMetadata")),
            errors=(404,),
            parameters=(_NAME,),
        ),
    ),
    (
        "GET",
        "/v2/models/{name}/ready",
        Operation(
            "oip_model_ready",
            "OIP model readiness.",
            "v2",
            _json(_obj(["name", "ready"], name=_STRING, ready={"type": "boolean"})),
            errors=(404,),
            parameters=(_NAME,),
        ),
    ),
    (
        "POST",
        "/v2/models/{name}/infer",
        Operation(
            "oip_infer",
            "OIP inference: one tensor per column, or one [n, k] tensor of all columns.",
            "v2",
            {**_json(_ref("OipInferenceResponse")), "headers": _REQUEST_ID},
            body=_body(_ref("OipInferenceRequest"), binary=True),
            errors=(404, 413, 422),
            parameters=(_NAME, _KEY, _HEADER_LENGTH),
            description="Tensor data may be JSON `data` or the binary tensor extension "
            "(`Inference-Header-Content-Length`). `parameters.request_id` in the response is "
            "the id to send feedback for.",
        ),
    ),
]
OPERATIONS: Final[Mapping[tuple[str, str], Operation]] = {
    (method, path): op for method, path, op in _OPERATIONS_LIST
}
"""Every (method, path) of the app and how it is described."""


# -- component schemas --------------------------------------------------------------------------


def _record_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """JSON schemas of records, their nested definitions hoisted into components."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}", mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _tensor_data() -> dict[str, Any]:
    scalar = {"type": ["number", "string", "boolean", "null"]}
    return {
        "type": "array",
        "items": {"anyOf": [scalar, {"type": "array"}]},
        "description": "Values in row-major order (nested lists are flattened).",
    }


def _components(max_rows: int) -> dict[str, Any]:
    schemas = _record_schemas(Endpoint, FeedbackResult)
    error = _obj(
        ["error", "message", "details"],
        error={"type": "string", "description": "The error class, such as 'InputError'."},
        message={"type": "string", "description": "What was received, expected, and to do."},
        details={"type": "object"},
    )
    oip_error = _obj(
        ["error"],
        error={"type": "string", "description": "The message."},
        type={"type": "string", "description": "The error class."},
        details={"type": "object"},
    )
    metadata_tensor = _obj(
        ["name", "datatype", "shape"],
        name=_STRING,
        datatype={"type": "string", "enum": _OIP_DATATYPES},
        shape={"type": "array", "items": {"type": "integer"}},
    )
    request_input = _obj(
        ["name", "shape", "datatype"],
        name={
            "type": "string",
            "description": "A column of the signature, or any name for one "
            "[n, k] tensor of all columns.",
        },
        shape={"type": "array", "items": {"type": "integer", "minimum": 0}},
        datatype={"type": "string", "enum": _OIP_DATATYPES},
        parameters=_obj(binary_data_size={"type": "integer", "minimum": 0}),
        data=_tensor_data(),
    )
    schemas.update(
        Error=error,
        OipError=oip_error,
        Health=_obj(["status"], status={"const": "ok"}),
        Ready=_obj(
            ["ready", "endpoints"],
            ready={"type": "boolean"},
            endpoints={
                "type": "object",
                "additionalProperties": _obj(
                    ["ready"],
                    ready={"type": "boolean"},
                    revision={"type": "integer"},
                    problem=_STRING,
                ),
            },
        ),
        EndpointView={
            "allOf": [
                _ref("Endpoint"),
                _obj(
                    ["serving"],
                    serving=_obj(
                        ["ready"],
                        ready={"type": "boolean"},
                        revision={"type": "integer"},
                        models={"type": "object", "additionalProperties": _STRING},
                        shares={"type": "object", "additionalProperties": {"type": "number"}},
                        problem=_STRING,
                    ),
                ),
            ]
        },
        RowsRequest=_obj(
            ["rows"],
            rows={
                "type": "array",
                "minItems": 1,
                "maxItems": max_rows,
                "items": {"type": "object"},
                "description": "One object per row, {column: value}; null is a missing value.",
            },
        ),
        ColumnsRequest=_obj(
            ["columns"],
            columns={
                "type": "object",
                "additionalProperties": {"type": "array", "minItems": 1, "maxItems": max_rows},
                "description": "One list per column, all of the same length.",
            },
        ),
        PredictResponse=_obj(
            ["request_id", "endpoint", "model", "predictions"],
            request_id={"type": "string", "description": "The id to send feedback for."},
            endpoint=_STRING,
            model={"type": "string", "description": "The version that answered (name@n)."},
            predictions={"type": "array", "description": "One label or value per row."},
            probabilities={
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
                "description": "Classifiers: one row of class probabilities per row.",
            },
            classes={"type": "array", "items": _STRING},
            warnings={
                "type": "array",
                "items": _ANY_OBJECT,
                "description": "Values served although outside the training data (a number "
                "beyond its range, an unknown category): per column and rule, the count and "
                "a first example. The endpoint's strict_ranges=on refuses them (422).",
            },
            ids={
                "type": "array",
                "description": "The data set's id of each row, when the rows carried it.",
            },
            explanations={
                "description": "Per-row explanations, when asked for (`?explain=true` or the "
                "endpoint's `explain` flag); null when they could not be made."
            },
            explanations_unavailable={"type": "string", "description": "Why they are missing."},
        ),
        FeedbackRequest={
            "oneOf": [
                _obj(
                    ["items"],
                    items={
                        "type": "array",
                        "items": _obj(
                            ["request_id", "label"],
                            request_id=_STRING,
                            label={"description": "The true label or value."},
                            row={"type": "integer", "minimum": 0, "default": 0},
                        ),
                    },
                ),
                _obj(
                    ["items"],
                    items={
                        "type": "array",
                        "items": _obj(
                            ["id", "label"],
                            id={
                                "type": ["string", "integer"],
                                "description": "The data set's id the predicted row carried.",
                            },
                            label={"description": "The true label or value."},
                        ),
                    },
                ),
                _obj(
                    ["request_ids", "labels"],
                    request_ids={"type": "array", "items": _STRING},
                    labels={"type": "array"},
                ),
                _obj(
                    ["ids", "labels"],
                    ids={"type": "array", "items": {"type": ["string", "integer"]}},
                    labels={"type": "array"},
                ),
            ]
        },
        OipServerMetadata=_obj(
            ["name", "version", "extensions"],
            name=_STRING,
            version=_STRING,
            extensions={"type": "array", "items": _STRING},
        ),
        OipMetadataTensor=metadata_tensor,
        OipModelMetadata=_obj(
            ["name", "platform", "inputs", "outputs"],
            name=_STRING,
            versions={"type": "array", "items": _STRING},
            platform=_STRING,
            inputs={"type": "array", "items": _ref("OipMetadataTensor")},
            outputs={"type": "array", "items": _ref("OipMetadataTensor")},
            parameters=_ANY_OBJECT,
        ),
        OipRequestInput=request_input,
        OipInferenceRequest=_obj(
            ["inputs"],
            id=_STRING,
            parameters=_ANY_OBJECT,
            inputs={"type": "array", "minItems": 1, "items": _ref("OipRequestInput")},
            outputs={
                "type": "array",
                "items": _obj(["name"], name=_STRING, parameters=_ANY_OBJECT),
            },
        ),
        OipInferenceResponse=_obj(
            ["model_name", "outputs"],
            model_name=_STRING,
            model_version=_STRING,
            id=_STRING,
            parameters=_obj(request_id=_STRING),
            outputs={
                "type": "array",
                "items": _obj(
                    ["name", "shape", "datatype", "data"],
                    name=_STRING,
                    shape={"type": "array", "items": {"type": "integer"}},
                    datatype={"type": "string", "enum": _OIP_DATATYPES},
                    parameters=_ANY_OBJECT,
                    data=_tensor_data(),
                ),
            },
        ),
    )
    return {
        "schemas": schemas,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (`shipyard tokens create`): "
                "`Authorization: Bearer <token>`.",
            }
        },
    }


# -- per-endpoint schemas from signatures -------------------------------------------------------


def column_schema(column: SignatureColumn, *, strict: bool = True) -> dict[str, Any]:
    """The JSON schema of one value of `column`, as the request validator checks it.

    With `strict=False` (the endpoint's `strict_ranges` flag off) out-of-range numbers and
    unknown categories are accepted with a warning, so they are described, not enforced.
    """
    schema: dict[str, Any]
    limits: dict[str, Any] = {}
    if column.dtype in ("float64", "int64"):
        schema = {"type": "number" if column.dtype == "float64" else "integer"}
        if column.min is not None:
            limits["minimum"] = column.min
        if column.max is not None:
            limits["maximum"] = column.max
    elif column.dtype == "bool":
        schema = {"type": ["boolean", "string"], "enum": [True, False, *_BOOL_TEXT]}
    elif column.dtype == "string":
        schema = {"type": "string"}
        if column.values is not None:
            limits["enum"] = list(column.values)
    else:  # timestamp, date: ISO text
        fmt = "date" if column.dtype == "date" else "date-time"
        schema = {"type": "string", "format": fmt}
    if strict:
        schema.update(limits)
    elif limits:
        shown = ", ".join(f"{k} {v!r}" for k, v in limits.items())
        schema["description"] = f"Expected: {shown} (values outside are let through, warned)."
    if column.nullable:
        schema["type"] = [*_types(schema["type"]), "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    schema["x-shipyard-dtype"] = column.dtype
    return schema


def _types(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def endpoint_schemas(endpoint: Described, *, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """`<prefix>.Row`, `.RowsRequest`, `.ColumnsRequest` and `.PredictResponse` schemas."""
    prefix = _component_name(endpoint.name)
    columns = endpoint.signature.inputs
    values = {c.name: column_schema(c, strict=endpoint.strict_ranges) for c in columns}
    names = [c.name for c in columns]
    for carried in endpoint.signature.carried or ():  # optional: logged, never predicted on
        if carried.name not in values:
            schema = column_schema(carried)
            if carried.name == endpoint.signature.id_column:
                schema = {"type": ["string", "integer", "null"], "x-shipyard-dtype": "id"}
            schema["description"] = "Optional: logged with the prediction, not a model input."
            values[carried.name] = schema
    extra = endpoint.extra_columns
    row = {
        "type": "object",
        "properties": values,
        "required": names,
        "additionalProperties": extra,
        "description": f"One row for {endpoint.model} (every column, null where missing).",
    }
    column_lists = {
        "type": "object",
        "properties": {
            name: {"type": "array", "minItems": 1, "maxItems": max_rows, "items": schema}
            for name, schema in values.items()
        },
        "required": names,
        "additionalProperties": extra,
    }
    prediction: dict[str, Any] = {"type": "number"}
    if endpoint.task == "classification" and endpoint.signature.classes:
        prediction = {"type": "string", "enum": list(endpoint.signature.classes)}
    elif endpoint.task == "clustering":
        prediction = {"type": "integer"}
    response = {
        "allOf": [
            _ref("PredictResponse"),
            _obj(predictions={"type": "array", "items": prediction}),
        ]
    }
    return {
        f"{prefix}.Row": row,
        f"{prefix}.RowsRequest": _obj(
            ["rows"],
            rows={
                "type": "array",
                "minItems": 1,
                "maxItems": max_rows,
                "items": _ref(prefix + ".Row"),
            },
        ),
        f"{prefix}.ColumnsRequest": _obj(["columns"], columns=column_lists),
        f"{prefix}.PredictResponse": response,
    }


def _component_name(endpoint: str) -> str:
    return "endpoint." + re.sub(r"[^A-Za-z0-9._-]", "_", endpoint)


# -- the document -------------------------------------------------------------------------------


def _http_routes(routes: Iterable[BaseRoute]) -> list[HttpRoute]:
    return [r for r in routes if isinstance(r, HttpRoute)]


def _methods(route: HttpRoute) -> list[str]:
    return sorted((route.methods or set()) - {"HEAD"})


def undocumented(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path) of every route with no entry in `OPERATIONS`."""
    return [
        (method, route.path)
        for route in _http_routes(routes)
        for method in _methods(route)
        if (method, route.path) not in OPERATIONS
    ]


def _access(route: HttpRoute) -> Access | None:
    access = getattr(route.endpoint, "access", None)
    return access if isinstance(access, Access) else None


def _error_response(status: int, oip: bool) -> dict[str, Any]:
    response = _json(_ref("OipError" if oip else "Error"), _STATUS_TEXT[status])
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": _STRING}}
    elif status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": _STRING}
        }
    return response


def _operation(method: str, route: HttpRoute, names: list[str]) -> dict[str, Any]:
    path = route.path
    access = _access(route)
    op = OPERATIONS.get((method, path))
    if op is None:
        summary = (getattr(route.endpoint, "__doc__", None) or "").strip().split("\n")[0]
        op = Operation(
            f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
            summary or f"{method} {path}",
            "undocumented",
            {"description": "OK"},
        )
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if (method, path) not in OPERATIONS:
        out["x-shipyard-undocumented"] = True
    description = op.description
    if access is None:
        out["security"] = []
        description = f"{description} Open: no token needed.".strip()
    else:
        roles = ", ".join(access.roles)
        out["x-shipyard-roles"] = list(access.roles)
        description = f"{description} Needs a token with one of the roles: {roles}.".strip()
    out["description"] = description
    parameters = [dict(p) for p in op.parameters]
    for p in parameters:
        if p["name"] == "name" and p["in"] == "path" and names:
            p["schema"] = {"type": "string", "examples": names}
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = op.body
    responses: dict[str, Any] = {"200": op.ok}
    statuses = set(op.errors) | (set(_PROTECTED_ERRORS) if access is not None else set())
    oip = path.startswith("/v2")
    for status in sorted(statuses):
        responses[str(status)] = _error_response(status, oip)
    out["responses"] = responses
    return out


def _endpoint_predict(endpoint: Described, template: dict[str, Any]) -> dict[str, Any]:
    prefix = _component_name(endpoint.name)
    op = dict(template)
    op["operationId"] = f"predict.{endpoint.name}"
    op["summary"] = f"Predict with endpoint {endpoint.name!r} ({endpoint.model})."
    op["parameters"] = [p for p in template.get("parameters", []) if p["name"] != "name"]
    op["requestBody"] = _predict_body(
        _ref(f"{prefix}.RowsRequest"), _ref(f"{prefix}.ColumnsRequest")
    )
    responses = dict(template["responses"])
    responses["200"] = {**_PREDICT_OK, **_json(_ref(f"{prefix}.PredictResponse"))}
    op["responses"] = responses
    op["x-shipyard-revision"] = endpoint.revision
    return op


def openapi_document(
    routes: Iterable[BaseRoute],
    runtime_or_endpoints: Runtime | Iterable[Described],
    *,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of an app with `routes` serving `runtime_or_endpoints`.

    >>> doc = openapi_document(app.routes, app.state.runtime)
    >>> sorted(doc["paths"])[:2]
    ['/docs', '/health']
    """
    if isinstance(runtime_or_endpoints, Runtime):
        endpoints = described(runtime_or_endpoints)
    else:
        endpoints = sorted(runtime_or_endpoints, key=lambda e: e.name)
    names = [e.name for e in endpoints]
    paths: dict[str, dict[str, Any]] = {}
    for route in _http_routes(routes):
        item = paths.setdefault(route.path, {})
        for method in _methods(route):
            item[method.lower()] = _operation(method, route, names)
    components = _components(max_rows)
    template = paths.get("/v1/endpoints/{name}/predict", {}).get("post")
    for endpoint in endpoints:
        components["schemas"].update(endpoint_schemas(endpoint, max_rows=max_rows))
        if template is not None:
            paths[f"/v1/endpoints/{endpoint.name}/predict"] = {
                "post": _endpoint_predict(endpoint, template)
            }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Shipyard serving",
            "version": importlib.metadata.version("shipyard"),
            "description": "Predictions from the endpoints of one Shipyard workspace: /v1 "
            "(records or columns) and the Open Inference Protocol v2 (/v2). Every operation "
            "but /health and /v2/health/live needs `Authorization: Bearer <token>`. Errors "
            'answer {"error", "message", "details"} (under /v2: {"error": message, "type", '
            '"details"}).',
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "v1", "description": "Shipyard's own prediction API."},
            {"name": "v2", "description": "Open Inference Protocol v2 (KServe, Triton)."},
            {"name": "health", "description": "Liveness, readiness, metrics."},
            {"name": "docs", "description": "This description."},
        ],
        "paths": paths,
        "components": components,
    }


# -- serving it ---------------------------------------------------------------------------------


@dataclass
class DocumentCache:
    """The document (and its JSON) for one route table and set of endpoint revisions."""

    key: tuple[Any, ...] | None = None
    document: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    def get(self, routes: Sequence[BaseRoute], runtime: Runtime) -> tuple[dict[str, Any], bytes]:
        table = tuple((r.path, tuple(_methods(r))) for r in _http_routes(routes))
        served = tuple(sorted((n, r.revision) for n, r in runtime.routes.items()))
        key = (table, served, runtime.options.max_rows)
        if key != self.key:
            self.document = openapi_document(routes, runtime, max_rows=runtime.options.max_rows)
            self.body = dumps(self.document)
            self.key = key
        return self.document, self.body


def _cached(request: Request) -> tuple[dict[str, Any], bytes]:
    state = request.app.state
    cache = getattr(state, "openapi", None)
    if not isinstance(cache, DocumentCache):
        cache = state.openapi = DocumentCache()
    runtime: Runtime = state.runtime
    return cache.get(request.app.routes, runtime)


async def document(request: Request) -> Response:
    """GET /openapi.json."""
    _, body = _cached(request)
    return Response(body, 200, media_type="application/json")


async def docs(request: Request) -> Response:
    """GET /docs: the document as a plain HTML page."""
    doc, _ = _cached(request)
    return HTMLResponse(render_html(doc))


def render_html(doc: Mapping[str, Any]) -> str:
    """A self-contained page: every operation, and the columns of each endpoint's rows."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(doc['info']['title'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left}code{background:#f4f4f4}</style></head><body>",
        f"<h1>{e(doc['info']['title'])} {e(doc['info']['version'])}</h1>",
        f"<p>{e(doc['info']['description'])}</p>",
        "<p>The machine-readable form is <code>GET /openapi.json</code>.</p>",
        "<h2>Operations</h2><table><tr><th>Method</th><th>Path</th><th>Summary</th>"
        "<th>Who</th><th>Statuses</th></tr>",
    ]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            who = "open" if op.get("security") == [] else ", ".join(op.get("x-shipyard-roles", []))
            parts.append(
                f"<tr><td>{e(method.upper())}</td><td><code>{e(path)}</code></td>"
                f"<td>{e(op['summary'])}</td><td>{e(who)}</td>"
                f"<td>{e(' '.join(op['responses']))}</td></tr>"
            )
    parts.append("</table>")
    schemas = doc["components"]["schemas"]
    for name, row in schemas.items():
        if not (name.startswith("endpoint.") and name.endswith(".Row")):
            continue
        parts.append(f"<h2>{e(name[len('endpoint.') : -len('.Row')])}</h2>")
        parts.append(f"<p>{e(row.get('description', ''))}</p>")
        parts.append(
            "<table><tr><th>Column</th><th>Type</th><th>Null</th><th>Range</th>"
            "<th>Allowed</th></tr>"
        )
        for column, schema in row["properties"].items():
            types = _types(schema["type"])
            low, high = schema.get("minimum", ""), schema.get("maximum", "")
            allowed = ", ".join(str(v) for v in schema.get("enum", []) if v is not None)
            parts.append(
                f"<tr><td><code>{e(column)}</code></td><td>{e(schema['x-shipyard-dtype'])}</td>"
                f"<td>{'yes' if 'null' in types else 'no'}</td>"
                f"<td>{e(f'{low} … {high}' if low != '' or high != '' else '')}</td>"
                f"<td>{e(allowed)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
