"""Runs tracked on a Shipyard server: what `shipyard.start_run()` opens when SHIPYARD_URL is set
(and no `workspace` is given), with the local run's semantics over HTTP.

    with shipyard.start_run(experiment="churn") as run:      # SHIPYARD_URL, SHIPYARD_TOKEN
        shipyard.log_metric("loss", 0.42)                    # buffered; sent once a second

Logging only appends to a buffer; a background thread sends it through `client.runs.log`
every `FLUSH_SECONDS` (at most `MAX_POINTS` points a batch, an empty batch to beat the
heartbeat while idle). The end of the `with` sends what is left and ends the run `finished`,
`failed` (an exception, which propagates) or `interrupted` (Ctrl-C).

A batch that fails is kept for the next attempt, as the local `RunLogger` does, except when
the server refused it (4xx: it never will take it); that error is raised by the next logging
call or the end. The API has no batch id, so a batch whose answer was lost (a timeout) is sent
again and its points may be stored twice.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from shipyard.client.client import Client
from shipyard.core.errors import Invalid, NotSupported, RateLimited, ShipyardError, Unavailable

FLUSH_SECONDS = 1.0
MAX_POINTS = 10_000  # the API's largest batch
Point = tuple[str, float, int, datetime]
Status = Literal["finished", "failed", "killed", "interrupted"]


def _param_value(value: Any) -> Any:
    """A param as JSON carries it: NaN and ±inf as 'nan', 'inf', '-inf' (as stored locally),
    NumPy scalars as Python ones, anything else not JSON as its repr."""
    if hasattr(value, "item") and callable(value.item):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _transient(exc: ShipyardError) -> bool:
    """Worth sending again: the server was not reached or did not answer, was too busy (429),
    or failed (5xx: the batch's transaction was rolled back). A 4xx refusal stays one."""
    status = exc.details.get("status")
    return isinstance(exc, Unavailable | RateLimited) or (isinstance(status, int) and status >= 500)


class RemoteRun:
    """The run `start_run()` opened on a server: log to it directly or through the module
    functions (`shipyard.log_metric`, …)."""

    def __init__(self, client: Client, run_id: str, *, owns_client: bool) -> None:
        self.client = client
        self.id = run_id
        self._owns = owns_client
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._metrics: list[Point] = []
        self._params: dict[str, Any] = {}
        self._tags: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._refused: ShipyardError | None = None
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._background, name=f"shipyard-remote-log-{run_id}", daemon=True
        )
        self._thread.start()

    # -- logging (buffered) -----------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._raise_refused()
        try:
            number = float(value)  # NaN and ±inf included: sent as the API's strings
        except (TypeError, ValueError):
            raise Invalid(f"metric {key!r}: value {value!r} is not a number.") from None
        with self._lock:
            if step is None:
                step = self._steps.get(key, -1) + 1
            self._steps[key] = step
            self._metrics.append((key, number, step, datetime.now(UTC)))
            full = len(self._metrics) >= MAX_POINTS
        if full:
            self._wake.set()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._raise_refused()
        with self._lock:
            self._params.update({k: _param_value(v) for k, v in params.items()})

    def set_tag(self, key: str, value: Any) -> None:
        self._raise_refused()
        with self._lock:
            self._tags[key] = str(value)

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        raise NotSupported(
            f"cannot log artifact {str(path)!r} to remote run {self.id}: the REST API takes "
            "no run artifacts yet. Unset SHIPYARD_URL (or pass workspace=) to track locally.",
            details={"run_id": self.id},
        )

    # -- sending ----------------------------------------------------------------------------

    def flush(self, *, beat: bool = False) -> None:
        """Send everything logged so far (with `beat`, an empty batch when nothing is pending,
        which beats the run's heartbeat)."""
        with self._send_lock:
            with self._lock:
                metrics, self._metrics = self._metrics, []
                params, self._params = self._params, {}
                tags, self._tags = self._tags, {}
            if not (metrics or params or tags or beat):
                return
            sent = 0
            try:
                while True:
                    chunk = metrics[sent : sent + MAX_POINTS]
                    first = sent == 0
                    self.client.runs.log(
                        self.id,
                        chunk,
                        params=params if first else None,
                        tags=tags if first else None,
                    )
                    sent += len(chunk)
                    if sent >= len(metrics):
                        return
                    params, tags = {}, {}
            except BaseException as exc:
                if isinstance(exc, ShipyardError) and not _transient(exc):
                    # refused (the run ended, a bad key): never taken, raised from now on
                    self._refused = exc
                    raise
                with self._lock:  # not taken (or not known to be): kept for the next attempt
                    self._metrics[:0] = metrics[sent:]
                    self._params = {**params, **self._params}
                    self._tags = {**tags, **self._tags}
                raise

    def _raise_refused(self) -> None:
        if self._refused is not None:
            raise self._refused

    def _background(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self._closed or self._refused is not None:
                continue
            # A failed send keeps its points (or the refusal) for the end, which raises it.
            with contextlib.suppress(Exception):
                self.flush(beat=True)

    def end(self, status: Status = "finished", note: str | None = None) -> None:
        """Send what is left, then end the run (also when the send failed: that is raised)."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        try:
            self._raise_refused()
            self.flush()
        finally:
            try:
                self.client.runs.end(self.id, status, note)
            finally:
                if self._owns:
                    self.client.close()


_CURRENT: ContextVar[RemoteRun | None] = ContextVar("shipyard_remote_run", default=None)


def current() -> RemoteRun | None:
    """The remote run of the enclosing `start_run()`, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def start_run(
    experiment: str = "default",
    *,
    name: str | None = None,
    client: Client | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    parent_id: str | None = None,
    owns_client: bool = False,
) -> Iterator[RemoteRun]:
    """Open a run on the server (`client`, default `Client()`: SHIPYARD_URL, SHIPYARD_TOKEN);
    it ends `finished`, `failed` (exception) or `interrupted` (Ctrl-C). The client is closed
    at the end if it was made here (or `owns_client`)."""
    owns = client is None or owns_client
    client = client or Client()
    try:
        made = client.runs.create(
            experiment,
            name=name,
            params={k: _param_value(v) for k, v in (params or {}).items()},
            tags={k: str(v) for k, v in (tags or {}).items()},
            seed=seed,
            parent_id=parent_id,
        )
    except BaseException:
        if owns:
            client.close()
        raise
    run = RemoteRun(client, made.id, owns_client=owns)
    token = _CURRENT.set(run)
    try:
        yield run
    except BaseException as exc:
        status: Status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        note = (
            "interrupted by the user" if status == "interrupted" else f"{type(exc).__name__}: {exc}"
        )
        try:
            run.end(status, note[:2000])
        except Exception as failure:  # the user's own exception is the one to see
            exc.add_note(f"shipyard could not record the end of run {run.id}: {failure!r}")
        raise
    else:
        run.end("finished")
    finally:
        _CURRENT.reset(token)
