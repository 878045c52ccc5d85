"""`shipyard.Client`: the REST API of a Shipyard server, from Python.

import shipyard
with shipyard.Client() as client:             # SHIPYARD_URL, SHIPYARD_TOKEN
    for run in client.runs.search(filter="metrics.auc > 0.8"):
        print(run.id, run.metrics["auc"])
    state = client.endpoints.get("credit")
    client.endpoints.route("credit", revision=state.revision, challengers=[("credit@4", 10)])
"""

from __future__ import annotations

from types import TracebackType

from shipyard.client.resources import (
    Alerts,
    Audit,
    Datasets,
    Endpoints,
    Loop,
    Models,
    Runs,
    Tokens,
)
from shipyard.client.transport import Transport
from shipyard.core.errors import Invalid
from shipyard.core.settings import Settings


class Client:
    """One server and one token over one connection pool; `close()` (or `with`) releases it.

    `url` and `token` default to the settings (SHIPYARD_URL, SHIPYARD_TOKEN). `timeout` is per
    request, in seconds. Idempotent calls are retried `retries` times on connection failures
    and 502/503/504, waiting `backoff` seconds, doubled each time (see `client.transport`).
    Errors are `shipyard.core.errors` classes carrying the server's message, `status` and
    `request_id`; a server that cannot be reached raises `Unavailable` naming the URL.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        settings: Settings | None = None,
    ) -> None:
        if url is None or token is None:
            settings = settings or Settings.load()
            url = url or settings.url
            if token is None and settings.token is not None:
                token = settings.token.get_secret_value()
        if not url:
            raise Invalid(
                "no Shipyard server URL: pass Client(url='http://HOST:8000') or set "
                "SHIPYARD_URL (the address `shipyard serve` prints).",
                details={"field": "url"},
            )
        if not url.startswith(("http://", "https://")):
            raise Invalid(
                f"url {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000.",
                details={"field": "url", "value": url},
            )
        self.url = url.rstrip("/")
        self._transport = Transport(url, token, timeout=timeout, retries=retries, backoff=backoff)
        self.tokens = Tokens(self._transport)
        self.audit = Audit(self._transport)
        self.datasets = Datasets(self._transport)
        self.runs = Runs(self._transport)
        self.models = Models(self._transport)
        self.endpoints = Endpoints(self._transport)
        self.alerts = Alerts(self._transport)
        self.loop = Loop(self._transport)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"
