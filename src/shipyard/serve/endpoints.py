"""Endpoints: which model versions answer a served endpoint, and how traffic is split.

One implementation behind the CLI, the REST API and the SDK. An endpoint has a champion,
challengers with traffic weights (A/B), shadows that see a copy of traffic, at most one canary
ramping through steps, and flags. A version rejected by its gates, or archived, is refused in
every role.

A champion given as an alias ("credit-risk@champion") follows the alias: when the alias moves
(`move_alias()`, or any `registry.set_alias` — servers call `follow_aliases()` when aliases
change), the endpoint's champion moves too, as a route change of its own (audited
`endpoint.champion.follow`). A champion given with a version number ("credit-risk@3") stays
pinned to it; so do challengers, shadows and canaries, whatever their reference. Promoting the
canary of a following endpoint moves the alias to it, so the two never disagree for long.

The champion's model status tells the truth: it becomes `deployed` when it starts serving as a
champion, and a replaced one that is the champion of no endpoint goes back to `approved` (in
the same transaction; see `registry.models`).

Every change bumps the endpoint's `revision` (a server polls `revisions()` and reloads only what
changed) and writes an audit event with the routing before and after, in one transaction.

    >>> create_endpoint(ws, "credit", "credit-risk@champion").champion_follows
    'credit-risk@champion'
    >>> set_route(ws, "credit", challengers=[("credit-risk@4", 10)], canary="credit-risk@5")
    >>> advance_canary(ws, "credit").canary.percent
    50
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.core.errors import Conflict, Invalid, NotFound, ShipyardError
from shipyard.core.records import (
    Canary,
    Challenger,
    Endpoint,
    ModelStatus,
    ModelVersion,
    ShadowTarget,
    check_name,
)
from shipyard.registry import get_version, parse_ref, set_alias
from shipyard.registry.models import mark_deployed, mark_undeployed
from shipyard.serve.router import check_guard
from shipyard.store import audit
from shipyard.store.tables import EndpointRow
from shipyard.store.workspace import Workspace

DEFAULT_STEPS = (10, 50, 100)
ON_OFF = ("on", "off")
# Flag name → allowed values (None: a model version reference).
FLAGS: dict[str, tuple[str, ...] | None] = {
    "explain": ON_OFF,
    "extra_columns": ("refuse", "ignore"),  # columns a request sends that no model knows
    "log_inputs": ON_OFF,
    "pin": None,
    "strict_ranges": ON_OFF,
}

Config = dict[str, Any]
log = logging.getLogger("shipyard.serve")


# -- reading ------------------------------------------------------------------------------------


def get_endpoint(ws: Workspace, name: str) -> Endpoint:
    """An endpoint's current routing."""
    with ws.db.read() as s:
        row = s.get(EndpointRow, name)
        if row is None:
            raise unknown_endpoint(s, name)
        return to_record(row)


def list_endpoints(ws: Workspace) -> list[Endpoint]:
    """Every endpoint, by name."""
    with ws.db.read() as s:
        return [to_record(r) for r in s.scalars(select(EndpointRow).order_by(EndpointRow.name))]


def revisions(ws: Workspace) -> dict[str, int]:
    """Endpoint name → revision: one cheap query a server polls to see what changed."""
    with ws.db.read() as s:
        rows = s.execute(select(EndpointRow.name, EndpointRow.revision))
        return {name: revision for name, revision in rows}


# -- creating and routing -----------------------------------------------------------------------


def create_endpoint(ws: Workspace, name: str, model_ref: str) -> Endpoint:
    """A new endpoint whose champion is the version `model_ref` names: NAME@ALIAS follows the
    alias from now on, NAME@N stays on that version (NAME and NAME@latest: the newest now).

    >>> create_endpoint(ws, "credit", "credit-risk@champion").champion_ref
    'credit-risk@3'
    """
    check_name(name, what="endpoint name")
    version = _servable(ws, name, model_ref, "champion")
    config: Config = {
        "champion": _target(version, follows=_alias_of(model_ref)),
        "challengers": [],
        "shadows": [],
        "canary": None,
        "flags": {},
        "pinned": None,
    }
    now = datetime.now(UTC)
    try:
        with ws.db.write() as s:
            if s.get(EndpointRow, name) is not None:
                raise _exists(name)
            row = EndpointRow(
                name=name,
                config=config,
                revision=1,
                created_at=now,
                created_by=ws.actor,
                updated_at=now,
                updated_by=ws.actor,
            )
            s.add(row)
            s.flush()
            audit.append(
                s,
                actor=ws.actor,
                action="endpoint.create",
                object_type="endpoint",
                object_id=name,
                before=None,
                after="1",
                details={"before": None, "after": config, "revision": 1},
            )
            mark_deployed(s, ws.actor, version.id, why=f"champion of endpoint {name}")
            return to_record(row)
    except IntegrityError as exc:  # created by someone else between the check and the insert
        raise _exists(name) from exc


