"""Request limits: body size (read incrementally, refused early) and a rate per token.

The body limit is enforced while reading: a declared `Content-Length` over the limit is refused
before any byte of the body is read, and a streamed (chunked) body is refused as soon as the
bytes received pass the limit, so a 100 MB upload never sits in memory. (uvicorn discards the
rest of such a body after the 413 is sent, so the connection is not left hanging.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.core.errors import Invalid, RateLimited, TooLarge
from shipyard.serve.headers import header

if TYPE_CHECKING:
    from starlette.requests import Request

DEFAULT_MAX_BODY = 2 * 1024 * 1024


def _too_large(limit: int, received: str) -> TooLarge:
    return TooLarge(
        f"the request body is {received}, over the limit of {limit:,} bytes; send fewer rows "
        "per request (split the batch) or ask the operator to raise --max-body.",
        details={"limit": limit},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or `TooLarge` as soon as it is known to be over `limit` bytes."""
    declared = header(request, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Invalid(
                f"Content-Length {declared[:40]!r} is not a number of bytes; send a valid "
                "header or none (chunked)."
            ) from None
        if size > limit:
            raise _too_large(limit, f"{size:,} bytes (Content-Length)")
    # The ASGI messages themselves, as `Request.stream()` reads them, without its async
    # generator (a few percent of a one-row prediction's time); the request is left consumed.
    chunks: list[bytes] = []
    total = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            from starlette.requests import ClientDisconnect  # the web stack, only when serving

            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _too_large(limit, f"more than {limit:,} bytes (streamed)")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    request._stream_consumed = True
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class RateLimiter:
    """A token bucket per key (a token id): `rate` requests a second, bursts up to `burst`.

    >>> limiter = RateLimiter(rate=100, burst=200)
    >>> limiter.check(token.id)   # raises RateLimited, with details["retry_after"] seconds
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise Invalid(f"rate limit {rate!r} must be a positive number of requests a second.")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        if self.burst < 1:
            raise Invalid(f"rate burst {burst!r} must be at least 1 request.")
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key → [tokens left, at]

    def check(self, key: str) -> None:
        """Take one request from `key`'s bucket, or raise `RateLimited`."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()  # idle buckets are full anyway; forgetting them is free
            bucket = self._buckets[key] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] < 1.0:
            wait = (1.0 - bucket[0]) / self.rate
            raise RateLimited(
                f"too many requests for this token: the limit is {self.rate:g}/s (bursts of "
                f"{self.burst:g}); retry after {wait:.2f} s, or spread requests out.",
                details={"retry_after": wait, "rate": self.rate, "burst": self.burst},
            )
        bucket[0] -= 1.0


def retry_after_header(seconds: float) -> str:
    """`Retry-After` is whole seconds: round up, never 0."""
    return str(max(1, math.ceil(seconds)))
