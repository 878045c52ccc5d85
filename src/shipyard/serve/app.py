"""`create_app()`: the ASGI application that serves every endpoint of a workspace.

    >>> app = create_app(Settings.load(), max_batch=64, max_wait_ms=2)
    >>> uvicorn.run(app)            # or `shipyard serve`

Routes (every one but /health and /v2/health/live needs `Authorization: Bearer <token>`):

    GET  /health                          open      liveness
    GET  /ready                           any role  every endpoint's models loaded (else 503)
    GET  /metrics                         viewer    Prometheus
    GET  /openapi.json                    viewer    the OpenAPI 3.1 description (serve.openapi)
    GET  /docs                            viewer    the same as an HTML page, no external assets
    GET  /v1/endpoints                    viewer    routing of every endpoint, and what is served
    GET  /v1/endpoints/{name}             viewer
    POST /v1/endpoints/{name}/predict     predictor {"rows": [...]} or {"columns": {...}}
    POST /v1/endpoints/{name}/feedback    predictor {"items": [{"request_id", "label"}]}
    GET  /v2                              any role  OIP server metadata
    GET  /v2/health/live                  open
    GET  /v2/health/ready                 any role
    GET  /v2/models/{name}                any role  OIP model metadata
    GET  /v2/models/{name}/ready          any role
    POST /v2/models/{name}/infer          predictor

"viewer" admits viewer, scientist, deployer and admin tokens; "predictor" admits predictor,
deployer and admin tokens (`serve.auth`). A prediction answers with the version that answered
(`model`) and a `request_id` (also the `X-Request-ID` header) to send feedback for; the
`X-Shipyard-Key` header (a user or account id) makes A/B and canary routing sticky. No state
lives outside the app: the factory builds a `Runtime` per app, started and stopped by the
lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as HttpRoute

from shipyard.core.errors import ShipyardError
from shipyard.core.settings import Settings
from shipyard.core.spec import ServeSpec
from shipyard.serve import handlers, oip, openapi
from shipyard.serve.auth import ANY, PREDICT, READ, Access
from shipyard.serve.headers import header
from shipyard.serve.lane import ServingApp
from shipyard.serve.limits import DEFAULT_MAX_BODY
from shipyard.serve.metrics import Metrics
from shipyard.serve.responses import error_response
from shipyard.serve.runtime import Runtime, ServeOptions

Endpoint = Callable[[Request], Awaitable[Response]]
_SERVE_DEFAULTS = ServeSpec()
OPEN_PATHS = frozenset({"/health", "/v2/health/live"})


def protected(access: Access, handler: Endpoint) -> Endpoint:
    """`handler` behind a bearer token with one of `access`'s roles, and the token's rate."""

    async def endpoint(request: Request) -> Response:
        rt = handlers.runtime(request)
        given = header(request, b"authorization")
        token = rt.auth.cached(given) or await rt.auth.token(given)
        access.check(token)
        if rt.limiter is not None:
            rt.limiter.check(token.id)
        request.state.token = token
        return await handler(request)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    endpoint.access = access  # type: ignore[attr-defined]  # read by serve.openapi
    return endpoint


def routes() -> list[HttpRoute]:
    get, post = ["GET"], ["POST"]
    # Starlette tries the routes in order: the prediction routes, the hot ones, come first.
    return [
        HttpRoute(
            "/v1/endpoints/{name}/predict", protected(PREDICT, handlers.predict), methods=post
        ),
        HttpRoute("/v2/models/{name}/infer", protected(PREDICT, oip.infer), methods=post),
        HttpRoute("/health", handlers.health, methods=get),
        HttpRoute("/ready", protected(ANY, handlers.ready), methods=get),
        HttpRoute("/metrics", protected(READ, handlers.metrics), methods=get),
        HttpRoute("/openapi.json", protected(READ, openapi.document), methods=get),
        HttpRoute("/docs", protected(READ, openapi.docs), methods=get),
        HttpRoute("/v1/endpoints", protected(READ, handlers.list_all), methods=get),
        HttpRoute("/v1/endpoints/{name}", protected(READ, handlers.show), methods=get),
        HttpRoute(
            "/v1/endpoints/{name}/feedback", protected(PREDICT, handlers.feedback), methods=post
        ),
        HttpRoute("/v2", protected(ANY, oip.server_metadata), methods=get),
        HttpRoute("/v2/health/live", oip.live, methods=get),
        HttpRoute("/v2/health/ready", protected(ANY, oip.server_ready), methods=get),
        HttpRoute("/v2/models/{name}", protected(ANY, oip.model_metadata), methods=get),
        HttpRoute("/v2/models/{name}/ready", protected(ANY, oip.model_ready), methods=get),
    ]


def create_app(
    settings: Settings,
    *,
    max_batch: int = _SERVE_DEFAULTS.max_batch,
    max_wait_ms: float = _SERVE_DEFAULTS.max_wait_ms,
    max_body: int = DEFAULT_MAX_BODY,
    max_rows: int = 10_000,
    rate: float | None = 1000.0,
    burst: float | None = None,
    poll_interval: float = 1.0,
    token_ttl: float = 1.0,
) -> Starlette:
    """The serving app for the workspace `settings` names.

    `max_batch`/`max_wait_ms`: micro-batching (the project spec's `serve:` defaults);
    `max_body`: bytes per request (413 beyond); `max_rows`: rows per request (422 beyond);
    `rate`/`burst`: requests a second per token and the burst allowed (429 beyond; None turns
    the limit off; burst defaults to twice the rate); `poll_interval`: seconds between checks
    for routing changes; `token_ttl`: seconds a token look-up is trusted (a revoked token stops
    working within it).
    """
    options = ServeOptions(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_body=max_body,
        max_rows=max_rows,
        rate=rate,
        burst=burst,
        poll_interval=poll_interval,
        token_ttl=token_ttl,
    )
    metrics = Metrics()
    runtime = Runtime(settings, options, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await runtime.start()
            yield
        finally:  # also after a failed start: close whatever was opened
            await runtime.stop()

    handler: Any = error_response
    app = ServingApp(
        on_error=error_response,
        runtime=runtime,
        routes=routes(),
        exception_handlers={
            ShipyardError: handler,
            HTTPException: handler,
            Exception: handler,
        },
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.options = options
    app.state.openapi = openapi.DocumentCache()
    return app
