"""`create_app()`: the one server `shipyard serve` runs: the serving app plus the control plane.

    >>> app = create_app(Settings.load(), max_batch=64)     # the serving app's keywords
    >>> uvicorn.run(app)

The serving app (`serve.app.create_app`) is built as it is, with its prediction fast lane
(`serve.lane`) first and untouched; the /api/v1 operations (`api.routes.OPERATIONS`) are
appended to its routes and so go through Starlette, behind the same token check. /openapi.json
and /docs are replaced by the merged document (`api.openapi`); /docs opens without a token.
`serve` never imports `api`: this module composes them, one layer up.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from shipyard.api.access import READ
from shipyard.api.errors import api_error_response
from shipyard.api.openapi import docs, openapi_json
from shipyard.api.operation import route
from shipyard.api.routes import OPERATIONS
from shipyard.core.errors import ShipyardError
from shipyard.core.settings import Settings
from shipyard.core.spec import ProjectSpec
from shipyard.serve.app import create_app as create_serving_app
from shipyard.serve.app import protected


def create_app(
    settings: Settings, *, spec: ProjectSpec | None = None, **serve_options: Any
) -> Starlette:
    """The serving app of `settings`' workspace with the REST API mounted under /api/v1.

    `spec`: the project spec the monitor report and the loop judge with (none: the monitor's
    defaults, and no loop); `serve_options`: the keywords of `serve.app.create_app` (batching,
    limits, rate, ...).
    """
    app = create_serving_app(settings, **serve_options)
    app.state.project_spec = spec
    replaced = {
        "/openapi.json": Route("/openapi.json", protected(READ, openapi_json), methods=["GET"]),
        "/docs": Route("/docs", docs, methods=["GET"]),
    }
    routes = app.router.routes
    for i, existing in enumerate(routes):
        path = getattr(existing, "path", None)
        if path in replaced:
            routes[i] = replaced.pop(path)
    routes.extend(route(op) for op in OPERATIONS)
    handler: Any = api_error_response
    for kind in (ShipyardError, HTTPException, Exception):
        app.exception_handlers[kind] = handler
    return app
