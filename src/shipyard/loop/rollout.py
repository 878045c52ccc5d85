"""The guarded rollout of a retrained candidate: shadow, then canary steps, then champion.

- `begin()` puts the candidate beside the champion as a shadow (it sees a copy of every request,
  its answers are logged, clients never see them), or straight into the canary when the spec's
  `retrain.rollout.shadow` is 0.
- `progress()` judges the shadow once it answered `shadow` requests: agreement with the
  champion on the same rows, its p99 latency, against `retrain.rollout.guard`; a pass starts the
  canary (the server ramps it through `canary` steps and rolls it back when a guard fails), a
  failure ends the rollout. While the canary runs, `progress()` follows what the servers did:
  promoted (the candidate becomes the `champion` alias too) or rolled back.
- `stop()` halts it at any stage; the champion keeps serving. With no rollout in progress it
  pauses the loop for the endpoint instead (`serve.endpoints.pause_loop`), so "stop" always
  switches the automation off there.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np

from shipyard.core.errors import Conflict, NotFound
from shipyard.core.records import Endpoint, Rollout
from shipyard.core.spec import ProjectSpec
from shipyard.loop.rollouts import active_rollout, advance, note
from shipyard.monitor.window import LogChunk, scan
from shipyard.serve.endpoints import get_endpoint, move_alias, pause_loop, set_route, stop_canary
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.loop.rollout")


def begin(ws: Workspace, spec: ProjectSpec, rollout: Rollout) -> Rollout:
    """Start the candidate's first stage: shadow (or canary when no shadow is asked for)."""
    assert rollout.candidate_ref is not None
    plan = spec.retrain.rollout
    route = get_endpoint(ws, rollout.endpoint)
    if plan.shadow > 0:
        _route(ws, route, shadow=rollout.candidate_ref)
        return advance(
            ws,
            rollout.id,
            "shadow",
            f"{rollout.candidate_ref} shadows {route.champion_ref} for {plan.shadow:,} requests",
            expect="retraining",
            details={"requests": plan.shadow},
        )
    return _start_canary(ws, spec, rollout, route, expect="retraining")


def progress(ws: Workspace, spec: ProjectSpec, rollout: Rollout) -> Rollout:
    """Take the next step the evidence allows; unchanged when it is too early to judge."""
    if rollout.stage == "shadow":
        return _judge_shadow(ws, spec, rollout)
    if rollout.stage == "canary":
        return _follow_canary(ws, rollout)
    return rollout


def stop(ws: Workspace, endpoint: str, reason: str | None = None) -> Rollout | Endpoint:
    """Halt the endpoint's active rollout (the champion keeps serving) and return it; with no
    rollout in progress, pause the loop for the endpoint and return the endpoint."""
    rollout = active_rollout(ws, endpoint)
    if rollout is None:
        return pause_loop(ws, endpoint, reason)  # NotFound for an unknown endpoint
    why = reason or f"stopped by {ws.actor}"
    route = get_endpoint(ws, endpoint)
    if rollout.stage == "shadow" and rollout.candidate_id is not None:
        _route(ws, route, without=rollout.candidate_id)
    if rollout.stage == "canary" and route.canary is not None and route.canary.state == "running":
        stop_canary(ws, endpoint, why)
    return advance(ws, rollout.id, "stopped", f"{why}; {route.champion_ref} stays champion")


# -- stages -------------------------------------------------------------------------------------


def _judge_shadow(ws: Workspace, spec: ProjectSpec, rollout: Rollout) -> Rollout:
    assert rollout.candidate_id is not None
    plan = spec.retrain.rollout
    started = _stage_start(rollout, "shadow")
    route = get_endpoint(ws, rollout.endpoint)
    if not any(s.version_id == rollout.candidate_id for s in route.shadows):
        return advance(
            ws,
            rollout.id,
            "stopped",
            f"{rollout.candidate_ref} is no longer a shadow of {rollout.endpoint} (the route "
            "was changed by hand)",
            expect="shadow",
        )
    stats = shadow_stats(ws, rollout.endpoint, rollout.candidate_id, route.champion_id, started)
    if stats["requests"] < plan.shadow:
        return rollout
    guard = plan.guard
    problems = []
    agreement, p99 = stats["agreement"], stats["p99_ms"]
    if guard.agreement is not None and agreement is not None and agreement < guard.agreement:
        problems.append(
            f"agreement with the champion {agreement:.2%} is below {guard.agreement:.2%}"
        )
    if guard.p99_ms is not None and p99 is not None and p99 > guard.p99_ms:
        problems.append(f"p99 latency {p99:.1f} ms is above {guard.p99_ms:g} ms")
    summary = (
        f"{stats['requests']:,} shadowed requests, agreement "
        f"{_pct(agreement)}, p99 {_ms(p99)} (champion {_ms(stats['champion_p99_ms'])})"
    )
    _route(ws, route, without=rollout.candidate_id)
    if problems:
        return advance(
            ws,
            rollout.id,
            "rolled_back",
            f"shadow failed: {'; '.join(problems)} ({summary})",
            expect="shadow",
            details=stats,
        )
    note(ws, rollout.id, f"shadow passed: {summary}", **stats)
    return _start_canary(ws, spec, rollout, get_endpoint(ws, rollout.endpoint), expect="shadow")


