"""The app's parts on their own: token cache, rate limiter, micro-batcher, exports, responses."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_cases import add, fit, frame

import shipyard.serve
from shipyard.core.errors import Forbidden, Invalid, RateLimited, Unauthorized
from shipyard.core.records import Role
from shipyard.registry import load_model
from shipyard.security import create_token, revoke_token
from shipyard.serve import auth
from shipyard.serve.auth import PREDICT, READ, TokenCache, bearer_secret
from shipyard.serve.batcher import MicroBatcher, concat, split
from shipyard.serve.fastpath import Output, Predictor, compile_predictor
from shipyard.serve.inputs import Batch, to_columns
from shipyard.serve.limits import RateLimiter, retry_after_header
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- tokens -------------------------------------------------------------------------------------


def counted_lookups(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[int], None] | None = None
) -> list[str]:
    """The token cache's database look-ups, one entry each; `before(count)` runs first."""
    lookups: list[str] = []
    real = auth.authenticate

    def counting(ws: Workspace, given: str | None) -> Any:
        lookups.append("x")
        if before is not None:
            before(len(lookups))
        return real(ws, given)

    monkeypatch.setattr(auth, "authenticate", counting)
    return lookups


def test_token_cache_trusts_a_lookup_for_ttl_then_sees_the_revocation(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, secret = create_token(workspace, "svc", Role.predictor)
    lookups = counted_lookups(monkeypatch)
    clock = Clock()
    cache = TokenCache(workspace, ttl=1.0, clock=clock)
    header = f"Bearer {secret}"

    async def scenario() -> None:
        many = await asyncio.gather(*(cache.token(header) for _ in range(20)))
        assert {t.id for t in many} == {token.id}
        assert len(lookups) == 1  # concurrent misses share one look-up
        revoke_token(workspace, token.id)
        clock.now += 0.9
        assert (await cache.token(header)).id == token.id  # still trusted within the ttl
        clock.now += 0.2
        with pytest.raises(Unauthorized, match="revoked"):
            await cache.token(header)
        with pytest.raises(Unauthorized, match="revoked"):
            await cache.token(header)  # the refusal is cached too
        assert len(lookups) == 2

    asyncio.run(scenario())


def test_a_token_in_use_is_refreshed_ahead_without_making_requests_wait(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, secret = create_token(workspace, "svc", Role.predictor)
    release = threading.Event()

    def slow(count: int) -> None:
        if count > 1:
            assert release.wait(10)  # the refresh is slow: a database writer holds it up

    lookups = counted_lookups(monkeypatch, before=slow)
    clock = Clock()
    cache = TokenCache(workspace, ttl=1.0, clock=clock)
    header = f"Bearer {secret}"

    async def scenario() -> None:
        await cache.token(header)
        clock.now += 0.4  # first half of the ttl: no look-up
        await cache.token(header)
        assert len(lookups) == 1
        clock.now += 0.2  # second half: a refresh starts, the request does not wait for it
        for _ in range(5):
            assert (await asyncio.wait_for(cache.token(header), 1)).id == token.id
        await asyncio.sleep(0.05)
        assert len(lookups) == 2  # one refresh, shared
        revoke_token(workspace, token.id)
        release.set()
        await asyncio.wait_for(cache._pending[cache_key(secret)], 10)
        with pytest.raises(Unauthorized, match="revoked"):  # before the old answer expired
            await cache.token(header)

    asyncio.run(scenario())


def cache_key(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()


def test_unknown_tokens_are_cached_as_refusals(workspace: Workspace) -> None:
    cache = TokenCache(workspace, ttl=1.0, clock=Clock())

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(Unauthorized, match="not known"):
                await cache.token("Bearer shp_made-up")

    asyncio.run(scenario())
    assert len(cache._entries) == 1


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        (None, "no API token"),
        ("", "no API token"),
        ("Token abc", "scheme 'Token'"),
        ("Bearer", "no token after 'Bearer'"),
    ],
)
def test_bearer_header_errors(header: str | None, pattern: str) -> None:
    with pytest.raises(Unauthorized, match=pattern):
        bearer_secret(header)
    assert bearer_secret("bearer  shp_abc ") == "shp_abc"


def test_access_names_the_roles_it_admits(workspace: Workspace) -> None:
    viewer, _ = create_token(workspace, "v", Role.viewer)
    deployer, _ = create_token(workspace, "d", Role.deployer)
    PREDICT.check(deployer)
    READ.check(deployer)
    with pytest.raises(Forbidden, match=r"role 'viewer'.* needs one of deployer, admin, predictor"):
        PREDICT.check(viewer)


# -- rate limits --------------------------------------------------------------------------------


def test_rate_limiter_is_a_token_bucket_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimited, match=r"retry after 0\.50 s") as caught:
        limiter.check("a")
    assert caught.value.details["retry_after"] == pytest.approx(0.5)
    assert retry_after_header(caught.value.details["retry_after"]) == "1"
    limiter.check("b")  # another token has its own bucket
    clock.now += 0.5
    limiter.check("a")
    with pytest.raises(Invalid, match="positive"):
        RateLimiter(rate=0)


