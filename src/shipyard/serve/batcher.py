"""Adaptive micro-batching: one queue, one worker task and one predict thread per model version.

A request's rows go on the queue as a `Batch`; the worker takes the first waiting request and
every request already queued, runs `predictor.predict` once on the concatenated rows, and hands
each request its slice of the output. While a batch is predicted the event loop's other tasks
wait or (on the thread) go on reading requests, so the next batch is what arrived meanwhile:
batches grow with concurrency by themselves.

Where a batch runs: a model whose calls are cheap (under `inline_ms`, 1 ms by default; 0 turns
this off) is called on the event loop itself; any other on the model's own thread (native
thread pools pinned to one thread there), so the loop stays free. Handing a 0.1 ms prediction
to a thread and back costs more than the prediction: the hand-over of the interpreter (GIL)
between the two threads, twice per batch (measured on 2 cores with the benchmark's one-row
requests: 8,500-9,000 requests/s through the thread, 9,900 on the loop at 32 connections;
5,900-6,100 and 7,100-7,500 at 8). The first call, of unknown cost, goes to the thread.

A model whose work holds the interpreter lock (`Predictor.holds_gil`: Python and NumPy on
small arrays, which is every compiled pipeline at serving's batch sizes) gains nothing on a
thread but the loop's turns in between, and pays the hand-overs: it runs on the loop while its
calls cost under five times `inline_ms` of CPU (a request behind it waits about that long).
Measured on a loaded 2-core machine with the benchmark's HistGradientBoosting model, whose
batches at 32 connections cost 1.8 ms of CPU there: 0.36-0.40 of the no-op ceiling through the
thread, 0.48 on the loop (medians of six alternating runs).

"Cheap" is judged by two moving averages. On the thread a call is timed by the thread's CPU
time (`time.thread_time`), not the clock: under load its wall time is mostly waiting for the
interpreter the event loop holds, so a clock would call a cheap model slow there and keep it on
the thread for good. On the loop a call is also timed by the clock, which is what the loop
waits: a model that waits inside `predict` (a remote call, a sleep) costs little CPU but
blocks the loop, and over twice its CPU budget of clock time it goes back to the thread. It is
tried on the loop again after 1 s, then after twice as long each time it is still slow (at
most a minute), so a one-off stall (the machine taking the core away) does not keep a cheap
model off the loop for long.

Under concurrent traffic (a batch merged requests in the last 0.1 s) the worker lets the loop
turn once before it takes the queue: the server starts a task per request, and the requests
read in the same turn as the first one have not run up to the queue yet. At 32 connections
that doubled the rows per batch (14 -> 27) and gave 6-10% more requests/s (alternating runs,
both models).

Adaptive means nobody waits for company that is not coming. The worker lingers (up to
`max_wait_ms`, until `max_batch` rows) only for requests the server has already read that are
on their way here: `expect()` counts a request in when it is routed to this model and
`arrived()` counts it out when it is queued (or failed validation). A fixed linger would cost
every batch the full wait whenever fewer clients than `max_batch` are connected (measured on 2
cores, 8 connections: 2,370 requests/s at 3.4 ms each, the worker idling on its timer). A
request larger than `max_batch` runs alone. If a merged batch fails, each request is retried
on its own, so one bad request cannot fail the others.

One shortcut: a request the caller says is `alone` (no other prediction in flight in the
server), when nothing is queued or running here and the model is cheap, is predicted at once
in the caller's task, without waking the worker. For 0.1 s after a batch merged several
requests none counts as alone (in the lulls between batches a request may look alone;
answering it on its own then cost ~10% of the throughput). The caller must make sure of
"alone": requests that already arrived may not have started yet (see `serve.handlers.answer`,
which yields once before deciding). `calls` counts the model calls made each way: "alone",
"loop" (a batch on the event loop) and "thread".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from threadpoolctl import threadpool_limits

from shipyard.core.errors import Unavailable
from shipyard.serve.fastpath import Output, Predictor
from shipyard.serve.inputs import Batch, join_columns

log = logging.getLogger("shipyard.serve")
_CONCURRENT_S = 0.1  # after a merged batch, traffic counts as concurrent for this long
_RETRY_LOOP_S = (1.0, 60.0)  # a model slow on the loop is tried there again after 1 s, 2 s, …
_HELD_FACTOR = 5.0  # a model that holds the GIL runs on the loop under this many × inline_ms
T = TypeVar("T")


@dataclass(slots=True)
class _Item:
    batch: Batch
    future: asyncio.Future[Output]


class MicroBatcher:
    """Merge concurrent requests for one model version into batches.

    >>> batcher = MicroBatcher(predictor, name="credit-risk@3", max_batch=64, max_wait_ms=2)
    >>> batcher.start()
    >>> output = await batcher.predict(batch)
    >>> await batcher.close()      # finishes what is queued first
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        name: str,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        inline_ms: float = 1.0,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.name = name
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.inline_ms = max(0.0, float(inline_ms))
        holds = getattr(predictor, "holds_gil", True)  # any object with predict()
        self._budget_ms = self.inline_ms * (_HELD_FACTOR if holds else 1.0)  # of CPU time
        self._wait_ms = 2 * self._budget_ms  # of wall time on the loop
        self.calls = {"alone": 0, "loop": 0, "thread": 0}
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._arriving = 0  # requests routed here, not yet queued (see expect/arrived)
        self._running = False  # a batch is on the model's thread
        self._cpu_ms = math.inf  # moving average of a call's CPU time; unknown at first
        self._loop_ms = 0.0  # moving average of a call's wall time on the loop
        self._loop_retry_s = _RETRY_LOOP_S[0]
        self._loop_again_at = -math.inf  # when a model slow on the loop may be tried there again
        self._merged_at = -math.inf  # when a batch last merged several requests
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # One thread per model, its native pools (OpenMP, BLAS) pinned to the predictor's thread
        # count once, when it starts: the predictor checks them on every call (fastpath) but
        # then only reads them, and models do not fight the event loop for the cores.
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"predict-{name}",
            initializer=pin_threads,
            initargs=(getattr(predictor, "threads", None),),  # any object with predict()
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"batcher {self.name}"
            )

    def expect(self) -> None:
        """A request for this model is being read and validated: a batch being gathered may
        wait for it (up to `max_wait_ms`). Pair every call with one `arrived()`."""
        self._arriving += 1

    def arrived(self) -> None:
        """The request `expect()` announced is queued, or will not come (it failed)."""
        self._arriving -= 1
        if self._arriving <= 0:
            self._wakeup.set()  # a worker waiting for it stops waiting

    async def predict(self, batch: Batch, *, alone: bool = False) -> Output:
        """The model's output for `batch`, computed with whatever else is waiting.

        `alone`: no other request is in flight, so a cheap model may answer on the spot.
        """
        if self._closed:
            raise Unavailable(
                f"model {self.name} is being unloaded (the endpoint's routing changed or the "
                "server is stopping); retry the request."
            )
        if alone and self.may_inline(batch):
            return self._inline(batch)
        future: asyncio.Future[Output] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(batch, future))
        self._wakeup.set()
        return await future

    async def call(self, fn: Callable[[Batch], T], batch: Batch) -> T:
        """`fn(batch)` on the model's own thread, on its own, never merged into a batch.

        For work one request asks for beyond the prediction (per-row explanations): it queues
        behind the batch running there, and keeps the event loop and the cores it may use free.
        """
        if self._closed:
            raise Unavailable(
                f"model {self.name} is being unloaded (the endpoint's routing changed or the "
                "server is stopping); retry the request."
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, batch)

    async def close(self) -> None:
        """Stop taking requests, answer the queued ones, then stop the worker and its thread."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def may_inline(self, batch: Batch) -> bool:
        """Nothing queued or running here, and this model's calls have been cheap."""
        return (
            not self._pending
            and not self._running
            and batch.n <= self.max_batch
            and self._cheap()
            and time.monotonic() - self._merged_at > _CONCURRENT_S
        )

    def _cheap(self) -> bool:
        """Whether the next call runs on the loop (see the module's docstring)."""
        if not self._cpu_ms < self._budget_ms:
            return False
        return self._loop_ms < self._wait_ms or time.monotonic() >= self._loop_again_at

    def _inline(self, batch: Batch) -> Output:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.predictor.predict(batch)
        finally:
            self._measured_on_loop(wall, cpu)
            self.calls["alone"] += 1
            if self._on_batch is not None:
                self._on_batch(batch.n, 1)

    def _measured_on_loop(self, wall: float, cpu: float) -> None:
        """Count a call on the loop that started at these `perf_counter` and `thread_time`."""
        wall_ms = (time.perf_counter() - wall) * 1000.0
        self._measured_cpu((time.thread_time() - cpu) * 1000.0)
        if self._loop_ms >= self._wait_ms:  # tried again after being slow: a fresh start
            self._loop_ms = wall_ms
        else:
            self._loop_ms = 0.8 * self._loop_ms + 0.2 * wall_ms
        if self._loop_ms < self._wait_ms:
            self._loop_retry_s = _RETRY_LOOP_S[0]
        else:
            self._loop_again_at = time.monotonic() + self._loop_retry_s
            self._loop_retry_s = min(2 * self._loop_retry_s, _RETRY_LOOP_S[1])

    def _measured_cpu(self, ms: float) -> None:
        self._cpu_ms = ms if math.isinf(self._cpu_ms) else 0.8 * self._cpu_ms + 0.2 * ms

    # -- the worker -----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            if not items:
                if self._closed:
                    return
                continue
            live = [item for item in items if not item.future.done()]  # clients that hung up
            if not live:
                continue
            batches = [item.batch for item in live]
            if self._cheap():  # no thread hop, no GIL hand-off
                wall, cpu = time.perf_counter(), time.thread_time()
                results = self._predict(batches)
                self._measured_on_loop(wall, cpu)
                self.calls["loop"] += 1
            else:
                self._running = True
                try:
                    results = await loop.run_in_executor(self._executor, self._on_thread, batches)
                except Exception as exc:  # the executor itself failed: answer everyone
                    results = [exc] * len(live)
                finally:
                    self._running = False
                self.calls["thread"] += 1
            for item, result in zip(live, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            if self._on_batch is not None:
                self._on_batch(sum(b.n for b in batches), len(batches))

    async def _gather(self) -> list[_Item]:
        while not self._pending:
            if self._closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        if time.monotonic() - self._merged_at <= _CONCURRENT_S:
            # Requests whose bytes came in with the first one's are tasks that have not run
            # yet (the server starts a task per request, and this worker woke up first): one
            # turn of the loop lets them reach the queue (see the module's docstring).
            await asyncio.sleep(0)
        first = self._pending.popleft()
        items, rows = [first], first.batch.n
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while rows < self.max_batch:
            if not self._pending and not await self._wait_for_arrivals(deadline):
                break
            item = self._pending[0]
            if rows + item.batch.n > self.max_batch:
                break  # stays first in line for the next batch
            self._pending.popleft()
            items.append(item)
            rows += item.batch.n
        if len(items) > 1:
            self._merged_at = time.monotonic()
        return items

    async def _wait_for_arrivals(self, deadline: float) -> bool:
        """Wait, until `deadline` (loop time), for requests announced by `expect()` to be
        queued; True if one is, False at once when none is on its way."""
        loop = asyncio.get_running_loop()
        while not self._pending:
            remaining = deadline - loop.time()
            if self._arriving <= 0 or remaining <= 0 or self._closed:
                return False
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return bool(self._pending)
        return True

    # -- on the model's thread ------------------------------------------------------------------

    def _on_thread(self, batches: Sequence[Batch]) -> list[Output | BaseException]:
        cpu = time.thread_time()
        try:
            return self._predict(batches)
        finally:
            self._measured_cpu((time.thread_time() - cpu) * 1000.0)

    def _predict(self, batches: Sequence[Batch]) -> list[Output | BaseException]:
        if len(batches) == 1:
            return [self._one(batches[0])]
        try:
            merged = self.predictor.predict(concat(batches))
        except Exception:
            log.warning("a merged batch failed on %s; retrying its requests one by one", self.name)
            return [self._one(b) for b in batches]
        return split(merged, [b.n for b in batches])

    def _one(self, batch: Batch) -> Output | BaseException:
        try:
            return self.predictor.predict(batch)
        except Exception as exc:
            return exc


def pin_threads(threads: int | None) -> None:
    """Limit the native thread pools the calling thread uses (OpenMP's count is per thread,
    BLAS's process-wide) to `threads`; None leaves them alone."""
    if threads is not None:
        threadpool_limits(limits=threads)


def concat(batches: Sequence[Batch]) -> Batch:
    """One batch of the rows of `batches`, in order (same columns in each)."""
    columns, blocks = join_columns([b.columns for b in batches], [b.blocks for b in batches])
    return Batch(n=sum(b.n for b in batches), columns=columns, warnings=[], blocks=blocks)


def split(output: Output, sizes: Sequence[int]) -> list[Output | BaseException]:
    """`output` cut back into one output per request of `sizes` rows."""
    out: list[Output | BaseException] = []
    start = 0
    for size in sizes:
        end = start + size
        probabilities = None if output.probabilities is None else output.probabilities[start:end]
        out.append(
            Output(
                labels=output.labels[start:end],
                probabilities=probabilities,
                classes=output.classes,
            )
        )
        start = end
    return out
