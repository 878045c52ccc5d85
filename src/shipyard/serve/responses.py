"""JSON responses, and the one place where an exception becomes an HTTP status.

    ShipyardError      → its class's `http_status` (core/errors.py), body `to_dict()`
    HTTPException      → Starlette's own status (unknown route 404, wrong method 405)
    anything else      → 500, logged with its traceback, no internals in the body

Under /v2 (the Open Inference Protocol) the body is `{"error": "<message>", ...}`, the shape
OIP clients read. 401 answers carry `WWW-Authenticate`, 429 answers `Retry-After`.

No answer shows the server's file system (`without_paths`, on the message and the details):
the workspace and the artifact store read `$SHIPYARD_HOME` and `$SHIPYARD_ARTIFACTS`, and any
other absolute path is cut to its last part (`…/shipyard.db`); the server log keeps the full
text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shipyard.core.errors import RateLimited, ShipyardError
from shipyard.core.settings import Settings
from shipyard.serve.limits import retry_after_header

log = logging.getLogger("shipyard.serve")

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_HTTP_NAMES = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}
# An absolute path: POSIX (one slash or more, as after "sqlite:///", then two segments or
# more; the API's own routes excepted) or Windows ("C:\\..."), up to a space or a quote.
_PATH_RE = re.compile(
    r"(?<![\w.~-])(?:/+(?!(?:v1|v2|health|ready|metrics|docs|openapi\.json)\b)"
    r"(?:[^\s/'\"`]+/)+|[A-Za-z]:\\(?:[^\s\\'\"`]+\\)+)([^\s/\\'\"`),;]*)"
)


def without_paths(text: str, settings: Settings | None = None) -> str:
    """`text` as a client may see it: the workspace (`settings.home`) and artifact store as
    `$SHIPYARD_HOME` and `$SHIPYARD_ARTIFACTS`, every other absolute path cut to its last part.

    >>> without_paths("no Shipyard workspace at /srv/ml/.shipyard; run `shipyard init`")
    'no Shipyard workspace at …/.shipyard; run `shipyard init`'
    """
    if "/" not in text and "\\" not in text:
        return text
    if settings is not None:
        for path, name in _roots(settings):
            text = text.replace(path, name)
    return _PATH_RE.sub(lambda m: "…/" + m[1] if m[1] else "…/", text)


def _roots(settings: Settings) -> list[tuple[str, str]]:
    """The server's own directories and their names, the longest first."""
    roots = [
        (settings.artifacts_url, "$SHIPYARD_ARTIFACTS"),
        (str(settings.home), "$SHIPYARD_HOME"),
    ]
    return sorted(((p, n) for p, n in roots if p.startswith("/")), key=lambda r: -len(r[0]))


def _scrubbed(value: Any, settings: Settings | None) -> Any:
    """Error details with `without_paths` applied to every string in them."""
    if isinstance(value, str):
        return without_paths(value, settings)
    if isinstance(value, dict):
        return {k: _scrubbed(v, settings) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, settings) for v in value]
    return value


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=_OPTIONS, default=_default)


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays orjson does not take natively (object, str)
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(data), status, headers, media_type="application/json")


class AnswerResponse(Response):
    """A prediction's 200: JSON `body`, its `x-request-id`, then `after()` once it is sent
    (the log, shadows). Headers are built directly, without `Response.__init__`'s general
    handling or a `BackgroundTask`: together a few percent of a one-row prediction's time."""

    media_type = "application/json"

    def __init__(self, body: bytes, request_id: str, after: Callable[[], None]) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        self._after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})
        self._after()


async def error_response(request: Request, exc: Exception) -> Response:
    """The HTTP answer for any exception a route raised (registered for every class)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ShipyardError):
        runtime = getattr(request.app.state, "runtime", None)
        status = exc.http_status
        payload = _scrubbed(exc.to_dict(), getattr(runtime, "settings", None))
        if isinstance(exc, RateLimited):
            headers["retry-after"] = retry_after_header(float(exc.details.get("retry_after", 1)))
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        headers.update(exc.headers or {})
        payload = {
            "error": _HTTP_NAMES.get(status, "HTTPError"),
            "message": _http_message(request, status, str(exc.detail)),
            "details": {},
        }
    elif isinstance(exc, ClientDisconnect):  # the client hung up: nothing to answer or fix
        log.debug("client disconnected during %s %s", request.method, request.url.path)
        status = 499
        payload = {
            "error": "ClientDisconnect",
            "message": "the client disconnected.",
            "details": {},
        }
    else:
        status = 500
        log.error(
            "unexpected error on %s %s",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        payload = {
            "error": "InternalError",
            "message": f"unexpected {type(exc).__name__} on the server; the server log has the "
            "details. Retry, and report it if it persists.",
            "details": {},
        }
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="shipyard"'
    kind = payload["error"]
    if request.url.path.startswith("/v2"):
        payload = {"error": payload["message"], "type": kind, "details": payload["details"]}
    metrics = getattr(request.app.state, "metrics", None)
    runtime = getattr(request.app.state, "runtime", None)
    if metrics is not None and runtime is not None:
        # Only served names become labels: unknown ones would let clients grow the series.
        name = str(request.path_params.get("name", ""))
        endpoint = name if name in runtime.routes else ""
        model = str(getattr(request.state, "model", ""))
        metrics.requests.labels(endpoint, model, str(status)).inc()
        metrics.errors.labels(endpoint, model, kind).inc()
    return Response(dumps(payload), status, headers, media_type="application/json")


def _http_message(request: Request, status: int, detail: str) -> str:
    if status == 404:
        return (
            f"no route {request.method} {request.url.path}; the API has /health, /ready, "
            "/metrics, /v1/endpoints[/NAME[/predict|/feedback]] and /v2/models/NAME[/infer]; "
            "GET /openapi.json describes them all."
        )
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path} ({detail})."
    return detail
