"""One API operation, declared once: path, roles, request and result schemas, the action.

The same declaration makes the Starlette route (`route()`) and the OpenAPI operation
(`api.openapi`), so the document cannot drift from what is served. A request goes:

    token check (serve.app.protected: role, rate)  →  query and body parsed into their
    schemas (422 naming the field)  →  the action, on a worker thread, with a workspace whose
    actor is the token's id (so every audit event names the token)  →  the result schema as
    JSON, with the request id in X-Request-ID.

    >>> Operation("GET", "/api/v1/tokens", list_tokens, ADMIN, "List tokens",
    ...           result=TokenPage, query=TokenQuery, tag="tokens")
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.api.cursor import Cursors, derive_key
from shipyard.api.schemas.common import ListQuery
from shipyard.core.errors import Invalid
from shipyard.core.records import Token
from shipyard.core.spec import ProjectSpec
from shipyard.serve.app import protected
from shipyard.serve.auth import Access
from shipyard.serve.limits import read_body
from shipyard.serve.runtime import Runtime
from shipyard.store.workspace import Workspace

PREFIX = "/api/v1"


@dataclass(frozen=True)
class Call:
    """What an action receives: who calls, on which workspace, with what."""

    ws: Workspace  # acting as the token: audit events name `token.id`
    token: Token
    path: Mapping[str, str]
    query: Any  # an instance of the operation's `query` schema (or None)
    body: Any  # an instance of the operation's `body` schema (or None)
    cursors: Cursors
    spec: ProjectSpec | None = None  # the server's project spec (`shipyard serve --spec`)

    def position(self, scope: str) -> Any:
        """Where the page starts: the position in the query's cursor (None: the beginning)."""
        query: ListQuery = self.query
        return self.cursors.read(scope, query.cursor)

    def next_cursor(self, scope: str, position: Any) -> str | None:
        return None if position is None else self.cursors.make(scope, position)


Action = Callable[[Call], BaseModel]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    action: Action
    access: Access
    summary: str
    result: type[BaseModel]
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()  # beside 401, 403, 422 and 429, which every operation has

    @property
    def mutating(self) -> bool:
        return self.method != "GET"


def request_id(request: Request) -> str:
    """This request's id (made on first use), sent back in X-Request-ID and error bodies."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = "req_" + secrets.token_hex(8)
    return str(rid)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(the whole body)"


def parse(schema: type[BaseModel], data: Any, where: str) -> BaseModel:
    """`data` as `schema`, or `Invalid` naming every bad field, its value and what is expected."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        problems = [
            {
                "field": _field(e["loc"]),
                "message": e["msg"],
                "type": e["type"],
                **({"input": e["input"]} if isinstance(e["input"], str | int | float) else {}),
            }
            for e in errors
        ]
        shown = "; ".join(
            f"{where} field {p['field']!r}: {p['message']}"
            + (f" (got {p['input']!r})" if "input" in p and p["type"] != "missing" else "")
            for p in problems[:5]
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise Invalid(
            f"{shown}{more}. Fix the field and send the request again; GET /openapi.json "
            "describes every schema.",
            details={"in": where, "errors": problems},
        ) from None


def _query(request: Request, schema: type[BaseModel] | None) -> BaseModel | None:
    if schema is None:
        return None
    return parse(schema, dict(request.query_params), "query")


async def _body(request: Request, rt: Runtime, schema: type[BaseModel] | None) -> BaseModel | None:
    if schema is None:
        return None
    raw = await read_body(request, rt.options.max_body)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            f"the request body is not JSON ({exc.msg} at byte {exc.pos}); send a JSON object "
            "with Content-Type: application/json.",
            details={"in": "body"},
        ) from None
    if not isinstance(data, dict):
        raise Invalid(
            f"the request body is a JSON {type(data).__name__}; send a JSON object.",
            details={"in": "body"},
        )
    return parse(schema, data, "body")


def _cursors(request: Request, rt: Runtime) -> Cursors:
    state = request.app.state
    cursors = getattr(state, "api_cursors", None)
    if cursors is None:
        cursors = state.api_cursors = Cursors(derive_key(rt.ws.signer.sign))
    return cursors


def route(op: Operation) -> Route:
    """The Starlette route of `op`, behind its token check."""

    async def endpoint(request: Request) -> Response:
        rid = request_id(request)
        rt: Runtime = request.app.state.runtime
        token: Token = request.state.token
        query = _query(request, op.query)
        body = await _body(request, rt, op.body)
        call = Call(
            ws=dataclasses.replace(rt.ws, actor=token.id),
            token=token,
            path=dict(request.path_params),
            query=query,
            body=body,
            cursors=_cursors(request, rt),
            spec=getattr(request.app.state, "project_spec", None),
        )
        result = await anyio.to_thread.run_sync(op.action, call)
        return Response(
            result.model_dump_json(by_alias=True),
            op.status,
            {"x-request-id": rid},
            media_type="application/json",
        )

    endpoint.__name__ = op.action.__name__
    endpoint.__doc__ = op.summary
    guarded = protected(op.access, endpoint)
    guarded.operation = op  # type: ignore[attr-defined]  # read by api.openapi and the tests
    return Route(op.path, guarded, methods=[op.method])
