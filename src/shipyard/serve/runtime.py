"""What a running server holds: the workspace, live routes, loaded models, the prediction log.

`Runtime.start()` opens the workspace, loads every endpoint's models and starts a poller that
looks at the endpoints' revisions every `poll_interval` seconds (first moving the endpoints that
follow a model alias when an alias moved: `follow_aliases`, idempotent across servers). A
changed endpoint gets a new
`Route` (router, flags, models) built beside the old one and swapped in at once: requests
already routed finish on the models they chose, new ones take the new route, nothing restarts.

A request's answer is recorded after the response has been sent (`after()`): metrics, the
prediction log, the canary's window, and fire-and-forget shadow copies, whose own answers are
logged with shadow=True and never reach the client. Every second the poller also judges each
running canary with its `CanaryGuard`: a failed guard rolls it back (`rollback_canary`,
audited), a passed one moves it to its next step (`advance_canary`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import numpy as np
from starlette.requests import ClientDisconnect
from threadpoolctl import threadpool_limits

from shipyard.core.errors import ShipyardError, Unavailable
from shipyard.core.records import Endpoint, Signature
from shipyard.core.settings import Settings
from shipyard.registry.models import alias_stamp
from shipyard.serve.auth import TokenCache
from shipyard.serve.endpoints import (
    advance_canary,
    follow_aliases,
    get_endpoint,
    revisions,
    rollback_canary,
)
from shipyard.serve.fastpath import Output
from shipyard.serve.inputs import Batch
from shipyard.serve.limits import DEFAULT_MAX_BODY, RateLimiter
from shipyard.serve.metrics import Metrics
from shipyard.serve.models import ModelPool, ServedModel
from shipyard.serve.predlog import Answered, PredictionLog
from shipyard.serve.router import CanaryGuard, Choice, Router, WindowStats
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve")

MakeBatch = Callable[[Signature], Batch]
_SWITCH_INTERVAL_S = 0.0005  # how long the event loop may wait for another thread's GIL
_FULL_COLLECTION_EVERY = 1_000  # generation-1 collections between full ones (Python: 10)


@dataclass(frozen=True)
class ServeOptions:
    """How one server behaves; every field is a `create_app` keyword."""

    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_body: int = DEFAULT_MAX_BODY
    max_rows: int = 10_000
    rate: float | None = 1000.0  # requests a second per token; None: no limit
    burst: float | None = None  # default: twice the rate
    poll_interval: float = 1.0
    token_ttl: float = 1.0
    retire_after: float = 5.0
    max_shadow_tasks: int = 1000


# -- one endpoint's live routing ----------------------------------------------------------------


class CanaryWindow:
    """What the running canary did since its current step began (or the last judgement)."""

    def __init__(self, step: int, max_latencies: int = 10_000) -> None:
        self.step = step
        self.requests = 0
        self.errors = 0
        self.latencies: deque[float] = deque(maxlen=max_latencies)
        self.compared = 0
        self.disagreed = 0

    def answered(self, latency_ms: float) -> None:
        self.requests += 1
        self.latencies.append(latency_ms)

    def failed(self) -> None:
        self.requests += 1
        self.errors += 1

    def compare(self, canary: np.ndarray, champion: np.ndarray) -> None:
        if canary.shape != champion.shape:
            return
        self.compared += int(canary.size)
        self.disagreed += int(np.count_nonzero(canary != champion))

    def stats(self) -> WindowStats:
        p99 = (
            float(np.percentile(np.fromiter(self.latencies, float), 99)) if self.latencies else None
        )
        return WindowStats(
            requests=self.requests,
            errors=self.errors,
            p99_ms=p99,
            disagreement=self.disagreed / self.compared if self.compared else None,
        )


@dataclass(frozen=True)
class Problem:
    """Why an endpoint's latest revision is not served (the previous one may still be)."""

    revision: int
    at: float
    why: str


@dataclass(eq=False)
class Route:
    """One revision of an endpoint, ready to serve."""

    endpoint: Endpoint
    router: Router
    models: dict[str, ServedModel]
    guard: CanaryGuard | None = None
    window: CanaryWindow | None = None
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def revision(self) -> int:
        return self.endpoint.revision

    def flag_on(self, name: str, default: bool) -> bool:
        value = self.endpoint.flags.get(name)
        return default if value is None else value == "on"

    def primary(self, choice: Choice) -> ServedModel:
        served = self.models.get(choice.primary_id)
        if served is None:  # only if a route was swapped in without its model: a bug
            raise Unavailable(
                f"endpoint {self.name!r}: version {choice.primary_ref} is not loaded; retry."
            )
        return served


