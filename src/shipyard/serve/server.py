"""Run the serving app under uvicorn (uvloop and httptools when installed).

    >>> run(settings, host="127.0.0.1", port=8000, workers=1, on_listen=print)

With `workers` > 1, uvicorn's supervisor starts that many processes on one shared socket;
each builds its own app from the same factory (its own models, batchers and log writer).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from shipyard.core.errors import Invalid
from shipyard.core.settings import Settings
from shipyard.serve.app import create_app

GRACEFUL_SHUTDOWN_S = 30
WORKER_STARTUP_S = 120


def uvicorn_config(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
    app_options: dict[str, Any] | None = None,
    factory: Callable[..., Any] = create_app,
) -> uvicorn.Config:
    """The uvicorn configuration: the app factory, the fastest loop and parser installed.

    `factory(settings, **app_options)` builds each worker's app: the serving app, or one
    that wraps it (`shipyard serve` passes `api.app.create_app`)."""
    if workers < 1:
        raise Invalid(f"--workers {workers} must be at least 1.")
    if not 0 <= port <= 65535:
        raise Invalid(f"--port {port} must be from 0 to 65535 (0 picks a free port).")
    build = functools.partial(factory, settings, **(app_options or {}))
    extra: dict[str, Any] = {}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # A worker imports scikit-learn, LightGBM and the models before it can answer the
        # supervisor's first ping, which takes longer than uvicorn's default 5 s allows.
        extra["timeout_worker_healthcheck"] = WORKER_STARTUP_S
    return uvicorn.Config(
        build,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        # Callers are told apart by their tokens, never by address: X-Forwarded-* headers are
        # neither trusted nor rewritten, and a request skips uvicorn's middleware for them.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **extra,
    )


def run(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
    app_options: dict[str, Any] | None = None,
    on_listen: Callable[[str], None] | None = None,
    factory: Callable[..., Any] = create_app,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM): in-flight requests finish, the log is written."""
    config = uvicorn_config(
        settings,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        app_options=app_options,
        factory=factory,
    )
    sock = config.bind_socket()
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    if on_listen is not None:
        on_listen(f"http://{shown}:{bound_port}")
    server = uvicorn.Server(config)
    if workers <= 1:
        server.run(sockets=[sock])
    elif "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36
        supervisor: Any = Multiprocess
        supervisor(config, target=server.run, sockets=[sock]).run()
    else:
        Multiprocess(config, sockets=[sock]).run()