def set_champion(
    ws: Workspace, name: str, model_ref: str, *, expect_revision: int | None = None
) -> Endpoint:
    """Make `model_ref` the champion; it leaves the challengers, shadows and canary if there.
    NAME@ALIAS makes the endpoint follow the alias, NAME@N pins it (see the module doc).

    >>> set_champion(ws, "credit", "credit-risk@4").champion_ref
    'credit-risk@4'
    """
    version = _servable(ws, name, model_ref, "champion")

    def change(config: Config) -> None:
        _check_beside(name, version, _others(config), "champion")
        config["champion"] = _target(version, follows=_alias_of(model_ref))
        _drop_version(config, version.id, reason=f"made champion by {ws.actor}")

    return _update(ws, name, "endpoint.champion", change, expect_revision=expect_revision)


def set_route(
    ws: Workspace,
    name: str,
    *,
    challengers: Sequence[tuple[str, float]] = (),
    shadows: Sequence[str] = (),
    canary: str | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    guard: Mapping[str, float] | None = None,
    expect_revision: int | None = None,
) -> Endpoint:
    """Set who besides the champion gets traffic: the route becomes exactly what is given.

    Challenger weights are percent of all traffic (at most 100 together); shadows get a copy
    of every request; the canary starts at `steps[0]` percent and is judged by `guard`
    (error_rate, p99_ms, agreement, min_requests). Re-sending the running canary with the same
    steps keeps its current step. Every change takes `expect_revision`: given, the change is
    applied only if the endpoint is still at that revision (else `Conflict` naming the current
    one), checked under the row lock.

        >>> set_route(ws, "credit", challengers=[("credit-risk@4", 20)],
        ...           shadows=["credit-risk@6"], canary="credit-risk@5",
        ...           steps=[10, 50, 100], guard={"error_rate": 0.01, "p99_ms": 50})
    """
    weights = [(ref, _weight(ref, w)) for ref, w in challengers]
    total = sum(w for _, w in weights)
    if total > 100 + 1e-9:
        raise Invalid(
            f"challenger weights add up to {total:g}%, more than 100%; lower them (the "
            "champion answers whatever is left)."
        )
    ramp = _steps(steps)
    limits = check_guard(guard)
    chosen = [
        *((_servable(ws, name, ref, "challenger"), "challenger") for ref, _ in weights),
        *((_servable(ws, name, ref, "shadow"), "shadow") for ref in shadows),
        *(((_servable(ws, name, canary, "canary"), "canary"),) if canary is not None else ()),
    ]
    roles: dict[str, str] = {}
    for version, role in chosen:
        if version.id in roles:
            raise Invalid(
                f"{version.ref} is given twice (as {roles[version.id]} and as {role}); a "
                "version takes one role on an endpoint."
            )
        roles[version.id] = role
    new_challengers = [
        {**_target(v), "weight": w}
        for (v, _), (_, w) in zip(chosen[: len(weights)], weights, strict=True)
    ]
    new_shadows = [_target(v) for v, role in chosen if role == "shadow"]
    canary_version = chosen[-1][0] if canary is not None else None

    def change(config: Config) -> None:
        champion_id = config["champion"]["version_id"]
        for version, role in chosen:
            if version.id == champion_id:
                raise Invalid(
                    f"{version.ref} is the champion of endpoint {name!r}; it cannot also be a "
                    f"{role}. Choose another version, or change the champion first."
                )
            _check_beside(name, version, [config["champion"]], role)
        config["challengers"] = new_challengers
        config["shadows"] = new_shadows
        if canary_version is None:
            config["canary"] = None
            return
        old = config.get("canary")
        keep = (
            old is not None
            and old["state"] == "running"
            and old["version_id"] == canary_version.id
            and old["steps"] == ramp
        )
        config["canary"] = {
            **_target(canary_version),
            "steps": ramp,
            "step": old["step"] if keep and old else 0,
            "state": "running",
            "guard": limits,
            "reason": None,
        }

    return _update(ws, name, "endpoint.route", change, expect_revision=expect_revision)


