"""A real HTTP receiver on loopback for webhook tests: records what it got, answers as told."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every answer
    received: list[dict[str, Any]] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def receiver(*statuses: int, headers: dict[str, str] | None = None) -> Iterator[Receiver]:
    """A threading http.server on 127.0.0.1 that answers ``statuses`` in turn, then 200."""
    state = Receiver(url="", statuses=list(statuses), headers=dict(headers or {}))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                state.received.append(json.loads(body))
                state.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            for key, value in state.headers.items():
                self.send_header(key, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_receiver() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()
