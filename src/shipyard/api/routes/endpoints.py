"""/api/v1/endpoints: routing of every endpoint (viewer); changes to it (deployer).

Every change names the revision it is based on; `serve.endpoints` checks it under the row lock
and answers 409 with the current revision when another change came first.
"""

from __future__ import annotations

from typing import Any

from shipyard.api.access import DEPLOY, READ
from shipyard.api.cursor import page_after, scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.endpoints import (
    CanaryAction,
    ChampionChange,
    EndpointCreate,
    EndpointPage,
    EndpointQuery,
    EndpointState,
    FlagsChange,
    RouteChange,
)
from shipyard.serve.endpoints import (
    DEFAULT_STEPS,
    create_endpoint,
    get_endpoint,
    list_endpoints,
    promote_canary,
    rollback_canary,
    set_champion,
    set_flags,
    set_route,
    stop_canary,
)


def list_(call: Call) -> EndpointPage:
    q: EndpointQuery = call.query
    scope = scope_of("endpoints")
    found = list_endpoints(call.ws)
    chosen, last = page_after(found, lambda e: [e.name], call.position(scope), q.limit)
    return EndpointPage(
        items=[EndpointState.of(e) for e in chosen], next_cursor=call.next_cursor(scope, last)
    )


def show(call: Call) -> EndpointState:
    return EndpointState.of(get_endpoint(call.ws, call.path["name"]))


def create(call: Call) -> EndpointState:
    body: EndpointCreate = call.body
    return EndpointState.of(create_endpoint(call.ws, body.name, body.model))


def route(call: Call) -> EndpointState:
    body: RouteChange = call.body
    canary = body.canary
    changed = set_route(
        call.ws,
        call.path["name"],
        challengers=[(c.model, c.weight) for c in body.challengers],
        shadows=body.shadows,
        canary=canary.model if canary else None,
        steps=canary.steps if canary else DEFAULT_STEPS,
        guard=canary.guard if canary else None,
        expect_revision=body.revision,
    )
    return EndpointState.of(changed)


def champion(call: Call) -> EndpointState:
    body: ChampionChange = call.body
    return EndpointState.of(
        set_champion(call.ws, call.path["name"], body.model, expect_revision=body.revision)
    )


def flags(call: Call) -> EndpointState:
    body: FlagsChange = call.body
    return EndpointState.of(
        set_flags(call.ws, call.path["name"], body.flags, expect_revision=body.revision)
    )


def canary(call: Call) -> EndpointState:
    body: CanaryAction = call.body
    name, revision = call.path["name"], body.revision
    if body.action == "promote":
        changed = promote_canary(call.ws, name, expect_revision=revision)
    elif body.action == "rollback":
        changed = rollback_canary(call.ws, name, body.reason or "", expect_revision=revision)
    else:
        changed = stop_canary(call.ws, name, body.reason, expect_revision=revision)
    return EndpointState.of(changed)


_CHANGE: dict[str, Any] = {"errors": (404, 409), "tag": "endpoints"}
OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/endpoints", list_, READ, "Every endpoint's stored routing, by name.",
        result=EndpointPage, query=EndpointQuery, tag="endpoints",
    ),
    Operation(
        "POST", f"{PREFIX}/endpoints", create, DEPLOY,
        "Create an endpoint whose champion is the version `model` names now.",
        result=EndpointState, body=EndpointCreate, status=201, **_CHANGE,
    ),
    Operation(
        "GET", f"{PREFIX}/endpoints/{{name}}", show, READ, "One endpoint's routing and revision.",
        result=EndpointState, errors=(404,), tag="endpoints",
    ),
    Operation(
        "PUT", f"{PREFIX}/endpoints/{{name}}/route", route, DEPLOY,
        "Set challengers (A/B weights), shadows and the canary: the route becomes exactly this.",
        result=EndpointState, body=RouteChange, **_CHANGE,
    ),
    Operation(
        "PUT", f"{PREFIX}/endpoints/{{name}}/champion", champion, DEPLOY,
        "Make a version the champion (it leaves the other roles).",
        result=EndpointState, body=ChampionChange, **_CHANGE,
    ),
    Operation(
        "PATCH", f"{PREFIX}/endpoints/{{name}}/flags", flags, DEPLOY,
        "Set or remove flags (explain, log_inputs, strict_ranges, pin).",
        result=EndpointState, body=FlagsChange, **_CHANGE,
    ),
    Operation(
        "POST", f"{PREFIX}/endpoints/{{name}}/canary", canary, DEPLOY,
        "Promote, roll back (with a reason) or stop the running canary.",
        result=EndpointState, body=CanaryAction, **_CHANGE,
    ),
]  # fmt: skip
