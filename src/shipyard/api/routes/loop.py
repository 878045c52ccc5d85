"""/api/v1/loop: an endpoint's rollouts (viewer); one turn of the loop now, stop, pause and
resume per endpoint (deployer).

The loop judges with the server's project spec (`shipyard serve --spec`); a server started
without one answers run-once with 501. A run-once answers when the turn is done, a retrain
included (as `shipyard loop run-once` does).
"""

from __future__ import annotations

from shipyard.api.access import DEPLOY, READ
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.loop import (
    LoopQuery,
    LoopReason,
    LoopState,
    RolloutView,
    RunOnce,
    TurnsView,
    TurnView,
)
from shipyard.core.errors import NotSupported
from shipyard.loop.rollouts import list_rollouts
from shipyard.serve.endpoints import get_endpoint, pause_loop, resume_loop

_SHOWN = 10  # rollouts in the state a change answers with


def _state(call: Call, name: str, limit: int = _SHOWN) -> LoopState:
    return LoopState.of(get_endpoint(call.ws, name), list_rollouts(call.ws, name, limit=limit))


def run_once(call: Call) -> TurnsView:
    from shipyard.loop.runner import run_once as turn  # retraining: the model libraries

    body: RunOnce = call.body
    if call.spec is None:
        raise NotSupported(
            "this server has no project spec, and the loop judges and retrains by one; start "
            "it with one (`shipyard serve --spec shipyard.yaml`).",
            details={"spec": None},
        )
    if body.endpoint is not None:
        get_endpoint(call.ws, body.endpoint)  # NotFound naming the known endpoints
    endpoints = [body.endpoint] if body.endpoint is not None else None
    turns = turn(call.ws, call.spec, endpoints=endpoints, trials=body.trials)
    return TurnsView(
        turns=[
            TurnView(
                endpoint=t.endpoint,
                action=t.action,
                reason=t.reason,
                rollout=RolloutView.of(t.rollout) if t.rollout is not None else None,
                report=t.report,
            )
            for t in turns
        ]
    )


def status(call: Call) -> LoopState:
    q: LoopQuery = call.query
    return _state(call, call.path["endpoint"], q.limit)


def stop(call: Call) -> LoopState:
    from shipyard.loop.rollout import stop as stop_rollout  # NumPy and the registry

    body: LoopReason = call.body
    name = call.path["endpoint"]
    stop_rollout(call.ws, name, body.reason)
    return _state(call, name)


def pause(call: Call) -> LoopState:
    body: LoopReason = call.body
    name = call.path["endpoint"]
    pause_loop(call.ws, name, body.reason)
    return _state(call, name)


def resume(call: Call) -> LoopState:
    name = call.path["endpoint"]
    resume_loop(call.ws, name)
    return _state(call, name)


OPERATIONS = [
    Operation(
        "POST", f"{PREFIX}/loop/run-once", run_once, DEPLOY,
        "One turn of the loop now: watch, retrain when a policy holds, advance rollouts; "
        "answers what each endpoint's turn did.",
        result=TurnsView, body=RunOnce, errors=(404, 409, 501), tag="loop",
    ),
    Operation(
        "GET", f"{PREFIX}/loop/{{endpoint}}", status, READ,
        "Whether the loop may act on the endpoint, and its rollouts with their timelines.",
        result=LoopState, query=LoopQuery, errors=(404,), tag="loop",
    ),
    Operation(
        "POST", f"{PREFIX}/loop/{{endpoint}}/stop", stop, DEPLOY,
        "Halt the endpoint's rollout (the champion keeps serving); with none, pause the loop.",
        result=LoopState, body=LoopReason, errors=(404, 409), tag="loop",
    ),
    Operation(
        "POST", f"{PREFIX}/loop/{{endpoint}}/pause", pause, DEPLOY,
        "Switch the loop off for the endpoint: still watched, not retrained; rollouts wait.",
        result=LoopState, body=LoopReason, errors=(404,), tag="loop",
    ),
    Operation(
        "POST", f"{PREFIX}/loop/{{endpoint}}/resume", resume, DEPLOY,
        "Switch the loop back on for the endpoint.",
        result=LoopState, errors=(404,), tag="loop",
    ),
]  # fmt: skip