def _start_canary(
    ws: Workspace, spec: ProjectSpec, rollout: Rollout, route: Endpoint, *, expect: str
) -> Rollout:
    plan = spec.retrain.rollout
    guard = {k: v for k, v in plan.guard.model_dump().items() if v is not None}
    assert rollout.candidate_ref is not None
    _route(ws, route, canary=rollout.candidate_ref, steps=plan.canary, guard=guard)
    steps = ", ".join(f"{s}%" for s in plan.canary)
    return advance(
        ws,
        rollout.id,
        "canary",
        f"canary {rollout.candidate_ref} started: steps {steps}, guard "
        f"{_guard_text(guard) or 'none'}",
        expect=expect,  # type: ignore[arg-type]
        details={"steps": plan.canary, "guard": guard},
    )


def _follow_canary(ws: Workspace, rollout: Rollout) -> Rollout:
    route = get_endpoint(ws, rollout.endpoint)
    canary = route.canary
    if route.champion_id == rollout.candidate_id:
        assert rollout.candidate_ref is not None
        try:  # the endpoints that follow the alias (this one included, when it does) move too
            move_alias(ws, rollout.candidate_ref, "champion")
        except (Conflict, NotFound) as exc:  # the endpoint still serves it; say why not aliased
            log.warning("could not move the champion alias: %s", exc.message)
        return advance(
            ws,
            rollout.id,
            "promoted",
            f"{rollout.candidate_ref} passed every canary step and is the champion of "
            f"{rollout.endpoint} (was {rollout.champion_ref})",
            expect="canary",
        )
    if canary is None or canary.version_id != rollout.candidate_id:
        return advance(
            ws,
            rollout.id,
            "stopped",
            f"the canary of {rollout.endpoint} is no longer {rollout.candidate_ref} (the route "
            "was changed by hand)",
            expect="canary",
        )
    if canary.state == "rolled_back":
        return advance(
            ws, rollout.id, "rolled_back", f"canary rolled back: {canary.reason}", expect="canary"
        )
    if canary.state == "stopped":
        return advance(
            ws, rollout.id, "stopped", f"canary stopped: {canary.reason}", expect="canary"
        )
    last = [e for e in rollout.events if e.stage == "canary"]
    seen = last[-1].details.get("step") if last else None
    if seen != canary.step:
        note(
            ws,
            rollout.id,
            f"canary at step {canary.step + 1} of {len(canary.steps)}: "
            f"{canary.percent}% of traffic",
            step=canary.step,
        )
    return rollout


# -- evidence -----------------------------------------------------------------------------------


def shadow_stats(
    ws: Workspace, endpoint: str, candidate_id: str, champion_id: str, since: datetime
) -> dict[str, Any]:
    """What the shadow did since `since`: requests, agreement with the champion, latencies."""
    answers: dict[tuple[str, int], Any] = {}
    latency: list[np.ndarray] = []
    requests: set[str] = set()
    for chunk in scan(ws, endpoint, since, None, version_id=candidate_id, shadow=True, features=[]):
        requests.update(chunk.request_ids.tolist())
        latency.append(chunk.latency_ms)
        answers.update(zip(_rows(chunk), chunk.labels.tolist(), strict=True))
    agree = compared = 0
    champion_latency: list[np.ndarray] = []
    for chunk in scan(ws, endpoint, since, None, version_id=champion_id, shadow=False, features=[]):
        champion_latency.append(chunk.latency_ms)
        for key, label in zip(_rows(chunk), chunk.labels.tolist(), strict=True):
            if key in answers:
                compared += 1
                agree += int(str(answers[key]) == str(label))
    return {
        "requests": len(requests),
        "compared_rows": compared,
        "agreement": agree / compared if compared else None,
        "p99_ms": _p99(latency),
        "champion_p99_ms": _p99(champion_latency),
    }


def _rows(chunk: LogChunk) -> list[tuple[str, int]]:
    """(request id, row within the request) for each logged row of a chunk."""
    return list(zip(chunk.request_ids.tolist(), chunk.positions.tolist(), strict=True))


def _p99(parts: list[np.ndarray]) -> float | None:
    values = np.concatenate(parts) if parts else np.empty(0)
    return float(np.percentile(values, 99)) if values.size else None


def _route(
    ws: Workspace,
    route: Endpoint,
    *,
    shadow: str | None = None,
    without: str | None = None,
    canary: str | None = None,
    steps: list[int] | None = None,
    guard: dict[str, float] | None = None,
) -> Endpoint:
    """Change one part of the route and keep the rest (set_route replaces it whole)."""
    challengers = [(c.ref, c.weight) for c in route.challengers if c.version_id != without]
    shadows = [s.ref for s in route.shadows if s.version_id != without]
    if shadow is not None:
        shadows.append(shadow)
    keep_canary = route.canary is not None and route.canary.state == "running"
    if canary is None and keep_canary:
        assert route.canary is not None
        return set_route(
            ws,
            route.name,
            challengers=challengers,
            shadows=shadows,
            canary=route.canary.ref,
            steps=route.canary.steps,
            guard=route.canary.guard,
        )
    if canary is not None:
        shadows = [s for s in shadows if s != canary]
        return set_route(
            ws,
            route.name,
            challengers=challengers,
            shadows=shadows,
            canary=canary,
            steps=steps or [10, 50, 100],
            guard=guard,
        )
    return set_route(ws, route.name, challengers=challengers, shadows=shadows)


def _stage_start(rollout: Rollout, stage: str) -> datetime:
    started = [e.at for e in rollout.events if e.stage == stage]
    return started[0] if started else rollout.updated_at


def _guard_text(guard: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in guard.items())


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