# -- micro-batching -----------------------------------------------------------------------------


class Recording:
    """A real predictor that records each call's rows and can be made slow."""

    def __init__(self, predictor: Predictor, delay: float = 0.0) -> None:
        self.predictor = predictor
        self.delay = delay
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict(self, batch: Batch) -> Output:
        with self.lock:
            self.calls.append(batch.n)
        time.sleep(self.delay)
        return self.predictor.predict(batch)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Predictor, Any]:
    from app_harness import workspace_settings

    from shipyard.security import init_workspace

    ws, _, _ = init_workspace(workspace_settings(tmp_path_factory.mktemp("batcher") / "ws"))
    try:
        version = add(ws, fit(1.0))
        model = load_model(ws, version.ref)
    finally:
        ws.close()
    return compile_predictor(model), model


def batches(model: Any, sizes: list[int], seed: int = 3) -> list[Batch]:
    X, _ = frame(sum(sizes), seed)
    out, start = [], 0
    for size in sizes:
        rows = X.iloc[start : start + size].to_dict("records")
        out.append(to_columns(model.signature, {"rows": rows}))
        start += size
    return out


def test_concurrent_requests_are_merged_and_answered_with_their_own_rows(
    served: tuple[Predictor, Any],
) -> None:
    predictor, model = served
    slow = Recording(predictor, delay=0.05)
    parts = batches(model, [1] + [2] * 10)

    async def scenario() -> list[Output]:
        batcher = MicroBatcher(slow, name="m", max_batch=64, max_wait_ms=2)  # type: ignore[arg-type]
        batcher.start()
        first = asyncio.ensure_future(batcher.predict(parts[0]))
        while not slow.calls:  # the first request is being predicted, alone
            await asyncio.sleep(0.001)
        rest = await asyncio.gather(*(batcher.predict(b) for b in parts[1:]))
        outputs = [await first, *rest]
        await batcher.close()
        return outputs

    outputs = asyncio.run(scenario())
    assert slow.calls == [1, 20]  # the ten that waited went in one batch
    for batch, output in zip(parts, outputs, strict=True):
        alone = predictor.predict(batch)
        np.testing.assert_array_equal(output.labels, alone.labels)
        np.testing.assert_allclose(output.probabilities, alone.probabilities, rtol=1e-12)