def set_flags(
    ws: Workspace,
    name: str,
    flags: Mapping[str, str | None],
    *,
    expect_revision: int | None = None,
) -> Endpoint:
    """Set flags (None removes one): explain, log_inputs, strict_ranges (on|off), pin (REF).

    `pin` sends all traffic to one version, whatever the route says: a kill switch.

        >>> set_flags(ws, "credit", {"explain": "on", "pin": "credit-risk@2"}).flags
        {'explain': 'on', 'pin': 'credit-risk@2'}
    """
    updates: dict[str, str | None] = {}
    pinned: ModelVersion | None = None
    for key, raw in flags.items():
        allowed = FLAGS.get(key, ())
        if key not in FLAGS:
            raise Invalid(
                f"flag {key!r} is not known; the flags are {', '.join(sorted(FLAGS))} "
                "(explain, log_inputs and strict_ranges take on|off; extra_columns takes "
                "refuse|ignore; pin takes a model version)."
            )
        if raw is None:
            updates[key] = None
            continue
        value = str(raw).strip()
        if allowed is None:
            pinned = _servable(ws, name, value, "pinned version")
            value = pinned.ref
        elif value.lower() not in allowed:
            raise Invalid(f"flag {key}={raw!r}: expected one of {', '.join(allowed)}.")
        else:
            value = value.lower()
        updates[key] = value

    def change(config: Config) -> None:
        current: dict[str, str] = dict(config.get("flags") or {})
        for key, value in updates.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        config["flags"] = current
        if "pin" in updates:
            if pinned is not None:
                _check_beside(name, pinned, [config["champion"]], "pinned version")
            config["pinned"] = _target(pinned) if pinned is not None else None

    return _update(ws, name, "endpoint.flags", change, expect_revision=expect_revision)


# -- following aliases --------------------------------------------------------------------------


