"""`ServingApp`: the Starlette app, with a direct lane for the prediction routes.

Every request to Starlette passes its error middleware, its exception middleware, the router
(a regular expression per route until one matches) and the per-route wrappers, and every
message the response sends goes back out through two of those wrappers. For a one-row
prediction that was an eighth of the event loop's time (measured with py-spy under load,
benchmarks/serving). `ServingApp` sends `POST /v1/endpoints/{name}/predict` and
`POST /v2/models/{name}/infer` straight to the endpoint their `Route` holds (the same
function, behind the same token check: `serve.app.protected`), and turns an exception into its
response with the app's own handler (`serve.responses.error_response`), as the middleware
would. Everything else, and any path the lane does not recognise exactly, goes through
Starlette as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

# (path prefix, path suffix) of the routes the lane serves; the name between them is one
# non-empty path segment, as Starlette's "{name}" matches.
LANES = {
    ("/v1/endpoints/", "/predict"): "/v1/endpoints/{name}/predict",
    ("/v2/models/", "/infer"): "/v2/models/{name}/infer",
}


class ServingApp(Starlette):
    """A Starlette app whose POST prediction routes skip the middleware and the router."""

    def __init__(self, *, on_error: ErrorHandler, runtime: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime  # read on every request (`app.state` is a slower look-up)
        self._on_error = on_error
        by_path = {r.path: r for r in self.routes if isinstance(r, Route)}
        self._lanes: list[tuple[str, str, Endpoint]] = [
            (prefix, suffix, by_path[path].endpoint) for (prefix, suffix), path in LANES.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._lane(scope) if scope["type"] == "http" else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._on_error(request, exc)
        await response(scope, receive, send)

    def _lane(self, scope: Scope) -> Endpoint | None:
        """The endpoint for a POST to a prediction route; None for anything else."""
        if scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        for prefix, suffix, endpoint in self._lanes:
            if path.startswith(prefix) and path.endswith(suffix):
                name = path[len(prefix) : -len(suffix)]
                if name and "/" not in name:
                    scope["path_params"] = {"name": name}
                    return endpoint
        return None