def test_under_concurrent_traffic_requests_started_with_the_first_join_its_batch(
    served: tuple[Predictor, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.serve import batcher as batcher_module

    monkeypatch.setattr(batcher_module, "_CONCURRENT_S", 60.0)  # a slow machine stays concurrent
    predictor, model = served
    recorded = Recording(predictor)
    parts = batches(model, [1] * 16)

    async def scenario() -> None:
        batcher = MicroBatcher(recorded, name="m", max_batch=64, max_wait_ms=2, inline_ms=10_000)  # type: ignore[arg-type]
        batcher.start()
        # Traffic becomes concurrent: eight requests queued at once, merged into one batch.
        await asyncio.gather(*(batcher.predict(b) for b in parts[:8]))
        assert recorded.calls == [8]
        recorded.calls.clear()
        # As a server does it: one request's task queues and wakes the worker; the tasks of
        # the requests read in the same turn are created after that wake-up.
        first = asyncio.ensure_future(batcher.predict(parts[8]))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(batcher.predict(b)) for b in parts[9:]]
        await asyncio.gather(first, *rest)
        await batcher.close()

    asyncio.run(scenario())
    assert recorded.calls == [8]  # one batch, not the first alone and then the rest


def test_batches_stay_within_max_batch_rows(served: tuple[Predictor, Any]) -> None:
    predictor, model = served
    slow = Recording(predictor, delay=0.02)
    parts = batches(model, [3] * 12 + [20])

    async def scenario() -> list[Output]:
        batcher = MicroBatcher(slow, name="m", max_batch=8, max_wait_ms=1)  # type: ignore[arg-type]
        batcher.start()
        outputs = await asyncio.gather(*(batcher.predict(b) for b in parts))
        await batcher.close()
        return outputs

    outputs = asyncio.run(scenario())
    assert sum(slow.calls) == 56
    assert max(c for c in slow.calls if c != 20) <= 8  # the 20-row request runs alone
    assert 20 in slow.calls
    assert [o.labels.shape[0] for o in outputs] == [b.n for b in parts]


def test_a_lone_request_does_not_wait_for_company(served: tuple[Predictor, Any]) -> None:
    predictor, model = served
    (part,) = batches(model, [1])

    async def scenario() -> None:
        # With a 60 s max wait, a lingering batcher would time out here. A generous inline
        # budget keeps the decision independent of how busy the machine is (the first call,
        # timed on the thread, takes more than the default 1 ms when other work shares it).
        batcher = MicroBatcher(
            predictor, name="m", max_batch=64, max_wait_ms=60_000, inline_ms=10_000
        )
        batcher.start()
        for _ in range(3):
            await asyncio.wait_for(batcher.predict(part, alone=True), timeout=20)
        await asyncio.wait_for(batcher.predict(part), timeout=20)  # others in flight: queued
        await batcher.close()
        # The first call, of unknown cost, goes to the model's thread; cheap ones after it are
        # predicted at once while the caller says it is alone, else by the worker on the loop.
        assert batcher.calls == {"thread": 1, "alone": 2, "loop": 1}

    asyncio.run(scenario())


def test_inline_predictions_can_be_turned_off(served: tuple[Predictor, Any]) -> None:
    predictor, model = served
    (part,) = batches(model, [1])

    async def scenario() -> None:
        batcher = MicroBatcher(predictor, name="m", inline_ms=0)
        batcher.start()
        for _ in range(3):
            await batcher.predict(part, alone=True)
        await batcher.close()
        assert batcher.calls == {"thread": 3, "alone": 0, "loop": 0}

    asyncio.run(scenario())


class Busy:
    """A real predictor whose calls burn `cpu_ms` of the calling thread's CPU time or wait
    `wait_s` on the clock, and say whether they hold the interpreter lock."""

    def __init__(
        self, predictor: Predictor, *, cpu_ms: float = 0.0, wait_s: float = 0.0, holds_gil: bool
    ) -> None:
        self.predictor = predictor
        self.cpu_ms = cpu_ms
        self.wait_s = wait_s
        self.holds_gil = holds_gil
        self.threads: list[str] = []

    def predict(self, batch: Batch) -> Output:
        self.threads.append(threading.current_thread().name)
        start = time.thread_time()
        while (time.thread_time() - start) * 1000 < self.cpu_ms:
            pass
        time.sleep(self.wait_s)
        return self.predictor.predict(batch)


def where(busy: Busy) -> list[str]:
    return ["loop" if t == threading.main_thread().name else "thread" for t in busy.threads]


def test_a_model_that_holds_the_gil_runs_on_the_loop_under_five_times_the_budget(
    served: tuple[Predictor, Any],
) -> None:
    predictor, model = served
    (part,) = batches(model, [1])
    predictor.predict(part)  # warm: a first call's CPU time is not what the next ones cost

    async def scenario(busy: Busy) -> list[str]:
        batcher = MicroBatcher(busy, name="m", inline_ms=2)  # type: ignore[arg-type]
        batcher.start()
        for _ in range(4):
            await batcher.predict(part)
        await batcher.close()
        return where(busy)

    # 3 ms of CPU a call: over the 2 ms budget of a model that lets the lock go (a thread lets
    # the loop run meanwhile), under the 10 ms of one that holds it (a thread would not).
    held = Busy(predictor, cpu_ms=3, holds_gil=True)
    assert asyncio.run(scenario(held)) == ["thread", "loop", "loop", "loop"]
    released = Busy(predictor, cpu_ms=3, holds_gil=False)
    assert asyncio.run(scenario(released)) == ["thread"] * 4


def test_a_model_that_waits_inside_predict_goes_back_to_its_thread_and_is_tried_again(
    served: tuple[Predictor, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.serve.batcher as batcher_module

    predictor, model = served
    (part,) = batches(model, [1])
    monkeypatch.setattr(batcher_module, "_RETRY_LOOP_S", (0.3, 60.0))
    # Little CPU, so its thread call (timed by CPU: a clock there counts the waits for the
    # interpreter) says cheap; 50 ms on the clock on the loop, over the 4 ms it may block it.
    waits = Busy(predictor, wait_s=0.05, holds_gil=False)
    predictor.predict(part)  # warm: a first call's CPU time is not what the next ones cost

    async def scenario() -> tuple[list[str], list[str]]:
        batcher = MicroBatcher(waits, name="m", inline_ms=2)  # type: ignore[arg-type]
        batcher.start()
        for _ in range(3):
            await batcher.predict(part)
        first = where(waits)
        await asyncio.sleep(0.35)  # past the retry delay: tried on the loop once more
        for _ in range(2):
            await batcher.predict(part)
        await batcher.close()
        return first, where(waits)[3:]

    first, later = asyncio.run(scenario())
    assert first == ["thread", "loop", "thread"]
    assert later == ["loop", "thread"]


def test_a_failing_request_does_not_fail_the_others_in_its_batch(
    served: tuple[Predictor, Any],
) -> None:
    predictor, model = served
    slow = Recording(predictor, delay=0.03)
    good = batches(model, [1, 2, 2])
    bad = Batch(n=1, columns={"income": np.array([1.0])})  # lacks the other columns

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(slow, name="m", max_batch=64, max_wait_ms=2)  # type: ignore[arg-type]
        batcher.start()
        first = asyncio.ensure_future(batcher.predict(good[0]))
        while not slow.calls:
            await asyncio.sleep(0.001)
        results = await asyncio.gather(
            batcher.predict(good[1]),
            batcher.predict(bad),
            batcher.predict(good[2]),
            return_exceptions=True,
        )
        await first
        await batcher.close()
        return results

    ok1, failed, ok2 = asyncio.run(scenario())
    assert isinstance(failed, Invalid) and "no column" in failed.message
    assert isinstance(ok1, Output) and ok1.labels.shape == (2,)
    assert isinstance(ok2, Output) and ok2.labels.shape == (2,)


def test_close_answers_what_is_queued_then_refuses(served: tuple[Predictor, Any]) -> None:
    predictor, model = served
    parts = batches(model, [1] * 5)

    async def scenario() -> None:
        batcher = MicroBatcher(Recording(predictor, 0.01), name="m")  # type: ignore[arg-type]
        batcher.start()
        pending = [asyncio.ensure_future(batcher.predict(b)) for b in parts]
        await asyncio.sleep(0)
        await batcher.close()
        assert all(p.done() and not p.exception() for p in pending)
        with pytest.raises(Exception, match="being unloaded"):
            await batcher.predict(parts[0])

    asyncio.run(scenario())


def test_concat_and_split_round_trip(served: tuple[Predictor, Any]) -> None:
    predictor, model = served
    parts = batches(model, [2, 3, 1])
    assert all(part.blocks for part in parts)  # small requests: columns held as matrices
    merged = concat(parts)
    assert merged.n == 6
    assert [b.names for b in merged.blocks] == [b.names for b in parts[0].blocks]
    loose = Batch(merged.n, {name: values.copy() for name, values in merged.columns.items()})
    assert any(b.names == n.names for n in predictor._prep.numeric for b in merged.blocks)
    same = predictor.predict(loose)  # the preprocessing's other way in: column by column
    np.testing.assert_array_equal(predictor.predict(merged).probabilities, same.probabilities)
    pieces = split(predictor.predict(merged), [2, 3, 1])
    for part, piece in zip(parts, pieces, strict=True):
        assert isinstance(piece, Output)
        np.testing.assert_allclose(piece.probabilities, predictor.predict(part).probabilities)


# -- the package --------------------------------------------------------------------------------


def test_public_names() -> None:
    assert {"create_app", "ServeOptions", "run"} <= set(shipyard.serve.__all__)
    for name in shipyard.serve.__all__:
        assert getattr(shipyard.serve, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        shipyard.serve.nothing  # noqa: B018


# -- request ids and native thread pools ---------------------------------------------------------


def test_request_ids_are_time_ordered_random_hex_and_unique() -> None:
    import time

    from shipyard.serve.handlers import new_request_id

    before = int(time.time())
    ids = [new_request_id() for _ in range(2_000)]  # more than one draw from the OS
    after = int(time.time())
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert all(before <= int(i[:8], 16) <= after for i in ids)  # the second they were made
    assert [i[:8] for i in ids] == sorted(i[:8] for i in ids)
    assert len({i[8:] for i in ids}) == len(ids)  # 64 random bits each
    new_request_id.forget()  # as in a forked child: a fresh draw
    assert new_request_id() not in ids


def test_a_model_thread_pins_its_native_thread_pools() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    from shipyard.serve.batcher import pin_threads

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    with ThreadPoolExecutor(1, initializer=pin_threads, initargs=(1,)) as pinned:
        assert pinned.submit(openmp_threads).result() <= {1}
    with ThreadPoolExecutor(1, initializer=pin_threads, initargs=(None,)) as untouched:
        assert untouched.submit(openmp_threads).result() == openmp_threads()


def test_a_client_that_hangs_up_is_not_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request

    from shipyard.serve.responses import error_response

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/endpoints/credit/predict",
        "headers": [],
        "query_string": b"",
        "app": Starlette(),
    }
    with caplog.at_level(logging.DEBUG, logger="shipyard"):
        response = asyncio.run(error_response(Request(scope), ClientDisconnect()))
    assert response.status_code == 499
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with caplog.at_level(logging.ERROR, logger="shipyard"):
        crashed = asyncio.run(error_response(Request(scope), RuntimeError("boom")))
    assert crashed.status_code == 500
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


def test_a_running_server_makes_full_collections_rare_and_restores_them(tmp_path: Path) -> None:
    import gc

    from app_harness import running, tokens_for, workspace_settings

    from shipyard.security import init_workspace

    settings = workspace_settings(tmp_path / "ws")
    ws, _, _ = init_workspace(settings)
    before = gc.get_threshold()
    try:
        with running(settings, tokens_for(ws)):
            during = gc.get_threshold()
    finally:
        ws.close()
    assert during[:2] == before[:2] and during[2] == 1_000 != before[2]
    assert gc.get_threshold() == before


def test_metrics_show_the_prediction_logs_state_when_scraped() -> None:
    from dataclasses import dataclass

    from shipyard.serve.metrics import Metrics

    @dataclass
    class State:  # what a PredictionLog exposes, in a state an operator must see
        pending: int = 0
        written: int = 0
        dropped: int = 0
        rejected: int = 0
        last_error: BaseException | None = None

    metrics = Metrics()
    assert b"shipyard_prediction_log" not in metrics.render()[0]  # no log open yet
    state = State(pending=120, written=5_000, dropped=7, rejected=1)
    metrics.log = state
    text = metrics.render()[0].decode()
    assert "shipyard_prediction_log_pending_rows 120.0" in text
    assert "shipyard_prediction_log_written_rows_total 5000.0" in text
    assert "shipyard_prediction_log_dropped_rows_total 7.0" in text
    assert "shipyard_prediction_log_rejected_rows_total 1.0" in text
    assert "shipyard_prediction_log_failing 0.0" in text
    state.last_error = OSError("disk full")  # read at each scrape, not when registered
    assert "shipyard_prediction_log_failing 1.0" in metrics.render()[0].decode()
