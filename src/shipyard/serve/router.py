"""Which version answers a request, and whether a canary should advance: pure logic, no I/O.

Traffic is split over 10,000 buckets. The running canary takes the first `steps[step]`
percent, the challengers the next ones by weight, the champion the rest; the `pin` flag
overrides it all. A request with a key (a user or account id) hashes to a stable bucket, so the
same key lands on the same version for as long as the route stays the same, and a canary
that ramps from 10% to 50% keeps the keys it already had. Without a key the bucket comes from
the request id (reproducible), or at random.

    >>> router = Router(get_endpoint(ws, "credit"))
    >>> choice = router.choose("customer-42")
    >>> choice.primary_ref, choice.role, choice.shadows
    ('credit-risk@3', 'champion', ['mv_…'])
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shipyard.core.errors import Invalid
from shipyard.core.records import Endpoint

BUCKETS = 10_000
Role = Literal["champion", "challenger", "canary", "pinned"]
Action = Literal["hold", "advance", "rollback"]

GUARD_KEYS = ("error_rate", "p99_ms", "agreement", "min_requests")
DEFAULT_MIN_REQUESTS = 100


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Choice:
    """Where one request goes. Shared between requests: treat `shadows` as read-only.

    `shadows` are version ids that get a copy of the request off the critical path. When the
    canary answers, the champion is among them, so that the canary's agreement with the
    champion can be measured.
    """

    primary_id: str
    primary_ref: str
    role: Role
    shadows: list[str]


class Router:
    """Routes requests for one revision of an endpoint; build a new one when it changes."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.revision = endpoint.revision
        self._salt = endpoint.name.encode()[:64]
        shadows = [s.version_id for s in endpoint.shadows]
        self._pinned: Choice | None = None
        if endpoint.pinned is not None:
            pin = endpoint.pinned
            others = [s for s in shadows if s != pin.version_id]
            self._pinned = Choice(pin.version_id, pin.ref, "pinned", others)
        slots: list[tuple[int, Choice]] = []  # (upper bucket bound, choice), increasing
        taken = 0.0
        canary = endpoint.canary
        if canary is not None and canary.percent > 0:
            taken = float(canary.percent)
            copies = [endpoint.champion_id, *(s for s in shadows if s != endpoint.champion_id)]
            slots.append((_bound(taken), Choice(canary.version_id, canary.ref, "canary", copies)))
        weights = sum(c.weight for c in endpoint.challengers)
        # The canary takes its share first; challengers share what is left in proportion
        # when their weights no longer fit beside it.
        scale = min(1.0, (100.0 - taken) / weights) if weights > 0 else 0.0
        for c in endpoint.challengers:
            taken += c.weight * scale
            slots.append((_bound(taken), Choice(c.version_id, c.ref, "challenger", shadows)))
        champion = Choice(
            endpoint.champion_id,
            endpoint.champion_ref,
            "champion",
            [s for s in shadows if s != endpoint.champion_id],
        )
        slots.append((BUCKETS, champion))
        self._bounds = [b for b, _ in slots]
        self._choices = [c for _, c in slots]

    def bucket(self, key: str) -> int:
        """The stable bucket (0..9999) of a key on this endpoint."""
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big") % BUCKETS

    def choose(self, key: str | None = None, *, request_id: str | None = None) -> Choice:
        """The version that answers a request with this key (sticky), or this request id."""
        if self._pinned is not None:
            return self._pinned
        if len(self._choices) == 1:  # the champion alone: nothing to split
            return self._choices[0]
        if key is not None:
            bucket = self.bucket(key)
        elif request_id is not None:
            bucket = self.bucket("\x00" + request_id)
        else:
            bucket = random.randrange(BUCKETS)  # noqa: S311 - traffic split, not security
        return self._choices[bisect.bisect_right(self._bounds, bucket)]

    def shares(self) -> dict[str, float]:
        """Percent of traffic per version id (what the UI shows as the split)."""
        out: dict[str, float] = {}
        lower = 0
        for bound, choice in zip(self._bounds, self._choices, strict=True):
            out[choice.primary_id] = out.get(choice.primary_id, 0.0) + (bound - lower) / 100
            lower = bound
        if self._pinned is not None:
            return {self._pinned.primary_id: 100.0}
        return out


def _bound(percent: float) -> int:
    return min(BUCKETS, round(percent * BUCKETS / 100))


