"""The client's HTTP: one connection pool, the token, retries, and the server's errors raised.

A call is retried only when replaying it cannot apply it twice (`idempotent`): every GET, PUT
and DELETE (each sets a state, so a replay finds it set: same answer, or a 404/409), and the
POST/PATCH changes that carry an endpoint `revision` (a replay after a lost answer is refused
with 409 naming the current revision, never applied twice), an alert's ack and the loop's
pause/resume (each sets a state). Other POSTs (create a token, an endpoint, a run; a log batch;
an upload; a loop turn) are sent once. Retried are connection failures and 502/503/504, with
exponential backoff (`backoff`, doubled per attempt, at most `MAX_DELAY` s). Downloads are GETs,
retried from the start (the partial file is discarded).

A non-2xx answer raises the `core.errors` class the server named (`error` in the body), else
the class of its HTTP status, with the server's message and details plus `status` and
`request_id` (in `details` and as attributes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

import httpx

from shipyard.core import errors
from shipyard.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    NotSupported,
    RateLimited,
    ShipyardError,
    StorageFull,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("shipyard.client")
T = TypeVar("T")

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_DELAY = 5.0
_BY_STATUS: dict[int, type[ShipyardError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: Invalid,
    429: RateLimited,
    501: NotSupported,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
    507: StorageFull,
}


def error_class(name: object, status: int) -> type[ShipyardError]:
    """The class the server named, if it is one of `core.errors`; else the status's class."""
    named = (
        getattr(errors, name, None) if isinstance(name, str) and name in errors.__all__ else None
    )
    if isinstance(named, type) and issubclass(named, ShipyardError):
        return named
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return Invalid if 400 <= status < 500 else ShipyardError


def raise_for(response: httpx.Response, method: str) -> None:
    """Raise the error a non-2xx `response` stands for (nothing for a 2xx)."""
    if response.is_success:
        return
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text[:500] or response.reason_phrase}
    rid = body.get("request_id") or response.headers.get("x-request-id")
    details = dict(body.get("details") or {})
    details.update(status=status, request_id=rid)
    retry_after = response.headers.get("retry-after")
    if status == 429 and retry_after is not None and "retry_after" not in details:
        details["retry_after"] = float(retry_after) if retry_after.isdigit() else retry_after
    message = str(body.get("message") or f"HTTP {status}")
    cls = error_class(body.get("error"), status)
    exc = cls(
        f"{message} ({method} {response.url.path}: HTTP {status}, request {rid})", details=details
    )
    exc.status = status  # type: ignore[attr-defined]
    exc.request_id = rid  # type: ignore[attr-defined]
    raise exc


class Transport:
    """One server, one token, one connection pool."""

    def __init__(
        self, url: str, token: str | None, *, timeout: float, retries: int, backoff: float
    ) -> None:
        if retries < 0:
            raise Invalid(f"retries={retries}: must be 0 or more (0: never retry).")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        headers = {"user-agent": "shipyard-client", "accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        # A plain-http server needs no TLS context, and building one loads the system's CA
        # certificates (about 30 ms per client); https keeps httpx's certificate verification.
        verify = not self.url.startswith("http://")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        content: IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The JSON answer of `method path`, retried when `idempotent` (default: by method).

        `content` is a raw body streamed from a file (an upload): it can be read only once, so
        such a call is never retried."""
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE") and content is None
        params = {k: v for k, v in (query or {}).items() if v is not None}
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self.http.request(
                    method,
                    path,
                    params=params,
                    json=body,
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except httpx.TransportError as exc:
                if attempt < attempts:
                    self._wait(attempt, attempts, method, path, f"{type(exc).__name__}: {exc}")
                    continue
                raise self._unreachable(exc, attempt, method) from None
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                self._wait(attempt, attempts, method, path, f"HTTP {response.status_code}")
                continue
            raise_for(response, method)
            return response.json()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def download(self, path: str, receive: Callable[[httpx.Response], T]) -> T:
        """`receive(response)` of a streamed GET (a 2xx; errors raised first), retried like any
        GET: `receive` must start over on each call (write a new file, not append)."""
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            try:
                with self.http.stream("GET", path, headers={"accept": "*/*"}) as response:
                    if response.status_code in RETRY_STATUSES and attempt < attempts:
                        why = f"HTTP {response.status_code}"
                    else:
                        if not response.is_success:
                            response.read()
                            raise_for(response, "GET")
                        return receive(response)
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise self._unreachable(exc, attempt, "GET") from None
                why = f"{type(exc).__name__}: {exc}"
            self._wait(attempt, attempts, "GET", path, why)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unreachable(self, exc: httpx.TransportError, attempts: int, method: str) -> Unavailable:
        tries = f"after {attempts} attempt{'s' * (attempts > 1)}"
        details = {"url": self.url, "attempts": attempts}
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
            # The request reached the server: a change may have been applied all the same.
            return Unavailable(
                f"the Shipyard server at {self.url} did not answer within {self.timeout:g} s "
                f"({tries}); it may be busy. A {method} may have been applied: read the state "
                "before sending it again, or raise Client(timeout=...).",
                details=details,
            )
        return Unavailable(
            f"cannot reach the Shipyard server at {self.url}: {type(exc).__name__}: "
            f"{exc or 'no answer'} ({tries}) — is `shipyard serve` running there? (the URL "
            "comes from SHIPYARD_URL or Client(url=...))",
            details=details,
        )

    def _wait(self, attempt: int, attempts: int, method: str, path: str, why: str) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), MAX_DELAY)
        log.warning(
            "%s %s%s: %s; retrying in %.2f s (attempt %d of %d)",
            method, self.url, path, why, delay, attempt + 1, attempts,
        )  # fmt: skip
        time.sleep(delay)
