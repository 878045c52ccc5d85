"""One API operation, declared once: path, roles, request and result schemas, the action.

The same declaration makes the Starlette route (`route()`) and the OpenAPI operation
(`api.openapi`), so the document cannot drift from what is served. A request goes:

    token check (serve.app.protected: role, rate)  →  query and body parsed into their
    schemas (422 naming the field)  →  the action, on a worker thread, with a workspace whose
    actor is the token's id (so every audit event names the token)  →  the result schema as
    JSON, with the request id in X-Request-ID.

    >>> Operation("GET", "/api/v1/tokens", list_tokens, ADMIN, "List tokens",
    ...           result=TokenPage, query=TokenQuery, tag="tokens")

Files go both ways without being held whole in memory. `body=STREAM` streams the raw request
body into a staging directory (`data.staging`, so a crashed server's leftovers are swept) and
hands the action an `Upload`; the body is refused with 413 once it passes the server's upload
limit (`Settings.max_upload_mb`), and a body that stops short of its Content-Length (the client
hung up) never reaches the action; either way the staging directory is removed. An operation's
`check` runs before the body is read, so a bad name or format costs no upload. An action
returns a `Download` (with `result=None, produces=<media type>`) to stream a file back, or an
`Answer` to pick one of the operation's other success statuses (`also`).
"""

from __future__ import annotations

import dataclasses
import secrets
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import orjson
from pydantic import BaseModel, Json, ValidationError
from pydantic.fields import FieldInfo
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from shipyard.api.cursor import Cursors, derive_key
from shipyard.api.schemas.common import ListQuery
from shipyard.core.errors import Invalid, TooLarge
from shipyard.core.records import Token
from shipyard.core.spec import ProjectSpec
from shipyard.data.staging import staging
from shipyard.serve.app import protected
from shipyard.serve.auth import Access
from shipyard.serve.headers import header
from shipyard.serve.limits import read_body
from shipyard.serve.runtime import Runtime
from shipyard.store.workspace import Workspace

PREFIX = "/api/v1"
STREAM: Literal["stream"] = "stream"  # `Operation.body`: the raw body, streamed to a file
_WRITE = 1 << 20  # upload bytes gathered per disk write (on a worker thread)


@dataclass(frozen=True)
class Upload:
    """A streamed request body in a staging file that lives as long as the action (empty, size
    0, when the operation's `check` sees it)."""

    path: Path
    size: int
    media_type: str | None  # the request's Content-Type, without parameters


@dataclass(frozen=True)
class Download:
    """A file to stream back: `chunks` is read on a worker thread as the client takes them."""

    chunks: Iterator[bytes]
    media_type: str
    filename: str
    etag: str  # the content's sha256: clients check what they received against it
    size: int | None = None


@dataclass(frozen=True)
class Answer:
    """A result sent with another of the operation's success statuses (`Operation.also`)."""

    body: BaseModel
    status: int


@dataclass(frozen=True)
class Call:
    """What an action receives: who calls, on which workspace, with what."""

    ws: Workspace  # acting as the token: audit events name `token.id`
    token: Token
    path: Mapping[str, str]
    query: Any  # an instance of the operation's `query` schema (or None)
    body: Any  # an instance of the operation's `body` schema, an `Upload` (STREAM), or None
    cursors: Cursors
    spec: ProjectSpec | None = None  # the server's project spec (`shipyard serve --spec`)

    def position(self, scope: str) -> Any:
        """Where the page starts: the position in the query's cursor (None: the beginning)."""
        query: ListQuery = self.query
        return self.cursors.read(scope, query.cursor)

    def next_cursor(self, scope: str, position: Any) -> str | None:
        return None if position is None else self.cursors.make(scope, position)


Action = Callable[[Call], BaseModel | Answer | Download]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    action: Action
    access: Access
    summary: str
    result: type[BaseModel] | None  # None: the action answers a `Download` of `produces`
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | Literal["stream"] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()  # beside 401, 403, 422 and 429, which every operation has
    also: tuple[int, ...] = ()  # other success statuses, answered with `Answer`
    produces: str | None = None  # the media type of a `Download`
    changes: bool | None = None  # stores or changes something (default: any method but GET)
    check: Callable[[Call], None] | None = None  # STREAM: run before the body (Upload empty)

    @property
    def mutating(self) -> bool:
        return self.method != "GET" if self.changes is None else self.changes


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


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin is list or annotation is list


