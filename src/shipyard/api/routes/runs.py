"""/api/v1/runs (viewer): search with the filter language of `train.runs`, a run, a metric.

Pages are offsets into the search's order (sorted, ties by id), held in the signed cursor, so
the client cannot tell them from the keyset cursors of the other lists and a later change to
keyset paging does not change the API.
"""

from __future__ import annotations

from shipyard.api.access import READ
from shipyard.api.cursor import scope_of
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.common import ListQuery
from shipyard.api.schemas.runs import (
    MetricPage,
    MetricPointView,
    RunDetail,
    RunPage,
    RunQuery,
    RunView,
)
from shipyard.train import get_run, metric_history, search_runs


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
]  # fmt: skip