@dataclass
class Followed:
    """What `follow_aliases()` did: the endpoints it moved, and why others stayed."""

    moved: list[Endpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def move_alias(ws: Workspace, ref: str, alias: str) -> tuple[ModelVersion, Followed]:
    """Point a model's `alias` at the version `ref` names, and move the champion of every
    endpoint that follows that alias to it (each a route change of its own, audited).

        >>> version, followed = move_alias(ws, "credit-risk@4", "champion")
        >>> [e.name for e in followed.moved]
        ['credit']
    """
    version = set_alias(ws, ref, alias)
    return version, follow_aliases(ws, model=version.model)


def follow_aliases(ws: Workspace, *, model: str | None = None) -> Followed:
    """Move every endpoint whose champion follows an alias that has moved since it last
    followed it (of `model`, or of every model). Idempotent: several servers may call it.

    An endpoint only follows a move of its alias: a canary promoted on it meanwhile is not
    undone. Where the alias now names a version that cannot be the champion there (archived,
    other inputs), the endpoint keeps its champion and `problems` says why.
    """
    with ws.db.read() as s:
        rows = list(s.execute(select(EndpointRow.name, EndpointRow.config)))
    done = Followed()
    for name, config in rows:
        champion = config["champion"]
        follows = champion.get("follows")
        if follows is None or (model is not None and follows["model"] != model):
            continue
        alias_ref = f"{follows['model']}@{follows['alias']}"
        try:
            version = get_version(ws, alias_ref)
            if version.id == follows["seen"]:
                continue
            moved = _follow(ws, name, alias_ref, version)
        except ShipyardError as exc:
            done.problems.append(
                f"endpoint {name!r} follows {alias_ref} but stays on {champion['ref']}: "
                f"{exc.message}"
            )
            continue
        if moved is not None:
            done.moved.append(moved)
    return done


def _follow(ws: Workspace, name: str, alias_ref: str, version: ModelVersion) -> Endpoint | None:
    version = _servable(ws, name, version.ref, "champion")
    moved = False

    def change(config: Config) -> None:
        nonlocal moved
        champion = config["champion"]
        follows = champion.get("follows")
        if follows is None or f"{follows['model']}@{follows['alias']}" != alias_ref:
            return  # pinned or re-pointed meanwhile
        if follows["seen"] == version.id:
            return  # another server followed it first
        _check_beside(name, version, _others(config), "champion")
        config["champion"] = _target(version, follows=follows["alias"])
        _drop_version(config, version.id, reason=f"made champion by following {alias_ref}")
        moved = True

    details = {"alias": alias_ref, "to": version.ref}
    endpoint = _update(ws, name, "endpoint.champion.follow", change, details=details)
    if moved:
        log.info("endpoint %s follows %s to %s", name, alias_ref, version.ref)
    return endpoint if moved else None


def _alias_of(model_ref: str) -> str | None:
    """The alias a reference names (None for NAME@N, NAME and NAME@latest)."""
    return parse_ref(model_ref).alias


# -- the loop's switch --------------------------------------------------------------------------


def pause_loop(ws: Workspace, name: str, reason: str | None = None) -> Endpoint:
    """Stop the retrain loop from acting on endpoint `name` (no retrain, no rollout step)
    until `resume_loop()`; stored with the endpoint and audited. Pausing again keeps the
    first reason.

        >>> pause_loop(ws, "credit", "quarter-end freeze").loop_paused
        'quarter-end freeze'
    """
    why = _reason(reason) if reason else f"by {ws.actor}"

    def change(config: Config) -> None:
        if not config.get("loop_paused"):
            config["loop_paused"] = why

    return _update(ws, name, "endpoint.loop.pause", change, details={"reason": why})


def resume_loop(ws: Workspace, name: str) -> Endpoint:
    """Let the retrain loop act on endpoint `name` again (audited)."""

    def change(config: Config) -> None:
        config.pop("loop_paused", None)

    return _update(ws, name, "endpoint.loop.resume", change)


# -- the canary ---------------------------------------------------------------------------------


def advance_canary(ws: Workspace, name: str, *, expect_step: int | None = None) -> Endpoint:
    """Move the running canary to its next step; from the last step, promote it.

    `expect_step` makes the call idempotent for several servers judging the same canary: when
    the canary is no longer running at that step, nothing changes.
    """
    if expect_step is not None:
        current = get_endpoint(ws, name)
        canary_now = current.canary
        if canary_now is None or canary_now.state != "running" or canary_now.step != expect_step:
            return current
    version = _canary_version(ws, name)

    def change(config: Config) -> str | None:
        if expect_step is not None:
            now = config.get("canary")
            if now is None or now["state"] != "running" or now["step"] != expect_step:
                return None  # another server moved it meanwhile
        canary = _running(name, config)
        if canary["step"] + 1 >= len(canary["steps"]):
            _promote(config, version, ws.actor)
            return "endpoint.canary.promote"
        canary["step"] += 1
        return "endpoint.canary.step"

    before = get_endpoint(ws, name).champion_id
    return _alias_follows_promotion(ws, _update(ws, name, None, change), before)


def promote_canary(ws: Workspace, name: str, *, expect_revision: int | None = None) -> Endpoint:
    """Make the running canary the champion (the old champion stops serving)."""
    version = _canary_version(ws, name)

    def change(config: Config) -> None:
        _running(name, config)
        _promote(config, version, ws.actor)

    before = get_endpoint(ws, name).champion_id
    return _alias_follows_promotion(
        ws,
        _update(ws, name, "endpoint.canary.promote", change, expect_revision=expect_revision),
        before,
    )


def _alias_follows_promotion(ws: Workspace, endpoint: Endpoint, champion_before: str) -> Endpoint:
    """A canary promoted on an endpoint that follows an alias takes the alias along (and so
    every endpoint that follows it), unless the alias was moved since the endpoint last
    followed it: then that newer move wins (`follow_aliases`)."""
    if endpoint.champion_id == champion_before or endpoint.champion_follows is None:
        return endpoint
    with ws.db.read() as s:
        row = s.get(EndpointRow, endpoint.name)
        follows = row.config["champion"].get("follows") if row is not None else None
    if follows is None:
        return endpoint
    try:
        named = get_version(ws, endpoint.champion_follows)
        if named.id == follows["seen"] and named.id != endpoint.champion_id:
            move_alias(ws, endpoint.champion_ref, follows["alias"])
            return get_endpoint(ws, endpoint.name)
    except ShipyardError as exc:  # the promotion stands; the alias (and followers) stay behind
        log.warning(
            "endpoint %s promoted %s but %s did not move: %s",
            endpoint.name,
            endpoint.champion_ref,
            endpoint.champion_follows,
            exc.message,
        )
    return endpoint


def rollback_canary(
    ws: Workspace, name: str, reason: str, *, expect_revision: int | None = None
) -> Endpoint:
    """Stop sending traffic to the canary because it failed (`reason` is kept and audited).

    Rolling back a canary that was already rolled back changes nothing, so several servers
    may act on the same failed guard.
    """
    why = _reason(reason)

    def change(config: Config) -> None:
        canary = config.get("canary")
        if canary is not None and canary["state"] == "rolled_back":
            return
        canary = _running(name, config)
        canary["state"], canary["reason"] = "rolled_back", why

    return _update(
        ws,
        name,
        "endpoint.canary.rollback",
        change,
        details={"reason": why},
        expect_revision=expect_revision,
    )


def stop_canary(
    ws: Workspace, name: str, reason: str | None = None, *, expect_revision: int | None = None
) -> Endpoint:
    """Stop the canary without judging it (it keeps no traffic)."""
    why = _reason(reason) if reason else f"stopped by {ws.actor}"

    def change(config: Config) -> None:
        canary = _running(name, config)
        canary["state"], canary["reason"] = "stopped", why

    return _update(
        ws,
        name,
        "endpoint.canary.stop",
        change,
        details={"reason": why},
        expect_revision=expect_revision,
    )


def _canary_version(ws: Workspace, name: str) -> ModelVersion:
    """The running canary's version, re-checked: it may have been archived since it started."""
    canary = get_endpoint(ws, name).canary
    _running(name, {"canary": canary.model_dump() if canary else None})
    assert canary is not None
    return _servable(ws, name, canary.ref, "champion")


def _promote(config: Config, version: ModelVersion, actor: str) -> None:
    canary = config["canary"]
    if canary["version_id"] != version.id:
        raise Conflict(
            f"the canary changed to {canary['ref']} while {version.ref} was being promoted; "
            "look at the endpoint again and repeat if it should still happen."
        )
    follows = config["champion"].get("follows")
    if follows is not None and follows["model"] != version.model:
        follows = None  # an alias of one model cannot name another's version: pinned now
    config["champion"] = {**_target(version), **({"follows": follows} if follows else {})}
    canary["state"], canary["reason"] = "promoted", f"promoted by {actor}"
    _drop_version(config, version.id, reason=None)


def _running(name: str, config: Config) -> dict[str, Any]:
    canary: dict[str, Any] | None = config.get("canary")
    if canary is None:
        raise Conflict(
            f"endpoint {name!r} has no canary; start one with "
            f"`shipyard endpoints route {name} --canary MODEL@N`."
        )
    if canary["state"] != "running":
        why = f": {canary['reason']}" if canary.get("reason") else ""
        raise Conflict(
            f"the canary {canary['ref']} of endpoint {name!r} is {canary['state']}{why}; it "
            f"is not running. Start a new one with `shipyard endpoints route {name} --canary "
            "MODEL@N`."
        )
    return canary


# -- the one write path -------------------------------------------------------------------------


def _update(
    ws: Workspace,
    name: str,
    action: str | None,
    change: Callable[[Config], str | None],
    *,
    details: Mapping[str, Any] | None = None,
    expect_revision: int | None = None,
) -> Endpoint:
    """Apply `change` to a copy of the stored routing under a row lock; audit and bump it.

    `change` raises to refuse (nothing is written), and may return the audit action to use.
    When the routing comes out the same, nothing is written and the revision stays. With
    `expect_revision`, a row at another revision is refused before `change` runs.
    """
    with ws.db.write() as s:
        row = s.scalars(
            select(EndpointRow).where(EndpointRow.name == name).with_for_update()
        ).first()
        if row is None:
            raise unknown_endpoint(s, name)
        if expect_revision is not None and row.revision != expect_revision:
            raise _moved_on(name, row.revision, expect_revision)
        before: Config = row.config
        after = copy.deepcopy(before)
        chosen = change(after) or action
        if after == before or chosen is None:
            return to_record(row)
        row.config = after
        row.revision += 1
        row.updated_at = datetime.now(UTC)
        row.updated_by = ws.actor
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action=chosen,
            object_type="endpoint",
            object_id=name,
            before=str(row.revision - 1),
            after=str(row.revision),
            details={
                **(details or {}),
                "revision": row.revision,
                "before": before,
                "after": after,
            },
        )
        _champion_statuses(s, ws.actor, name, before["champion"], after["champion"])
        return to_record(row)


