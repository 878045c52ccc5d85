"""Reading a request body under a size limit (`serve.limits.read_body`), message by message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from shipyard.core.errors import TooLarge
from shipyard.serve.limits import read_body


def _request(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


def _read(messages: list[dict[str, Any]], limit: int, length: int | None = None) -> bytes:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return asyncio.run(read_body(_request(messages, headers), limit))


def test_a_body_in_several_messages_is_joined() -> None:
    parts = [b'{"rows": ', b"", b'[{"a": 1}]}']
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    assert _read(messages, limit=100) == b'{"rows": [{"a": 1}]}'
    assert _read([{"type": "http.request", "body": b"{}"}], limit=100) == b"{}"  # one message


def test_a_streamed_body_over_the_limit_is_refused_once_it_passes_it() -> None:
    messages = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 2
    with pytest.raises(TooLarge, match=r"more than 100 bytes \(streamed\)"):
        _read(messages, limit=100)


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(TooLarge, match=r"101 bytes \(Content-Length\)"):
        _read([], limit=100, length=101)  # no message is there to be read


def test_a_client_that_hangs_up_mid_body_is_a_disconnect() -> None:
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]
    messages.append({"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        _read(messages, limit=100)


def test_the_server_trusts_no_forwarded_headers(tmp_path: Any) -> None:
    from shipyard.core.settings import Settings
    from shipyard.serve.server import uvicorn_config

    config = uvicorn_config(Settings(home=tmp_path))

    # Callers are told apart by token: a client cannot pose as another address through
    # X-Forwarded-For, and no middleware rewrites the scope for it.
    assert config.proxy_headers is False
    assert (config.loop, config.http, config.access_log) == ("uvloop", "httptools", False)
