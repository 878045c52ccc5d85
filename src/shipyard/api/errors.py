"""Error answers of /api/v1: serve's one exception → status mapping, plus the request id.

`serve.responses.error_response` decides the status and the body (`ShipyardError.http_status`,
Starlette's 404/405, 500 for anything unexpected). Under /api/v1 this adds `request_id` (also
in X-Request-ID), names the API's own routes in a 404, and replaces the workspace's absolute
paths in messages with `$SHIPYARD_HOME`, so an answer never shows where the server keeps its
files. Every other path is answered exactly as the serving app answers it.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from shipyard.api.operation import PREFIX, request_id
from shipyard.serve.responses import dumps, error_response

_DROP = {"content-length", "content-type"}


def _scrub(message: str, request: Request) -> str:
    runtime = getattr(request.app.state, "runtime", None)
    settings = getattr(runtime, "settings", None)
    if settings is None:
        return message
    for path in sorted({settings.artifacts_url, str(settings.home)}, key=len, reverse=True):
        if path.startswith("/"):
            message = message.replace(
                path, "$SHIPYARD_HOME" if path == str(settings.home) else "$SHIPYARD_ARTIFACTS"
            )
    return message


async def api_error_response(request: Request, exc: Exception) -> Response:
    """The answer for an exception: serve's, with the request id under /api/v1."""
    response = await error_response(request, exc)
    path = request.url.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")):
        return response
    payload = orjson.loads(_scrub(bytes(response.body).decode(), request))
    rid = request_id(request)
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        payload["message"] = (
            f"no route {request.method} {path}; the API's routes are listed in GET /openapi.json "
            "(and /docs)."
        )
    payload["request_id"] = rid
    headers = {k: v for k, v in response.headers.items() if k not in _DROP}
    headers["x-request-id"] = rid
    return Response(dumps(payload), response.status_code, headers, media_type="application/json")