def _repeats(field: FieldInfo) -> bool:
    """A list sent as a repeated parameter (?c=a&c=b); a `Json[list]` comes as one string."""
    is_json = any(m is Json or type(m) is Json for m in field.metadata)
    return _is_list(field.annotation) and not is_json


def _query(request: Request, schema: type[BaseModel] | None) -> BaseModel | None:
    """The query as `schema`; a list field takes every value of its repeated parameter."""
    if schema is None:
        return None
    params = request.query_params
    data = {
        name: params.getlist(name)
        if name in schema.model_fields and _repeats(schema.model_fields[name])
        else params[name]
        for name in params
    }
    return parse(schema, data, "query")


def _content_length(request: Request) -> int | None:
    declared = header(request, b"content-length")
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError:
        raise Invalid(
            f"Content-Length {declared[:40]!r} is not a number of bytes; send a valid header or "
            "none (chunked).",
            details={"in": "body"},
        ) from None


def _over_limit(limit: int, received: str) -> TooLarge:
    return TooLarge(
        f"the upload is {received}, over the server's limit of {limit:,} bytes; nothing was "
        "stored. Split the file, or ask the operator to raise SHIPYARD_MAX_UPLOAD_MB.",
        details={"limit": limit},
    )


def _media_type(request: Request) -> str | None:
    media_type = header(request, b"content-type")
    return media_type.split(";")[0].strip().lower() if media_type else None


async def _receive(request: Request, upload: Upload, limit: int) -> Upload:
    """Stream the request body into `upload.path`, refusing it past `limit` bytes."""
    into = upload.path
    declared = _content_length(request)
    if declared is not None and declared > limit:
        raise _over_limit(limit, f"{declared:,} bytes (Content-Length)")
    total = 0
    pending = bytearray()
    with into.open("wb") as fh:
        # A client that hangs up raises ClientDisconnect here (uvicorn's http.disconnect).
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _over_limit(limit, f"more than {limit:,} bytes (streamed)")
            pending += chunk
            if len(pending) >= _WRITE:
                await anyio.to_thread.run_sync(fh.write, bytes(pending))
                pending.clear()
        await anyio.to_thread.run_sync(fh.write, bytes(pending))
    if declared is not None and total != declared:
        raise Invalid(
            f"the upload stopped after {total:,} of its {declared:,} bytes (Content-Length); "
            "nothing was stored. Send the whole file again.",
            details={"in": "body", "received": total, "declared": declared},
        )
    return dataclasses.replace(upload, size=total)


async def _body(
    request: Request, rt: Runtime, schema: type[BaseModel] | Literal["stream"] | None
) -> BaseModel | None:
    if schema is None or schema == STREAM:
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
        call = Call(
            ws=dataclasses.replace(rt.ws, actor=token.id),
            token=token,
            path=dict(request.path_params),
            query=query,
            body=await _body(request, rt, op.body),
            cursors=_cursors(request, rt),
            spec=getattr(request.app.state, "project_spec", None),
        )
        with ExitStack() as stack:  # an upload's staging directory, removed however it ends
            if op.body == STREAM:
                stage = await anyio.to_thread.run_sync(stack.enter_context, staging(rt.ws.scratch))
                call = dataclasses.replace(
                    call, body=Upload(stage / "upload", 0, _media_type(request))
                )
                if op.check is not None:  # a typo is refused before gigabytes are sent
                    await anyio.to_thread.run_sync(op.check, call)
                limit = rt.settings.max_upload_mb * 1024 * 1024
                call = dataclasses.replace(call, body=await _receive(request, call.body, limit))
            result = await anyio.to_thread.run_sync(op.action, call)
        headers = {"x-request-id": rid}
        if isinstance(result, Download):
            headers["etag"] = f'"{result.etag}"'
            headers["content-disposition"] = f'attachment; filename="{result.filename}"'
            if result.size is not None:
                headers["content-length"] = str(result.size)
            return StreamingResponse(result.chunks, 200, headers, media_type=result.media_type)
        body_model, status = (
            (result.body, result.status) if isinstance(result, Answer) else (result, op.status)
        )
        return Response(
            body_model.model_dump_json(by_alias=True),
            status,
            headers,
            media_type="application/json",
        )

    endpoint.__name__ = op.action.__name__
    endpoint.__doc__ = op.summary
    guarded = protected(op.access, endpoint)
    guarded.operation = op  # type: ignore[attr-defined]  # read by api.openapi and the tests
    return Route(op.path, guarded, methods=[op.method])
