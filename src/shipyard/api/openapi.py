"""The OpenAPI 3.1 document of the whole server: the control plane's operations, generated
from their wire schemas (pydantic's JSON schemas), merged with the serving document
(`serve.openapi`: health, metrics, /v1 and /v2 prediction routes with each served endpoint's
own predict schema derived from its signature).

    GET /openapi.json   viewer   the full document (names served endpoints and their columns)
    GET /docs           open     the same as HTML, without the served endpoints' names and
                                 columns; the API it describes still needs a token

    >>> doc = document(app.routes, app.state.runtime)
    >>> doc["paths"]["/api/v1/runs"]["get"]["x-shipyard-roles"]
    ['viewer', 'scientist', 'deployer', 'admin']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from shipyard.api.operation import STREAM, Operation
from shipyard.api.schemas.common import ApiError
from shipyard.serve import openapi as serving
from shipyard.serve.responses import dumps
from shipyard.serve.runtime import Runtime

_REF = "#/components/schemas/"
_ALWAYS = (401, 403, 422, 429, 503)
_STATUS_TEXT = {
    401: "No token, or an unknown or revoked one (`WWW-Authenticate: Bearer`).",
    403: "The token's role may not call this operation.",
    404: "What the path names does not exist.",
    409: "The change clashes with what is stored (for endpoints: another change came first; "
    "`details.revision` is the current revision).",
    413: "The request body is over the server's size limit.",
    422: "The query or body does not fit its schema (`details.errors` names each field), or a "
    "cursor was changed or belongs to other filters.",
    429: "Over the token's rate limit; retry after `Retry-After` seconds.",
    501: "Not available on this server (e.g. the loop, on a server without a project spec).",
    503: "The server is starting or stopping, or the database cannot be reached; retry.",
}
_TAGS = [
    {"name": "tokens", "description": "API tokens (admin)."},
    {"name": "audit", "description": "The hash-chained audit log."},
    {"name": "datasets", "description": "Dataset versions, profiles and diffs."},
    {"name": "runs", "description": "Tracked runs and metric histories."},
    {"name": "models", "description": "Registered model versions, aliases and statuses."},
    {"name": "endpoints", "description": "Endpoints and their routing."},
    {"name": "monitor", "description": "Drift, decay and SLO reports of an endpoint."},
    {"name": "alerts", "description": "Monitoring alerts and their acknowledgement."},
    {"name": "loop", "description": "The retrain loop: run a turn, rollouts, stop, pause."},
]


def operation_of(route: BaseRoute) -> Operation | None:
    """The API operation a route serves (None for the serving routes)."""
    endpoint = getattr(route, "endpoint", None)
    op = getattr(endpoint, "operation", None)
    return op if isinstance(op, Operation) else None


def _hoist(name: str, definition: dict[str, Any], into: dict[str, Any]) -> None:
    known = into.setdefault(name, definition)
    if known != definition:  # two models of one name: a $ref would point at the wrong one
        raise RuntimeError(f"two different schemas are both named {name!r}")


def _schemas(models: Iterable[type[BaseModel]], mode: Any, into: dict[str, Any]) -> None:
    """Each model's JSON schema and its nested definitions, hoisted into `into`."""
    for model in models:
        schema = model.model_json_schema(ref_template=_REF + "{model}", mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            _hoist(name, definition, into)
        _hoist(model.__name__, schema, into)


def _parameters(op: Operation, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF + "{model}", mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            _hoist(name, definition, components)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _error(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": _STATUS_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": _REF + "ApiError"}}},
    }
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if status == 429:
        out["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return out


def _success(op: Operation, status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": {"schema": {"type": "string"}}}
    if op.result is None:  # a file, streamed
        headers["ETag"] = {"description": "The content's sha256.", "schema": {"type": "string"}}
        headers["Content-Disposition"] = {"schema": {"type": "string"}}
        content = {op.produces or "application/octet-stream": {"schema": {"type": "string"}}}
    else:
        content = {"application/json": {"schema": {"$ref": _REF + op.result.__name__}}}
    return {
        "description": {200: "OK", 201: "Created"}.get(status, "OK"),
        "headers": headers,
        "content": content,
    }


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    roles = op.access.roles
    out: dict[str, Any] = {
        "operationId": f"{op.tag}.{op.action.__name__.rstrip('_')}",
        "summary": op.summary,
        "description": f"{op.summary} Needs a token with one of the roles: {', '.join(roles)}."
        + (" Audited under the token's id." if op.mutating else ""),
        "tags": [op.tag],
        "security": [{"bearer": []}],
        "x-shipyard-roles": roles,
    }
    params = _parameters(op, components)
    if params:
        out["parameters"] = params
    if op.body == STREAM:
        out["requestBody"] = {
            "required": True,
            "description": "The file's bytes as the raw body, of any Content-Type (not a "
            "multipart form).",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    elif op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + op.body.__name__}}},
        }
    responses: dict[str, Any] = {}
    for status in (op.status, *op.also):
        responses[str(status)] = _success(op, status)
    statuses = {*_ALWAYS, *op.errors, *((413,) if op.body is not None else ())}
    for status in sorted(statuses):
        responses[str(status)] = _error(status)
    out["responses"] = responses
    return out