# -- canary guard -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What the canary did in the current window.

    `disagreement` is the share of canary answers that differ from the champion's answers to
    the same (shadowed) rows; None when nothing was compared yet. `min_requests` overrides the
    guard's own minimum for this evaluation.
    """

    requests: int
    errors: int = 0
    p99_ms: float | None = None
    disagreement: float | None = None
    min_requests: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str


def check_guard(guard: Mapping[str, float] | None) -> dict[str, float]:
    """A canary guard as plain data, or Invalid naming the key and what it expects."""
    out: dict[str, float] = {}
    for key, raw in (guard or {}).items():
        if key not in GUARD_KEYS:
            raise Invalid(
                f"canary guard {key!r} is not known; use {', '.join(GUARD_KEYS)} "
                "(for example error_rate=0.01 p99_ms=50 agreement=0.95)."
            )
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise Invalid(f"canary guard {key}={raw!r} is not a number.") from None
        if not math.isfinite(value):
            raise Invalid(f"canary guard {key}={raw!r} must be a finite number.")
        if key in ("error_rate", "agreement") and not 0 <= value <= 1:
            raise Invalid(
                f"canary guard {key}={raw!r} is a fraction: give a number from 0 to 1 "
                f"(e.g. {key}={'0.01' if key == 'error_rate' else '0.95'})."
            )
        if key == "p99_ms" and value <= 0:
            raise Invalid(f"canary guard p99_ms={raw!r} must be a positive number of ms.")
        if key == "min_requests" and (value < 1 or value != int(value)):
            raise Invalid(f"canary guard min_requests={raw!r} must be a whole number >= 1.")
        out[key] = value
    return out


class CanaryGuard:
    """Decides whether a canary holds, advances to its next step or rolls back.

    Rolls back when the error rate, p99 latency or disagreement with the champion breaks its
    limit over at least `min_requests` requests (errors also earlier, once so many occurred
    that the limit is broken whatever the rest of the window does); advances when
    `min_requests` were seen and every limit holds; else holds.

        >>> CanaryGuard({"error_rate": 0.01, "p99_ms": 50}).evaluate(
        ...     WindowStats(requests=1000, errors=3, p99_ms=31.0))
        Decision(action='advance', reason='…')
    """

    def __init__(self, guard: Mapping[str, float] | None = None) -> None:
        self.guard = check_guard(guard)
        self.min_requests = int(self.guard.get("min_requests", DEFAULT_MIN_REQUESTS))

    def evaluate(self, stats: WindowStats) -> Decision:
        need = stats.min_requests if stats.min_requests is not None else self.min_requests
        if stats.requests <= 0:
            return Decision("hold", "the canary has answered no requests yet")
        g = self.guard
        rate = stats.errors / stats.requests
        limit = g.get("error_rate")
        if limit is not None:
            if stats.requests >= need and rate > limit:
                return Decision(
                    "rollback",
                    f"error rate {rate:.2%} over {stats.requests:,} requests is above the "
                    f"guard error_rate={limit:g}",
                )
            if stats.requests < need and stats.errors > limit * need:
                return Decision(
                    "rollback",
                    f"{stats.errors:,} errors in the first {stats.requests:,} requests already "
                    f"break the guard error_rate={limit:g} over {need:,} requests",
                )
        if stats.requests < need:
            return Decision("hold", f"{stats.requests:,} of the {need:,} requests needed to judge")
        p99_limit = g.get("p99_ms")
        if p99_limit is not None and stats.p99_ms is not None and stats.p99_ms > p99_limit:
            return Decision(
                "rollback",
                f"p99 latency {stats.p99_ms:.1f} ms is above the guard p99_ms={p99_limit:g}",
            )
        agreement = g.get("agreement")
        if agreement is not None and stats.disagreement is not None:
            observed = 1.0 - stats.disagreement
            if observed < agreement - 1e-12:
                return Decision(
                    "rollback",
                    f"agreement with the champion {observed:.2%} is below the guard "
                    f"agreement={agreement:g}",
                )
        if p99_limit is not None and stats.p99_ms is None:
            return Decision("hold", "no latency measured yet for the p99_ms guard")
        if agreement is not None and stats.disagreement is None:
            return Decision("hold", "no answers compared with the champion yet")
        parts = [f"error rate {rate:.2%}"]
        if stats.p99_ms is not None:
            parts.append(f"p99 {stats.p99_ms:.1f} ms")
        if stats.disagreement is not None:
            parts.append(f"agreement {1.0 - stats.disagreement:.2%}")
        return Decision(
            "advance",
            f"every guard holds over {stats.requests:,} requests ({', '.join(parts)})",
        )