def _champion_statuses(
    s: Session, actor: str, name: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """The new champion is `deployed`; the old one, unless it is champion elsewhere, goes back
    to `approved` (registry.models). Rows are changed in id order, so two endpoints swapping
    champions at once cannot deadlock on PostgreSQL."""
    old, new = before["version_id"], after["version_id"]
    if old == new:
        return
    others = s.scalars(select(EndpointRow.config).where(EndpointRow.name != name))
    elsewhere = {config["champion"]["version_id"] for config in others}
    for version_id in sorted((old, new)):
        if version_id == new:
            mark_deployed(s, actor, new, why=f"champion of endpoint {name}")
        elif old not in elsewhere:
            why = f"replaced by {after['ref']} as champion of endpoint {name}"
            mark_undeployed(s, actor, old, why=why)


# -- checks -------------------------------------------------------------------------------------


def _servable(ws: Workspace, endpoint: str, ref: str, role: str) -> ModelVersion:
    """The version `ref` names, if it may serve; Conflict naming the failed gates if not."""
    version = get_version(ws, ref)
    if version.status == ModelStatus.rejected:
        failed = version.failed_gates
        why = (
            "it failed its gates: "
            + "; ".join(
                f"{g.gate} (got {g.value:.4g})" if g.value is not None else g.gate for g in failed
            )
            if failed
            else "its status was set to rejected by hand"
        )
        raise Conflict(
            f"{version.ref} cannot be the {role} of endpoint {endpoint!r}: it was rejected "
            f"because {why}. A rejected version is never deployed; train a better model or "
            "choose a version that passed its gates (`shipyard models ls`)."
        )
    if version.status == ModelStatus.archived:
        raise Conflict(
            f"{version.ref} cannot be the {role} of endpoint {endpoint!r}: it is archived. "
            "Restore it to candidate first, or choose another version (`shipyard models ls`)."
        )
    return version


def _check_beside(
    endpoint: str, version: ModelVersion, others: Sequence[Mapping[str, Any]], role: str
) -> None:
    """Every version of an endpoint answers the same requests: same inputs, same output."""
    for other in others:
        signature = other.get("signature")
        if not signature:
            continue
        theirs = {c["name"]: c["dtype"] for c in signature["inputs"]}
        ours = {c.name: c.dtype for c in version.signature.inputs}
        problems = []
        if missing := sorted(set(ours) - set(theirs)):
            problems.append(f"it needs columns {other['ref']} does not take: {missing}")
        if extra := sorted(set(theirs) - set(ours)):
            problems.append(f"it lacks columns {other['ref']} takes: {extra}")
        problems += [
            f"column {c!r} is {ours[c]}, not {theirs[c]}"
            for c in sorted(set(ours) & set(theirs))
            if ours[c] != theirs[c]
        ]
        if signature["output"] != version.signature.output:
            problems.append(f"it outputs {version.signature.output!r}, not {signature['output']!r}")
        if problems:
            where = f" of endpoint {endpoint!r}" if endpoint else ""
            raise Conflict(
                f"{version.ref} cannot be the {role}{where} beside {other['ref']}: "
                f"{'; '.join(problems)}. Every version of an endpoint takes the same "
                "requests: take that version off the route first, or serve this one on "
                "another endpoint."
            )


def _weight(ref: str, raw: float) -> float:
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise Invalid(f"challenger {ref}: weight {raw!r} is not a number.") from None
    if not math.isfinite(weight) or not 0 < weight <= 100:
        raise Invalid(
            f"challenger {ref}: weight {raw!r} must be a percent of traffic above 0 and at "
            "most 100 (e.g. 10)."
        )
    return weight


def _steps(steps: Sequence[int]) -> list[int]:
    ramp = list(steps)
    valid = bool(ramp) and all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p <= 100 for p in ramp
    )
    if not valid or any(b <= a for a, b in itertools.pairwise(ramp)):
        raise Invalid(
            f"canary steps {ramp} must be increasing whole percents from 1 to 100 (e.g. 10,50,100)."
        )
    return ramp


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise Invalid("give a reason (a few words on why), so the audit log can say why.")
    return text[:500]


