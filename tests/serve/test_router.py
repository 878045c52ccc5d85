"""The router and the canary guard: pure logic over Endpoint records, no database."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from shipyard.core.errors import Invalid
from shipyard.core.records import Canary, Challenger, Endpoint, ShadowTarget
from shipyard.serve.router import CanaryGuard, Router, WindowStats

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CHAMPION, CH1, CH2, CANARY, SHADOW, PIN = (
    "mv_champ",
    "mv_ch1",
    "mv_ch2",
    "mv_can",
    "mv_sh",
    "mv_pin",
)


def endpoint(
    *,
    challengers: tuple[tuple[str, float], ...] = (),
    shadows: tuple[str, ...] = (),
    canary_step: int | None = None,
    canary_state: str = "running",
    pinned: str | None = None,
    name: str = "credit",
) -> Endpoint:
    canary = None
    if canary_step is not None:
        canary = Canary(
            version_id=CANARY,
            ref="m@4",
            steps=[10, 50, 100],
            step=canary_step,
            state=canary_state,  # type: ignore[arg-type]
        )
    return Endpoint(
        name=name,
        champion_id=CHAMPION,
        champion_ref="m@1",
        challengers=[Challenger(version_id=v, ref=f"m@{v}", weight=w) for v, w in challengers],
        shadows=[ShadowTarget(version_id=v, ref=f"m@{v}") for v in shadows],
        canary=canary,
        flags={"pin": f"m@{pinned}"} if pinned else {},
        pinned=ShadowTarget(version_id=pinned, ref=f"m@{pinned}") if pinned else None,
        revision=3,
        created_at=NOW,
        created_by="test",
        updated_at=NOW,
    )


def shares(router: Router, n: int = 20_000, **kwargs: Any) -> dict[str, float]:
    counts = Counter(router.choose(**kwargs).primary_id for _ in range(n))
    return {k: 100 * v / n for k, v in counts.items()}


def test_champion_only_takes_everything() -> None:
    router = Router(endpoint())
    choice = router.choose("anyone")
    assert (choice.primary_id, choice.primary_ref, choice.role, choice.shadows) == (
        CHAMPION,
        "m@1",
        "champion",
        [],
    )
    assert router.shares() == {CHAMPION: 100.0}
    assert router.revision == 3


def test_the_same_key_always_lands_on_the_same_version() -> None:
    e = endpoint(challengers=((CH1, 30), (CH2, 20)), canary_step=0)
    first, second = Router(e), Router(e.model_copy())
    keys = [f"customer-{i}" for i in range(10_000)]
    picks = [first.choose(k).primary_id for k in keys]
    assert picks == [second.choose(k).primary_id for k in keys]
    assert picks == [first.choose(k).primary_id for k in keys]
    found = Counter(picks)
    assert set(found) == {CHAMPION, CH1, CH2, CANARY}
    assert abs(found[CH1] / 100 - 30) < 2 and abs(found[CANARY] / 100 - 10) < 2


def test_keys_split_differently_on_different_endpoints() -> None:
    keys = [f"customer-{i}" for i in range(2_000)]
    a = Router(endpoint(challengers=((CH1, 50),), name="a"))
    b = Router(endpoint(challengers=((CH1, 50),), name="b"))
    same = sum(a.choose(k).primary_id == b.choose(k).primary_id for k in keys)
    assert 0.4 < same / len(keys) < 0.6


def test_random_traffic_follows_the_weights() -> None:
    found = shares(Router(endpoint(challengers=((CH1, 20), (CH2, 10)))))
    assert abs(found[CH1] - 20) < 2
    assert abs(found[CH2] - 10) < 2
    assert abs(found[CHAMPION] - 70) < 2


def test_the_request_id_seeds_the_choice_when_there_is_no_key() -> None:
    router = Router(endpoint(challengers=((CH1, 50),)))
    ids = [f"req-{i}" for i in range(2_000)]
    assert [router.choose(request_id=r).primary_id for r in ids] == [
        router.choose(request_id=r).primary_id for r in ids
    ]
    found = Counter(router.choose(request_id=r).primary_id for r in ids)
    assert abs(found[CH1] / 20 - 50) < 5


@pytest.mark.parametrize(("step", "percent"), [(0, 10), (1, 50), (2, 100)])
def test_canary_gets_its_step_share(step: int, percent: int) -> None:
    router = Router(endpoint(canary_step=step))
    found = shares(router)
    assert abs(found.get(CANARY, 0) - percent) < 2
    assert router.shares()[CANARY] == percent


def test_canary_and_challengers_share_what_is_left() -> None:
    router = Router(endpoint(challengers=((CH1, 20),), canary_step=1))
    assert router.shares() == {CANARY: 50.0, CH1: 20.0, CHAMPION: 30.0}
    found = shares(router)
    assert abs(found[CANARY] - 50) < 2 and abs(found[CH1] - 20) < 2
    # at 100% the canary takes everything; challengers are squeezed to nothing
    assert Router(endpoint(challengers=((CH1, 20),), canary_step=2)).shares() == {
        CANARY: 100.0,
        CH1: 0.0,
        CHAMPION: 0.0,
    }
    # weights that no longer fit beside the canary shrink in proportion
    squeezed = Router(endpoint(challengers=((CH1, 60), (CH2, 30)), canary_step=1)).shares()
    assert squeezed == {
        CANARY: 50.0,
        CH1: pytest.approx(33.33),
        CH2: pytest.approx(16.67),
        CHAMPION: 0.0,
    }


def test_keys_in_the_canary_stay_there_as_it_ramps() -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    at10, at50 = Router(endpoint(canary_step=0)), Router(endpoint(canary_step=1))
    early = {k for k in keys if at10.choose(k).role == "canary"}
    later = {k for k in keys if at50.choose(k).role == "canary"}
    assert early and early <= later


def test_a_canary_answer_shadows_the_champion_for_comparison() -> None:
    router = Router(endpoint(shadows=(SHADOW,), canary_step=2))
    choice = router.choose("k")
    assert (choice.role, choice.primary_id, choice.primary_ref) == ("canary", CANARY, "m@4")
    assert choice.shadows == [CHAMPION, SHADOW]
    champion_side = Router(endpoint(shadows=(SHADOW,))).choose("k")
    assert champion_side.shadows == [SHADOW]


@pytest.mark.parametrize("state", ["rolled_back", "stopped", "promoted"])
def test_a_canary_that_is_not_running_gets_nothing(state: str) -> None:
    router = Router(endpoint(canary_step=1, canary_state=state))
    assert router.shares() == {CHAMPION: 100.0}
    assert {router.choose(f"k{i}").role for i in range(1_000)} == {"champion"}


def test_the_pin_flag_wins_over_everything() -> None:
    router = Router(
        endpoint(challengers=((CH1, 50),), shadows=(SHADOW, PIN), canary_step=1, pinned=PIN)
    )
    choices = [router.choose(f"k{i}") for i in range(2_000)] + [router.choose()]
    choice = choices[0]
    assert all(c == choice for c in choices)
    assert (choice.primary_id, choice.primary_ref, choice.role) == (PIN, f"m@{PIN}", "pinned")
    assert choice.shadows == [SHADOW]  # shadows still see copies; the pin is not its own shadow
    assert router.shares() == {PIN: 100.0}


# -- canary guard -------------------------------------------------------------------------------

GUARD = {"error_rate": 0.01, "p99_ms": 50, "agreement": 0.95, "min_requests": 1_000}


def test_guard_advances_when_every_limit_holds() -> None:
    decision = CanaryGuard(GUARD).evaluate(
        WindowStats(requests=1_000, errors=5, p99_ms=31.0, disagreement=0.02)
    )
    assert decision.action == "advance"
    assert "1,000 requests" in decision.reason and "agreement 98.00%" in decision.reason


@pytest.mark.parametrize(
    ("stats", "pattern"),
    [
        (
            WindowStats(1_000, errors=20, p99_ms=10, disagreement=0),
            r"error rate 2.00% .* error_rate=0.01",
        ),
        (
            WindowStats(1_000, errors=0, p99_ms=80.5, disagreement=0),
            r"p99 latency 80.5 ms .* p99_ms=50",
        ),
        (
            WindowStats(1_000, errors=0, p99_ms=10, disagreement=0.1),
            r"agreement with the champion 90.00% .* agreement=0.95",
        ),
        # 11 errors can never average back under 1% of 1,000 requests: roll back at once
        (WindowStats(50, errors=11), r"11 errors in the first 50 requests already break"),
    ],
)
def test_guard_rolls_back(stats: WindowStats, pattern: str) -> None:
    decision = CanaryGuard(GUARD).evaluate(stats)
    assert decision.action == "rollback"
    assert re.search(pattern, decision.reason), decision.reason


@pytest.mark.parametrize(
    ("stats", "pattern"),
    [
        (WindowStats(0), r"no requests yet"),
        (WindowStats(500, errors=3, p99_ms=90, disagreement=0.5), r"500 of the 1,000 requests"),
        (WindowStats(1_000, errors=0, p99_ms=None, disagreement=0.0), r"no latency measured"),
        (WindowStats(1_000, errors=0, p99_ms=10, disagreement=None), r"no answers compared"),
    ],
)
def test_guard_holds(stats: WindowStats, pattern: str) -> None:
    decision = CanaryGuard(GUARD).evaluate(stats)
    assert decision.action == "hold"
    assert re.search(pattern, decision.reason), decision.reason


def test_guard_minimum_comes_from_the_stats_or_the_guard() -> None:
    guard = CanaryGuard({"error_rate": 0.05})
    assert guard.min_requests == 100
    assert guard.evaluate(WindowStats(99)).action == "hold"
    assert guard.evaluate(WindowStats(100)).action == "advance"
    assert guard.evaluate(WindowStats(20, min_requests=10)).action == "advance"
    assert CanaryGuard().evaluate(WindowStats(100, errors=100)).action == "advance"


@pytest.mark.parametrize(
    ("guard", "pattern"),
    [
        ({"latency": 1}, r"guard 'latency' is not known; use error_rate, p99_ms, agreement"),
        ({"error_rate": 1.5}, r"error_rate=1.5 is a fraction"),
        ({"p99_ms": 0}, r"p99_ms=0 must be a positive"),
        ({"min_requests": 2.5}, r"min_requests=2.5 must be a whole number"),
        ({"agreement": "high"}, r"agreement='high' is not a number"),
        ({"p99_ms": float("inf")}, r"must be a finite number"),
    ],
)
def test_guard_refuses_bad_limits(guard: dict[str, Any], pattern: str) -> None:
    with pytest.raises(Invalid, match=pattern):
        CanaryGuard(guard)
