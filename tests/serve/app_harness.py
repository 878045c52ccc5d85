"""A real server for the app tests: uvicorn on a free loopback port, in a background thread.

`start()` builds the app with the same factory and uvicorn configuration `shipyard serve` uses
(serve.server.uvicorn_config), binds 127.0.0.1:0, and returns once the lifespan has started
(models loaded). `Running.stop()` is a graceful shutdown, as on SIGTERM.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import uvicorn

from shipyard.core.records import Role
from shipyard.core.settings import Settings
from shipyard.security import create_token
from shipyard.serve.server import uvicorn_config
from shipyard.store.workspace import Workspace

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
T = TypeVar("T")


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = "admin", **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        assert not self.thread.is_alive(), "the server did not stop within the timeout"


def start(settings: Settings, tokens: dict[str, str], **app_options: Any) -> Running:
    config = uvicorn_config(settings, port=0, app_options=app_options)
    sock = config.bind_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on a failed startup
            errors.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start: {errors or 'timeout'}")
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{port}", server, thread, dict(tokens))


@contextmanager
def running(settings: Settings, tokens: dict[str, str], **app_options: Any) -> Iterator[Running]:
    server = start(settings, tokens, **app_options)
    try:
        yield server
    finally:
        server.stop()


def tokens_for(ws: Workspace) -> dict[str, str]:
    """One token secret per role."""
    return {role.value: create_token(ws, f"test-{role.value}", role)[1] for role in Role}


def records(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON would carry them (NaN → null)."""
    rows: list[dict[str, Any]] = json.loads(X.to_json(orient="records"))
    return rows


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 20.0, every: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy (bounded), and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(every)


def workspace_settings(home: Path) -> Settings:
    return Settings(home=home, db=f"sqlite:///{home / 'shipyard.db'}")