# -- plain data ⇄ records -----------------------------------------------------------------------


def _target(version: ModelVersion, *, follows: str | None = None) -> dict[str, Any]:
    """What the routing keeps of a version: its id, ref and input signature; for a champion
    that follows an alias, the alias and the version it named when last followed ("seen")."""
    target: dict[str, Any] = {
        "version_id": version.id,
        "ref": version.ref,
        "signature": {
            "inputs": [{"name": c.name, "dtype": c.dtype} for c in version.signature.inputs],
            "output": version.signature.output,
        },
    }
    if follows is not None:
        target["follows"] = {"model": version.model, "alias": follows, "seen": version.id}
    return target


def _others(config: Config) -> list[dict[str, Any]]:
    found = [*config["challengers"], *config["shadows"]]
    canary = config.get("canary")
    if canary is not None and canary["state"] == "running":
        found.append(canary)
    if config.get("pinned"):
        found.append(config["pinned"])
    return found


def _drop_version(config: Config, version_id: str, *, reason: str | None) -> None:
    config["challengers"] = [c for c in config["challengers"] if c["version_id"] != version_id]
    config["shadows"] = [c for c in config["shadows"] if c["version_id"] != version_id]
    canary = config.get("canary")
    if reason and canary and canary["state"] == "running" and canary["version_id"] == version_id:
        canary["state"], canary["reason"] = "promoted", reason


