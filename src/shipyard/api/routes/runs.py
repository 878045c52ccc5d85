"""/api/v1/runs: search with the filter language of `train.runs`, a run, a metric (viewer);
create a run, log to it in batches, end it (scientist).

A log call is one transaction (`train.tracking.log_batch`), committed before the answer, and
beats the run's heartbeat; it is not an audit event (the run's start and end are, under the
token's id), so a run logging every second does not flood the audit log.

Pages are offsets into the search's order (sorted, ties by id), held in the signed cursor, so
the client cannot tell them from the keyset cursors of the other lists and a later change to
keyset paging does not change the API.
"""

from __future__ import annotations

from shipyard.api.access import READ, SCIENCE
from shipyard.api.cursor import scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.common import ListQuery
from shipyard.api.schemas.runs import (
    BatchLogged,
    LogBatch,
    MetricPage,
    MetricPointView,
    RunCreate,
    RunDetail,
    RunEnd,
    RunPage,
    RunQuery,
    RunView,
    metric_float,
)
from shipyard.core.records import RunStatus
from shipyard.train import create_run, end_run, get_run, metric_history, search_runs
from shipyard.train.tracking import log_batch


def search(call: Call) -> RunPage:
    q: RunQuery = call.query
    scope = scope_of(
        "runs",
        experiment=q.experiment,
        filter=q.filter,
        order_by=q.order_by,
        parent_id=q.parent_id,
        trials=q.trials,
    )
    offset = int(call.position(scope) or 0)
    found = search_runs(
        call.ws,
        experiment=q.experiment,
        filter=q.filter,
        order_by=q.order_by,
        parent_id=q.parent_id,
        top_level=not q.trials and q.parent_id is None,
        limit=q.limit + 1,
        offset=offset,
    )
    more = len(found) > q.limit
    return RunPage(
        items=[RunView.of(r) for r in found[: q.limit]],
        next_cursor=call.next_cursor(scope, offset + q.limit if more else None),
    )


def show(call: Call) -> RunDetail:
    run = get_run(call.ws, call.path["run_id"])
    children = search_runs(call.ws, parent_id=run.id, limit=None, order_by="started_at")
    return RunDetail(run=RunView.of(run), children=[c.id for c in children])


def history(call: Call) -> MetricPage:
    q: ListQuery = call.query
    run_id, key = call.path["run_id"], call.path["key"]
    scope = scope_of("metric", run=run_id, key=key)
    get_run(call.ws, run_id)  # NotFound naming the run, not an empty history
    offset = int(call.position(scope) or 0)
    points = metric_history(call.ws, run_id, key)
    chosen = points[offset : offset + q.limit]
    more = len(points) > offset + q.limit
    return MetricPage(
        run_id=run_id,
        key=key,
        items=[MetricPointView.of(p) for p in chosen],
        next_cursor=call.next_cursor(scope, offset + q.limit if more else None),
    )


def create(call: Call) -> RunView:
    body: RunCreate = call.body
    if body.parent_id is not None:
        get_run(call.ws, body.parent_id)  # NotFound naming it, not a dangling child
    run_id = create_run(
        call.ws,
        experiment=body.experiment,
        name=body.name,
        parent_id=body.parent_id,
        seed=body.seed,
        params=body.params,
        tags=body.tags,
        capture_env=False,  # the server's git commit and packages are not the caller's
        heartbeat=body.heartbeat,
    )
    return RunView.of(get_run(call.ws, run_id))


def log(call: Call) -> BatchLogged:
    body: LogBatch = call.body
    run_id = call.path["run_id"]
    written = log_batch(
        call.ws,
        run_id,
        [(m.key, metric_float(m.value), m.step, m.timestamp) for m in body.metrics],
        body.params,
        body.tags,
    )
    return BatchLogged(run_id=run_id, metrics=written, params=len(body.params), tags=len(body.tags))


def end(call: Call) -> RunView:
    body: RunEnd = call.body
    run_id = call.path["run_id"]
    end_run(call.ws, run_id, RunStatus(body.status), body.note, if_open=True)
    return RunView.of(get_run(call.ws, run_id))


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/runs", search, READ,
        "Search runs (newest first unless `order_by`); trials only with `trials` or `parent_id`.",
        result=RunPage, query=RunQuery, tag="runs",
    ),
    Operation(
        "GET", f"{PREFIX}/runs/{{run_id}}", show, READ,
        "A run's params, latest metrics, tags, artifacts and environment.",
        result=RunDetail, errors=(404,), tag="runs",
    ),
    Operation(
        "GET", f"{PREFIX}/runs/{{run_id}}/metrics/{{key}}", history, READ,
        "Every logged value of one metric of a run, by step.",
        result=MetricPage, query=ListQuery, errors=(404,), tag="runs",
    ),
    Operation(
        "POST", f"{PREFIX}/runs", create, SCIENCE,
        "Start a run (status running); log to it, then end it.",
        result=RunView, body=RunCreate, status=201, errors=(404,), tag="runs",
    ),
    Operation(
        "POST", f"{PREFIX}/runs/{{run_id}}/log", log, SCIENCE,
        "Log metrics, params and tags in one transaction (all or nothing), committed before the "
        'answer; beats the heartbeat. Metric values: numbers, or "NaN", "Infinity", "-Infinity".',
        result=BatchLogged, body=LogBatch, errors=(404, 409), tag="runs",
    ),
    Operation(
        "POST", f"{PREFIX}/runs/{{run_id}}/end", end, SCIENCE,
        "End a running run: finished, failed, killed or interrupted (409 if it already ended).",
        result=RunView, body=RunEnd, errors=(404, 409), tag="runs",
    ),
]  # fmt: skip