# -- the runtime --------------------------------------------------------------------------------


class Runtime:
    """The state of one serving process, from `start()` to `stop()`."""

    def __init__(self, settings: Settings, options: ServeOptions, metrics: Metrics) -> None:
        self.settings = settings
        self.options = options
        self.metrics = metrics
        self.routes: dict[str, Route] = {}
        self.problems: dict[str, Problem] = {}
        self.started = False
        self.in_flight = 0  # predictions between validation and answer (the batcher's hint)
        self.limiter = (
            RateLimiter(options.rate, options.burst if options.burst else 2 * options.rate)
            if options.rate
            else None
        )
        self._ws: Workspace | None = None
        self._auth: TokenCache | None = None
        self._pool: ModelPool | None = None
        self._log: PredictionLog | None = None
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._pinned: threadpool_limits | None = None
        self._switch_interval = sys.getswitchinterval()
        self._gc_threshold = gc.get_threshold()
        self._aliases: tuple[int, Any] | None = None  # registry.alias_stamp when last followed
        self._alias_problems: set[str] = set()

    # -- accessors that only work while running -------------------------------------------------

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            raise Unavailable("the server is starting or stopping; retry in a moment.")
        return self._ws

    @property
    def auth(self) -> TokenCache:
        if self._auth is None:
            raise Unavailable("the server is starting or stopping; retry in a moment.")
        return self._auth

    @property
    def prediction_log(self) -> PredictionLog:
        if self._log is None:
            raise Unavailable("the server is starting or stopping; retry in a moment.")
        return self._log

    @property
    def ready(self) -> bool:
        """Started, and every endpoint has a route (a failed newer revision keeps the old one)."""
        return self.started and all(name in self.routes for name in self.problems)

    def _record(
        self,
        endpoint: str,
        version_id: str,
        request_id: str,
        latency_ms: float,
        output: Output,
        batch: Batch,
        *,
        shadow: bool,
        log_inputs: bool,
    ) -> None:
        """One answer onto the prediction log: its arrays are kept as they are, and become rows
        only in the log's writer thread."""
        if self._log is None:
            return
        self._log.append_answer(
            Answered(
                request_id=request_id,
                endpoint=endpoint,
                version_id=version_id,
                at=time.time(),
                latency_ms=latency_ms,
                shadow=shadow,
                inputs=batch.columns if log_inputs else None,
                blocks=batch.blocks if log_inputs else (),
                schema=batch.schema if log_inputs else None,
                labels=output.labels,
                probabilities=output.probabilities,
                classes=output.classes,
            )
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        actor = self.settings.actor or f"serve:{socket.gethostname()}"
        self._ws = await anyio.to_thread.run_sync(
            lambda: Workspace.open(self.settings, actor=actor)
        )
        self._auth = TokenCache(self._ws, ttl=self.options.token_ttl)
        self._pool = ModelPool(
            self._ws,
            self.metrics,
            max_batch=self.options.max_batch,
            max_wait_ms=self.options.max_wait_ms,
            grace=self.options.retire_after,
        )
        self._log = PredictionLog(self._ws)
        self.metrics.log = self._log
        # Cheap models answer a lone request on the event loop's thread (serve.batcher): one
        # native thread there too, so HistGradientBoosting does not start an OpenMP team on
        # every call, and the predictors' per-call check only reads the counts (DESIGN.md).
        self._pinned = threadpool_limits(limits=1)
        # The prediction log's writer and the database look-ups run in threads; while one
        # holds the GIL, the event loop waits up to the switch interval for it (5 ms by
        # default, each time): a short interval bounds that wait (restored by stop()).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, _SWITCH_INTERVAL_S))
        await self.refresh()
        # The ML stack leaves ~230k long-lived objects; a full collection over them took
        # 150-180 ms under load (measured: benchmarks/serving). Freezing them after start-up
        # takes them out of every later collection, so the tail latency drops several-fold.
        gc.freeze()
        # Full collections still ran every ~0.7 s under load, 2.5-4 ms each over what survives
        # a request (the log's buffer, caches): a tenth of the one-connection p99. Run them a
        # hundred times less often (measured with gc.callbacks: none during a benchmark run).
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(self._gc_threshold[0], self._gc_threshold[1], _FULL_COLLECTION_EVERY)
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="route poller")
        self.started = True

    async def stop(self) -> None:
        """Stop polling, let shadows finish, answer what is queued, write the log, close."""
        self.started = False
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._background:
            _done, pending = await asyncio.wait(set(self._background), timeout=10)
            for task in pending:
                task.cancel()
        if self._pool is not None:
            await self._pool.close()
        if self._log is not None:
            await anyio.to_thread.run_sync(self._log.close)
        if self._ws is not None:
            self._ws.close()
        if self._pinned is not None:
            self._pinned.restore_original_limits()
            self._pinned = None
            sys.setswitchinterval(self._switch_interval)
            gc.set_threshold(*self._gc_threshold)
        self.routes.clear()
        self._ws = self._auth = self._pool = self._log = None

    # -- routing changes ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Swap in a new route for every endpoint whose revision changed; drop deleted ones."""
        ws, pool = self.ws, self._pool
        assert pool is not None
        await self._follow_aliases(ws)
        current = await anyio.to_thread.run_sync(revisions, ws)
        now = time.monotonic()
        for name, revision in current.items():
            route = self.routes.get(name)
            if route is not None and route.revision == revision:
                continue
            problem = self.problems.get(name)
            if problem is not None and problem.revision == revision and now - problem.at < 10:
                continue  # the same revision failed moments ago; try again later
            try:
                endpoint = await anyio.to_thread.run_sync(get_endpoint, ws, name)
                new = await self._build(endpoint, route)
            except Exception as exc:
                why = exc.message if isinstance(exc, ShipyardError) else repr(exc)
                self.problems[name] = Problem(revision, now, why)
                kept = f"; still serving revision {route.revision}" if route else ""
                log.error(
                    "endpoint %s revision %d cannot be served%s: %s", name, revision, kept, why
                )
                continue
            self.routes[name] = new
            self.problems.pop(name, None)
            if route is not None:
                self.metrics.route_reloads.labels(name).inc()
                log.info("endpoint %s: revision %d → %d", name, route.revision, new.revision)
        for name in [n for n in self.routes if n not in current]:
            del self.routes[name]
        for name in [n for n in self.problems if n not in current]:
            del self.problems[name]
        pool.keep_only({v for r in self.routes.values() for v in r.models})

    async def _follow_aliases(self, ws: Workspace) -> None:
        """When an alias moved (one cheap query says), move the endpoints that follow it; the
        revision they get is then picked up like any route change. A problem is logged once."""
        try:
            stamp = await anyio.to_thread.run_sync(alias_stamp, ws)
            if stamp == self._aliases:
                return
            followed = await anyio.to_thread.run_sync(functools.partial(follow_aliases, ws))
        except Exception:  # the routes must still reload; following is tried again next time
            log.exception("following the model aliases failed")
            return
        self._aliases = stamp
        for problem in followed.problems:
            if problem not in self._alias_problems:
                log.error("%s", problem)
        self._alias_problems = set(followed.problems)

    async def _build(self, endpoint: Endpoint, old: Route | None) -> Route:
        assert self._pool is not None
        shadows = {s.version_id for s in endpoint.shadows}
        models: dict[str, ServedModel] = {}
        for version_id, ref in endpoint.targets().items():
            try:
                models[version_id] = await self._pool.load(version_id, ref)
            except Exception as exc:
                if version_id not in shadows:
                    raise
                log.error("endpoint %s: shadow %s not loaded, skipped: %s", endpoint.name, ref, exc)
        canary = endpoint.canary
        guard = window = None
        if canary is not None and canary.state == "running":
            guard = CanaryGuard(canary.guard)
            same = (
                old is not None
                and old.window is not None
                and old.endpoint.canary is not None
                and old.endpoint.canary.version_id == canary.version_id
                and old.window.step == canary.step
            )
            window = old.window if same and old is not None else CanaryWindow(canary.step)
        return Route(endpoint, Router(endpoint), models, guard, window)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            try:
                await self.refresh()
                await self.judge_canaries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the route poller failed; it tries again in a second")

    async def judge_canaries(self) -> None:
        for route in list(self.routes.values()):
            canary, guard, window = route.endpoint.canary, route.guard, route.window
            if canary is None or guard is None or window is None:
                continue
            decision = guard.evaluate(window.stats())
            if decision.action == "hold":
                continue
            name = route.name
            try:
                if decision.action == "rollback":
                    reason = f"automatic rollback by the canary guard: {decision.reason}"
                    await anyio.to_thread.run_sync(rollback_canary, self.ws, name, reason)
                    self.metrics.canary_rollbacks.labels(name).inc()
                    log.warning("endpoint %s: canary %s rolled back: %s", name, canary.ref, reason)
                else:
                    advance = functools.partial(advance_canary, expect_step=canary.step)
                    await anyio.to_thread.run_sync(advance, self.ws, name)
                    log.info(
                        "endpoint %s: canary %s advanced: %s", name, canary.ref, decision.reason
                    )
            except ShipyardError as exc:  # changed meanwhile (another server, an operator)
                log.info("endpoint %s: canary decision not applied: %s", name, exc.message)
            route.window = CanaryWindow(canary.step)  # judge the next step on fresh numbers
            await self.refresh()

    # -- after a response -----------------------------------------------------------------------

    def after(
        self,
        route: Route,
        choice: Choice,
        served: ServedModel,
        request_id: str,
        batch: Batch,
        output: Output,
        latency_ms: float,
        make_batch: MakeBatch,
    ) -> None:
        """Record an answered request and send its shadow copies (runs after the response)."""
        log_inputs = route.flag_on("log_inputs", True)
        self._record(
            route.name,
            served.version_id,
            request_id,
            latency_ms,
            output,
            batch,
            shadow=False,
            log_inputs=log_inputs,
        )
        if choice.role == "canary" and route.window is not None:
            route.window.answered(latency_ms)
        for version_id in choice.shadows:
            shadow = route.models.get(version_id)
            if shadow is None:
                continue
            if len(self._background) >= self.options.max_shadow_tasks:
                self.metrics.shadows_dropped.labels(route.name).inc()
                continue
            compare = (
                output
                if choice.role == "canary" and version_id == route.endpoint.champion_id
                else None
            )
            self.spawn(self._shadow(route, shadow, request_id, make_batch, log_inputs, compare))

    def failed(
        self,
        route: Route,
        choice: Choice,
        exc: BaseException,
        *,
        request_id: str,
        started: float,
    ) -> None:
        """A primary failure of the server's making (5xx): counted against a canary's guard
        and logged as an error row (`outputs: {"error": status}`) for the error-rate SLO."""
        status = exc.http_status if isinstance(exc, ShipyardError) else 500
        if status < 500 or isinstance(exc, ClientDisconnect):  # not the server's failure
            return
        if choice.role == "canary" and route.window is not None:
            route.window.failed()
        if self._log is not None:
            self._log.append(
                [
                    {
                        "request_id": request_id,
                        "endpoint": route.name,
                        "version_id": choice.primary_id,
                        "latency_ms": (time.perf_counter() - started) * 1000,
                        "row": 0,
                        "inputs": None,
                        "outputs": {"error": status, "message": str(exc)[:200]},
                    }
                ]
            )

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` in the background; `stop()` waits for it."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(
        self,
        route: Route,
        served: ServedModel,
        request_id: str,
        make_batch: MakeBatch,
        log_inputs: bool,
        compare: Output | None,
    ) -> None:
        started = time.perf_counter()
        try:
            batch = make_batch(served.signature)
            output = await served.batcher.predict(batch)
        except Exception as exc:
            self.metrics.shadow_errors.labels(route.name, served.ref).inc()
            log.debug("shadow %s failed on request %s: %s", served.ref, request_id, exc)
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.metrics.rows.labels(route.name, served.ref, "true").inc(batch.n)
        if compare is not None and route.window is not None:
            route.window.compare(compare.labels, output.labels)
        self._record(
            route.name,
            served.version_id,
            request_id,
            latency_ms,
            output,
            batch,
            shadow=True,
            log_inputs=log_inputs,
        )
