"""Retries: idempotent calls only, on connection failures and 502/503/504, `retries` times.

Real sockets on loopback throughout: a closed port, a listener that hangs up on every
connection (counting them), a stdlib HTTP server that answers one status (counting requests),
and the real server started only once the client's first attempt has failed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import uvicorn
from api_world import World

from shipyard.api import create_app
from shipyard.client import Client
from shipyard.core.errors import RateLimited, Unavailable
from shipyard.serve.server import uvicorn_config

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def hanging_up(*, silent: bool = False) -> Iterator[tuple[str, list[int]]]:
    """A listener that accepts each connection and closes it at once (or, `silent`, holds it
    open without answering until the end); yields (url, count)."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.1)
    count = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            count[0] += 1
            conn.recv(65536)  # the request, so the close is a hang-up, not a reset mid-send
            if silent:
                held.append(conn)
            else:
                conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", count
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


@contextmanager
def answering(status: int, headers: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server answering every request with `status` and an API error body."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.command)
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = json.dumps(
                {
                    "error": "Unavailable" if status != 429 else "RateLimited",
                    "message": f"the database is down (status {status})",
                    "details": {},
                    "request_id": "req_0123456789abcdef",
                }
            ).encode()
            self.send_response(status)
            for key, value in {**headers, "content-type": "application/json"}.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_closed_port_is_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with Client(url, "shp_x", retries=2, backoff=0.01) as client:
        with pytest.raises(Unavailable, match="shipyard serve") as caught:
            client.datasets.get("loans")
        assert str(caught.value).startswith(f"cannot reach the Shipyard server at {url}: Connect")
        assert "after 3 attempts" in str(caught.value) and "SHIPYARD_URL" in str(caught.value)
        assert caught.value.details == {"url": url, "attempts": 3}
        assert caught.value.exit_code == 8

        with pytest.raises(Unavailable, match="after 1 attempt\\)") as once:
            client.tokens.create("x", "viewer")  # a POST is sent once
        assert once.value.details["attempts"] == 1


def test_idempotent_calls_are_retried_the_given_number_of_times() -> None:
    with hanging_up() as (url, count), Client(url, "shp_x", retries=2, backoff=0.01) as client:
        with pytest.raises(Unavailable, match=f"cannot reach the Shipyard server at {url}"):
            client.runs.get("run_x")
        assert count[0] == 3
        with pytest.raises(Unavailable):
            client.endpoints.set_flags("e", {"explain": "on"}, revision=1)  # carries a revision
        assert count[0] == 6
        with pytest.raises(Unavailable):
            client.models.alias("credit", "staging", 2)  # PUT
        assert count[0] == 9


def test_a_server_that_does_not_answer_in_time_is_unavailable() -> None:
    with (
        hanging_up(silent=True) as (url, count),
        Client(url, "shp_x", timeout=0.2, retries=1, backoff=0.01) as client,
    ):
        with pytest.raises(Unavailable, match=f"server at {url} did not answer within 0.2 s"):
            client.runs.get("run_x")
        assert count[0] == 2
        with pytest.raises(Unavailable, match="A POST may have been applied"):
            client.tokens.create("x", "viewer")
        assert count[0] == 3


def test_other_posts_are_never_retried() -> None:
    with hanging_up() as (url, count), Client(url, "shp_x", retries=5, backoff=0.01) as client:
        with pytest.raises(Unavailable):
            client.tokens.create("x", "viewer")
        with pytest.raises(Unavailable):
            client.endpoints.create("e", "credit@1")
        assert count[0] == 2


def test_retries_zero_sends_once() -> None:
    with hanging_up() as (url, count), Client(url, "shp_x", retries=0) as client:
        with pytest.raises(Unavailable, match="after 1 attempt\\)"):
            client.datasets.get("loans")
        assert count[0] == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_or_unavailable_answer_is_retried_then_raised(status: int) -> None:
    with answering(status, {}) as (url, seen), Client(url, "x", retries=2, backoff=0.01) as c:
        with pytest.raises(Unavailable, match=f"the database is down \\(status {status}\\)") as e:
            c.audit.verify()
        assert seen == ["GET", "GET", "GET"]
        assert e.value.status == status  # type: ignore[attr-defined]
        assert e.value.request_id == "req_0123456789abcdef"  # type: ignore[attr-defined]
        with pytest.raises(Unavailable):
            c.tokens.create("x", "viewer")
        assert seen == ["GET", "GET", "GET", "POST"]


def test_rate_limited_carries_retry_after_and_is_not_retried() -> None:
    with answering(429, {"retry-after": "7"}) as (url, seen), Client(url, "x", backoff=0.01) as c:
        with pytest.raises(RateLimited, match="database is down") as caught:
            c.datasets.list().page()
        assert caught.value.details["retry_after"] == 7
        assert seen == ["GET"]


class _FirstRetry(logging.Handler):
    """Sets `failed` when the client logs its first retry (its first attempt failed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failed = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.failed.set()


def test_a_retried_get_survives_a_server_that_starts_late(world: World) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    watcher = _FirstRetry()
    logger = logging.getLogger("shipyard.client")
    logger.addHandler(watcher)
    server = uvicorn.Server(uvicorn_config(world.settings, port=port, factory=create_app))

    def start_after_the_first_failure() -> None:
        if watcher.failed.wait(30):
            server.run()

    thread = threading.Thread(target=start_after_the_first_failure, daemon=True)
    thread.start()
    try:
        # Backoff 0.05 s doubling to the 5 s cap: 12 retries wait up to ~37 s for the start.
        with Client(url, world.tokens["viewer"], retries=12, backoff=0.05) as client:
            got = client.datasets.get("loans")
        assert got.versions == 2
        assert watcher.messages[0].startswith(f"GET {url}/api/v1/datasets/loans: ConnectError")
        assert "(attempt 2 of 13)" in watcher.messages[0]
    finally:
        logger.removeHandler(watcher)
        watcher.failed.set()
        server.should_exit = True
        thread.join(30)


def test_https_servers_keep_certificate_verification() -> None:
    """Plain http skips building a TLS context (it has no TLS); https must still verify."""
    import ssl

    from shipyard.client.transport import Transport

    secure = Transport("https://shipyard.example", None, timeout=1.0, retries=0, backoff=0.0)
    try:
        context = secure.http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    finally:
        secure.close()
