"""Headers read from the ASGI scope (`serve.headers.header`) as `request.headers.get` reads them."""

from __future__ import annotations

from starlette.requests import Request

from shipyard.serve.headers import header


def test_a_header_is_read_as_starlette_reads_it() -> None:
    raw = [(b"authorization", b"Bearer a"), (b"x-shipyard-key", b"caf\xe9"), (b"x-dup", b"1")]
    request = Request({"type": "http", "headers": [*raw, (b"x-dup", b"2")]})

    for name in ("authorization", "x-shipyard-key", "x-dup", "content-length"):
        assert header(request, name.encode()) == request.headers.get(name)
    assert header(request, b"x-shipyard-key") == "café"  # latin-1, as HTTP headers are
    assert header(request, b"content-length") is None