def to_record(row: EndpointRow) -> Endpoint:
    c = row.config
    canary = c.get("canary")
    pinned = c.get("pinned")
    follows = c["champion"].get("follows")
    return Endpoint(
        name=row.name,
        champion_id=c["champion"]["version_id"],
        champion_ref=c["champion"]["ref"],
        challengers=[
            Challenger(version_id=x["version_id"], ref=x["ref"], weight=x["weight"])
            for x in c.get("challengers", [])
        ],
        shadows=[
            ShadowTarget(version_id=x["version_id"], ref=x["ref"]) for x in c.get("shadows", [])
        ],
        canary=Canary.model_validate({k: v for k, v in canary.items() if k != "signature"})
        if canary
        else None,
        flags=dict(c.get("flags") or {}),
        pinned=ShadowTarget(version_id=pinned["version_id"], ref=pinned["ref"]) if pinned else None,
        champion_follows=f"{follows['model']}@{follows['alias']}" if follows else None,
        loop_paused=c.get("loop_paused"),
        revision=row.revision,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def unknown_endpoint(s: Session, name: str) -> NotFound:
    """NotFound for endpoint `name`, naming the known ones and how to make one."""
    names = list(s.scalars(select(EndpointRow.name).order_by(EndpointRow.name).limit(20)))
    known = f"known endpoints: {', '.join(names)}" if names else "there are no endpoints yet"
    return NotFound(
        f"endpoint {name!r} does not exist ({known}). "
        "`shipyard endpoints create NAME --model MODEL@N` makes one."
    )


def _moved_on(name: str, current: int, expected: int) -> Conflict:
    return Conflict(
        f"endpoint {name!r} is at revision {current}, not {expected}: it was changed since "
        f"revision {expected} was read. Read it again, check the change still makes sense, and "
        f"send it with revision {current}.",
        details={"endpoint": name, "revision": current, "expected_revision": expected},
    )


def _exists(name: str) -> Conflict:
    return Conflict(
        f"endpoint {name!r} already exists; change its champion with `shipyard endpoints "
        f"champion {name} MODEL@N`, or choose another name."
    )
