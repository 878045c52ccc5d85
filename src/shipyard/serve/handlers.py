"""The /v1 routes (predict, feedback, endpoints), health, readiness and metrics.

Every prediction, /v1 or /v2, goes through `answer()`: route the request (sticky by the
`X-Shipyard-Key` header when given), validate its rows against the answering version's
signature, wait for the micro-batcher, and `respond()` with the bookkeeping (log, canary,
shadows) scheduled after the response is sent.

Per-row explanations (`serve.explain`) are computed only when asked for, after the prediction,
on the model's own thread and never merged with other requests' batches:

    POST /v1/endpoints/{name}/predict?explain=true      a model that cannot be explained: 501
    the endpoint's flag explain=on                      such a model answers without them,
                                                        "explanations_unavailable" saying why
    ?explain=false                                      none, whatever the flag says

The answer then has, per row, the largest SHAP values on the request's columns, what they add
up to and where they start from:

    "explanations": [[{"feature": "score", "value": 512.0, "contribution": 0.91}, ...], ...],
    "base_value": -1.23, "explained_output": "log-odds of class 'yes' (LightGBM TreeSHAP, ...)"
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from shipyard.core.errors import Invalid, NotFound, NotSupported, Unavailable
from shipyard.core.records import Endpoint, Signature
from shipyard.serve.endpoints import get_endpoint, list_endpoints
from shipyard.serve.explain import Explainer, Explanations
from shipyard.serve.fastpath import Output
from shipyard.serve.headers import header
from shipyard.serve.inputs import Batch, decode, to_columns
from shipyard.serve.limits import read_body
from shipyard.serve.models import ServedModel
from shipyard.serve.predlog import record_feedback
from shipyard.serve.responses import AnswerResponse, dumps, json_response, without_paths
from shipyard.serve.router import Choice
from shipyard.serve.runtime import MakeBatch, Route, Runtime

KEY_HEADER = b"x-shipyard-key"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
Explain = Literal["no", "wanted", "required"]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.scope["app"].runtime  # serve.lane.ServingApp
    return rt


def find_route(rt: Runtime, name: str) -> Route:
    """The live route of endpoint `name`. NotFound names no other endpoint (a predictor token
    must not learn them: GET /v1/endpoints, a viewer's route, lists them); Unavailable says
    why an endpoint is not ready, without the server's paths."""
    route = rt.routes.get(name)
    if route is not None:
        return route
    problem = rt.problems.get(name)
    if problem is not None:
        raise Unavailable(
            f"endpoint {name!r} is not ready: {without_paths(problem.why, rt.settings)} The "
            "server retries; "
            "fix the route (`shipyard endpoints`) if this persists."
        )
    raise _not_served(name)


def _not_served(name: str) -> NotFound:
    return NotFound(
        f"endpoint {name!r} is not served here; check the name (`shipyard endpoints ls` lists "
        "them), or create it with `shipyard endpoints create` and this server picks it up "
        "within a second."
    )


def flags_for_inputs(route: Route) -> tuple[bool, bool]:
    """(strict_ranges, allow_extra) of a route: out-of-range values are served and counted
    unless `strict_ranges=on`; unknown columns are refused unless `extra_columns=ignore`."""
    flags = route.endpoint.flags
    return flags.get("strict_ranges") == "on", flags.get("extra_columns") == "ignore"


class _RequestIds:
    """Request ids: 24 hex digits, the first 8 the second they were made (Unix time), the
    other 16 random (64 bits from the OS, drawn 256 ids at a time: one `os.urandom` call per
    request was a visible share of the event loop's time). The ids stay unguessable, so a
    client cannot send feedback for requests it never saw, and they sort by time, so the
    prediction log's index on them grows at one end instead of touching a random page per row
    (measured under load on a log of 2.3M rows: 13% less CPU per request, 5-18% more
    requests/s)."""

    __slots__ = ("_ids", "_prefix", "_second")

    def __init__(self) -> None:
        self._ids: Iterator[str] = iter(())
        self._second = -1
        self._prefix = ""
        os.register_at_fork(after_in_child=self.forget)  # a child must not reuse the parent's

    def __call__(self) -> str:
        suffix = next(self._ids, None)
        if suffix is None:
            text = secrets.token_hex(8 * 256)
            self._ids = iter([text[i : i + 16] for i in range(0, len(text), 16)])
            suffix = next(self._ids)
        second = int(time.time())
        if second != self._second:
            self._second, self._prefix = second, f"{second:08x}"
        return self._prefix + suffix

    def forget(self) -> None:
        self._ids = iter(())


new_request_id = _RequestIds()
"""A new request id: `new_request_id()`."""


# -- the prediction path shared by /v1 and /v2 --------------------------------------------------


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Answer:
    request_id: str
    choice: Choice
    served: ServedModel
    batch: Batch
    output: Output
    started: float
    explanations: Explanations | None = None
    unexplained: str | None = None  # why explanations that were wanted are missing


async def answer(
    request: Request,
    route: Route,
    make_batch: MakeBatch,
    started: float,
    *,
    explain: Explain = "no",
) -> Answer:
    """Route, validate and predict one request; errors propagate to the error handler.

    `explain`: "required" fails a model that cannot explain its predictions with NotSupported
    (501) before predicting; "wanted" answers without explanations and says why.
    """
    rt = runtime(request)
    request_id = new_request_id()
    choice = route.router.choose(header(request, KEY_HEADER), request_id=request_id)
    request.state.model = choice.primary_ref
    rt.in_flight += 1
    explanations, unexplained = None, None
    try:
        served = route.primary(choice)
        served.batcher.expect()  # a batch being gathered may wait for this one
        try:
            explainer, unexplained = _explainer(served, explain)
            batch = make_batch(served.signature)
        finally:
            served.batcher.arrived()  # queued below without yielding, or failed
        alone = rt.in_flight == 1 and served.batcher.may_inline(batch)
        if alone:
            # Requests that arrived with this one exist as tasks that have not run yet: yield
            # once so they reach the batcher too. Only if none did is this request alone.
            await asyncio.sleep(0)
            alone = rt.in_flight == 1
        output = await served.batcher.predict(batch, alone=alone)
        if explainer is not None:
            try:
                explanations = await served.batcher.call(explainer, batch)
            except NotSupported as exc:  # found out on first use (shap refused the model)
                if explain == "required":
                    raise
                unexplained = exc.message
    except NotSupported:
        raise  # a feature this version lacks, not a failure to count against it
    except Exception as exc:
        rt.failed(route, choice, exc, request_id=request_id, started=started)
        raise
    finally:
        rt.in_flight -= 1
    return Answer(request_id, choice, served, batch, output, started, explanations, unexplained)


def _explainer(served: ServedModel, explain: Explain) -> tuple[Explainer | None, str | None]:
    """The version's explainer if explanations are asked for, or why there is none."""
    if explain == "no":
        return None, None
    try:
        return served.explainer, None
    except NotSupported as exc:
        if explain == "required":
            raise
        return None, exc.message


def _explain_param(request: Request, route: Route) -> Explain:
    value = request.query_params.get("explain") if request.scope["query_string"] else None
    if value is None:
        return "wanted" if route.flag_on("explain", False) else "no"
    if value.lower() in _TRUE:
        return "required"
    if value.lower() in _FALSE:
        return "no"
    raise Invalid(
        f"explain={value!r} is not understood; send ?explain=true for per-row explanations "
        "or ?explain=false for none (true/false, 1/0, yes/no, on/off)."
    )


def respond(
    request: Request, route: Route, result: Answer, body: bytes, make_batch: MakeBatch
) -> Response:
    """The 200 response; metrics now, logging and shadows once it is sent."""
    rt = runtime(request)
    ref = result.served.ref
    seconds = time.perf_counter() - result.started
    series = rt.metrics.answered(route.name, ref)
    series.requests.inc()
    series.latency.observe(seconds)
    batch = result.batch
    series.rows.inc(batch.n)
    if batch.warnings:
        rt.metrics.unseen(route.name, ref, batch.warnings)
    after = partial(
        rt.after,
        route,
        result.choice,
        result.served,
        result.request_id,
        batch if batch.carried is None else batch.logged(),  # the id logged with the answer
        result.output,
        seconds * 1000.0,
        make_batch,
    )
    return AnswerResponse(body, result.request_id, after)


# -- /v1 ----------------------------------------------------------------------------------------


async def predict(request: Request) -> Response:
    """POST /v1/endpoints/{name}/predict: {"rows": [...]} or {"columns": {...}}."""
    started = time.perf_counter()
    rt = runtime(request)
    route = find_route(rt, request.path_params["name"])
    explain = _explain_param(request, route)
    payload = decode(await read_body(request, rt.options.max_body))
    strict, extra = flags_for_inputs(route)
    max_rows = rt.options.max_rows

    def make_batch(signature: Signature) -> Batch:
        return to_columns(
            signature, payload, max_rows=max_rows, strict_ranges=strict, allow_extra=extra
        )

    result = await answer(request, route, make_batch, started, explain=explain)
    out = result.output
    data: dict[str, Any] = {
        "request_id": result.request_id,
        "endpoint": route.name,
        "model": result.served.ref,
        "predictions": out.labels,
    }
    if out.probabilities is not None:
        data["probabilities"] = out.probabilities
        data["classes"] = out.classes
    batch = result.batch
    if batch.warnings:
        data["warnings"] = batch.warnings
    if batch.carried is not None:
        id_column = result.served.signature.id_column
        if id_column in batch.carried:
            data["ids"] = batch.carried[id_column]
    if result.explanations is not None:
        data["explanations"] = result.explanations.rows
        data["base_value"] = result.explanations.base_value
        data["explained_output"] = result.explanations.output
    elif result.unexplained is not None:
        data["explanations"] = None
        data["explanations_unavailable"] = result.unexplained
    return respond(request, route, result, dumps(data), make_batch)


async def feedback(request: Request) -> Response:
    """POST /v1/endpoints/{name}/feedback: ground-truth labels for earlier predictions, by
    request id (and row), or by the value of the data set's id column the rows carried.

    {"items": [{"request_id": "…", "label": "yes", "row": 0}, {"id": "L-1001", "label": "no"}]}
    {"request_ids": ["…", …], "labels": ["yes", …]}   or   {"ids": [1001, …], "labels": [...]}
    → {"matched": n, "unknown": m, "unknown_ids": [...]}
    """
    rt = runtime(request)
    name = request.path_params["name"]
    if name not in rt.routes and name not in rt.problems:
        raise _not_served(name)
    items = _feedback_items(decode(await read_body(request, rt.options.max_body)))
    log = rt.prediction_log
    ws = rt.ws

    def record() -> Any:
        log.flush()  # predictions answered a moment ago must be found
        try:
            return record_feedback(ws, name, items)
        except NotFound:  # deleted meanwhile: its message would name the other endpoints
            raise _not_served(name) from None

    result = await anyio.to_thread.run_sync(record)
    return json_response(result.model_dump(mode="json"))


def _feedback_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    if "items" in payload:
        items = payload["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Invalid(
                "'items' must be a list of objects such as "
                '{"request_id": "…", "label": "yes"} (optionally with "row") or '
                '{"id": "L-1001", "label": "yes"} (the value of the data set\'s id column).'
            )
        return items
    key = "ids" if "ids" in payload and "request_ids" not in payload else "request_ids"
    ids, labels = payload.get(key), payload.get("labels")
    if not isinstance(ids, list) or not isinstance(labels, list):
        keys = ", ".join(map(repr, list(payload)[:5])) or "no keys"
        raise Invalid(
            'send {"items": [{"request_id": "…", "label": …}]}, {"request_ids": [...], '
            f'"labels": [...]}} or {{"ids": [...], "labels": [...]}}; the body has {keys}.'
        )
    if len(ids) != len(labels):
        what = key.replace("_", " ")
        raise Invalid(
            f"{len(ids)} {what} but {len(labels)} labels; send one label per {what[:-1]}."
        )
    field = key[:-1]  # request_id or id
    return [{field: r, "label": label} for r, label in zip(ids, labels, strict=True)]


async def list_all(request: Request) -> Response:
    """GET /v1/endpoints: every endpoint's routing and what this server serves of it."""
    rt = runtime(request)
    endpoints = await anyio.to_thread.run_sync(list_endpoints, rt.ws)
    return json_response({"endpoints": [_view(rt, e) for e in endpoints]})


async def show(request: Request) -> Response:
    """GET /v1/endpoints/{name}."""
    rt = runtime(request)
    name = request.path_params["name"]
    endpoint = await anyio.to_thread.run_sync(get_endpoint, rt.ws, name)
    return json_response(_view(rt, endpoint))


def _view(rt: Runtime, endpoint: Endpoint) -> dict[str, Any]:
    data = endpoint.model_dump(mode="json")
    route = rt.routes.get(endpoint.name)
    problem = rt.problems.get(endpoint.name)
    serving: dict[str, Any] = {"ready": route is not None}
    if route is not None:
        serving.update(
            revision=route.revision,
            models={m.version_id: m.ref for m in route.models.values()},
            shares=route.router.shares(),
        )
    if problem is not None:
        why = without_paths(problem.why, rt.settings)
        serving["problem"] = f"revision {problem.revision} is not served: {why}"
    data["serving"] = serving
    return data


# -- health, readiness, metrics -----------------------------------------------------------------


async def health(request: Request) -> Response:
    """GET /health: the process is up (open: for load balancers and liveness probes)."""
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    """GET /ready: 200 when every endpoint has loaded models, else 503 saying which has not.

    An endpoint whose newest revision failed to load keeps serving the previous one: it counts
    as ready, with the problem shown, so replicas are not all pulled out of rotation at once.
    """
    rt = runtime(request)
    endpoints: dict[str, dict[str, Any]] = {
        name: {"ready": True, "revision": r.revision} for name, r in rt.routes.items()
    }
    for name, problem in rt.problems.items():
        state = endpoints.setdefault(name, {"ready": False})
        state["problem"] = f"revision {problem.revision} is not served: " + without_paths(
            problem.why, rt.settings
        )
    return json_response({"ready": rt.ready, "endpoints": endpoints}, 200 if rt.ready else 503)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format."""
    body, content_type = runtime(request).metrics.render()
    return Response(body, 200, media_type=content_type)