def api_document(operations: Sequence[Operation]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) of the API operations."""
    components: dict[str, Any] = {}
    results = [op.result for op in operations if op.result is not None]
    _schemas([*results, ApiError], "serialization", components)
    bodies = [op.body for op in operations if isinstance(op.body, type)]  # not STREAM
    _schemas(bodies, "validation", components)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return paths, components


def document(
    routes: Sequence[BaseRoute], runtime: Runtime | None, *, max_rows: int = 10_000
) -> dict[str, Any]:
    """The server's document; `runtime` None leaves out the served endpoints (for /docs)."""
    operations = [op for r in routes if (op := operation_of(r)) is not None]
    serving_routes = [r for r in routes if operation_of(r) is None]
    doc = serving.openapi_document(
        serving_routes, runtime if runtime is not None else [], max_rows=max_rows
    )
    paths, schemas = api_document(operations)
    for name, schema in schemas.items():
        _hoist(name, schema, doc["components"]["schemas"])
    doc["paths"].update(paths)
    doc["tags"] = [*doc["tags"], *_TAGS]
    doc["info"]["title"] = "Shipyard"
    doc["info"]["description"] = (
        "The control plane (/api/v1: tokens, audit, datasets, runs, models, endpoints) and "
        "the prediction routes of one Shipyard workspace. "
        + doc["info"]["description"]
        + ' Errors under /api/v1 answer {"error", "message", "details", "request_id"}; lists '
        "are paged with `limit` and the opaque `cursor` each page's `next_cursor` gives."
    )
    return doc


class DocumentCache:
    """The document, rebuilt only when the routes or the served revisions change."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._body = b""
        self._document: dict[str, Any] = {}

    def get(self, request: Request, *, endpoints: bool) -> tuple[dict[str, Any], bytes]:
        runtime: Runtime = request.app.state.runtime
        routes = request.app.routes
        served = tuple(sorted((n, r.revision) for n, r in runtime.routes.items()))
        key = (len(routes), served if endpoints else (), runtime.options.max_rows)
        if key != self._key:
            self._document = document(
                routes, runtime if endpoints else None, max_rows=runtime.options.max_rows
            )
            self._body = dumps(self._document)
            self._key = key
        return self._document, self._body


def _cache(request: Request, name: str) -> DocumentCache:
    cache = getattr(request.app.state, name, None)
    if not isinstance(cache, DocumentCache):
        cache = DocumentCache()
        setattr(request.app.state, name, cache)
    return cache


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the whole server's document, with every served endpoint."""
    _, body = _cache(request, "api_openapi").get(request, endpoints=True)
    return Response(body, 200, media_type="application/json")


async def docs(request: Request) -> Response:
    """GET /docs (open): the document as HTML, without the served endpoints' details."""
    doc, _ = _cache(request, "api_docs").get(request, endpoints=False)
    return HTMLResponse(serving.render_html(doc))
