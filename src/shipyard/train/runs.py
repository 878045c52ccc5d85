"""Reading runs back: get, search with a filter, metric history, side-by-side comparison.

A `running` run whose heartbeat stopped is read as `killed` (see `tracking`), here and in
filters on `status`, before any writer has recorded it so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import MetricPoint, Run, RunArtifact, RunStatus
from shipyard.store.tables import LatestMetricRow, MetricRow, RunArtifactRow, RunRow
from shipyard.store.workspace import Workspace
from shipyard.train.tracking import killed_cutoff, killed_note

# Far above any filter a person writes, and still fast: 2,000 clauses used to fail after
# seconds (SQLite: expression tree too deep) or minutes of planning (PostgreSQL).
MAX_CLAUSES = 100
_CLAUSE = re.compile(
    r"^\s*(?:(?P<kind>metrics|params|tags)\.(?P<key>[\w.\-/]+)|(?P<field>status|experiment|name))"
    r"\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>'[^']*'|\"[^\"]*\"|[-+\w.]+)\s*$"
)
_OPS = {
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
}


def _record(
    row: Any, metrics: dict[str, float], artifacts: list[RunArtifact], cutoff: datetime
) -> Run:
    status, ended_at, note = row.status, row.ended_at, row.note
    heartbeat = row.heartbeat_at
    if status == RunStatus.running and heartbeat is not None and heartbeat < cutoff:
        status, ended_at, note = RunStatus.killed, heartbeat, killed_note(heartbeat)
    # Rows come from our own table, already typed: skip validation (it dominated searches).
    return Run.model_construct(
        id=row.id,
        experiment=row.experiment,
        name=row.name,
        status=RunStatus(status),
        parent_id=row.parent_id,
        dataset_version_id=row.dataset_version_id,
        seed=row.seed,
        git_commit=row.git_commit,
        packages=row.packages,
        params=row.params,
        tags=row.tags,
        metrics=metrics,
        artifacts=artifacts,
        started_at=row.started_at,
        ended_at=ended_at,
        created_by=row.created_by,
        note=note,
    )


def get_run(ws: Workspace, run_id: str) -> Run:
    with ws.db.read() as s:
        row = s.execute(select(RunRow.__table__).where(RunRow.id == run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist; `shipyard runs ls` lists runs.")
        return _load(s, [row])[0]


def _load(s: Session, rows: Sequence[Any]) -> list[Run]:
    ids = [r.id for r in rows]
    metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
    artifacts: dict[str, list[RunArtifact]] = {i: [] for i in ids}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        latest = select(LatestMetricRow.run_id, LatestMetricRow.key, LatestMetricRow.value)
        for run_id, key, value in s.execute(latest.where(LatestMetricRow.run_id.in_(chunk))):
            metrics[run_id][key] = value
        for a in s.scalars(select(RunArtifactRow).where(RunArtifactRow.run_id.in_(chunk))):
            artifacts[a.run_id].append(RunArtifact(name=a.name, digest=a.digest, size=a.size))
    cutoff = killed_cutoff()
    return [_record(r, metrics[r.id], artifacts[r.id], cutoff) for r in rows]


def search_runs(
    ws: Workspace,
    *,
    experiment: str | None = None,
    filter: str | None = None,
    order_by: str | None = None,
    parent_id: str | None = None,
    top_level: bool = False,
    limit: int | None = 100,
    offset: int = 0,
) -> list[Run]:
    """Runs matching `filter`: clauses joined by `and`, e.g.
    "metrics.auc > 0.8 and params.model = 'lgbm' and status = 'finished'".
    `order_by`: "metrics.auc desc", "started_at" (default newest first); ties in order of id,
    so `offset` pages through a stable order."""
    clauses = _split(filter)
    if len(clauses) > MAX_CLAUSES:
        raise Invalid(
            f"run filter has {len(clauses)} clauses; at most {MAX_CLAUSES} are allowed. Narrow "
            "it (e.g. one range per metric), or filter the listed runs in your own code."
        )
    query = select(RunRow.__table__)
    conditions: list[ColumnElement[bool]] = []
    if experiment:
        conditions.append(RunRow.experiment == experiment)
    if parent_id:
        conditions.append(RunRow.parent_id == parent_id)
    if top_level:
        conditions.append(RunRow.parent_id.is_(None))
    cutoff = killed_cutoff()
    tests: list[_MetricTest] = []
    for text in clauses:
        parsed = _condition(text, cutoff)
        if isinstance(parsed, tuple):
            tests.append(parsed)
        else:
            conditions.append(parsed)
    if tests:
        conditions.append(_metrics_condition(tests))
    if conditions:
        query = query.where(and_(*conditions))
    query = _order(query, order_by, cutoff).order_by(RunRow.id)
    if limit:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with ws.db.read() as s:
        return _load(s, list(s.execute(query)))


def _split(text: str | None) -> list[str]:
    if not text or not text.strip():
        return []
    return [p for p in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if p]


def _status(cutoff: datetime) -> ColumnElement[str]:
    """The status as read: `running` without a recent heartbeat is `killed`."""
    stale = and_(RunRow.status == RunStatus.running.value, RunRow.heartbeat_at < cutoff)
    return case((stale, RunStatus.killed.value), else_=RunRow.status)


# A metric clause: its key, and the test of a value expression.
_MetricTest = tuple[str, Callable[[Any], ColumnElement[bool]]]


def _metrics_condition(tests: list[_MetricTest]) -> ColumnElement[bool]:
    """All metric clauses as one subquery of the latest values."""
    latest = LatestMetricRow
    keys = sorted({key for key, _ in tests})
    if len(keys) == 1:  # the usual filter: the (key, value) index finds the runs
        where = [test(latest.value) for _, test in tests]
        return RunRow.id.in_(select(latest.run_id).where(latest.key == keys[0], *where))
    # Several metrics: one pass over their values, one column per metric. (A subquery per
    # clause made PostgreSQL's planning time grow much faster than the clause count.)
    column = {k: func.max(case((latest.key == k, latest.value))) for k in keys}
    having = [test(column[key]) for key, test in tests]
    pivot = select(latest.run_id).where(latest.key.in_(keys)).group_by(latest.run_id)
    return RunRow.id.in_(pivot.having(and_(*having)))


def _condition(text: str, cutoff: datetime) -> ColumnElement[bool] | _MetricTest:
    match = _CLAUSE.match(text)
    if not match:
        raise Invalid(
            f'run filter clause {text!r} does not parse; write e.g. "metrics.auc > 0.8", '
            "\"params.model = 'lgbm'\", \"tags.team = 'risk'\" or \"status = 'finished'\", "
            "joined by 'and'."
        )
    op = _OPS[match["op"]]
    raw = match["value"]
    quoted = raw[:1] in "'\""
    value = raw[1:-1] if quoted else raw
    if match["kind"] == "metrics":
        try:
            number = float(value)
        except ValueError:
            raise Invalid(
                f"run filter {text!r}: a metric compares with a number, not {raw}."
            ) from None
        if math.isnan(number) and match["op"] not in ("=", "!="):
            raise Invalid(
                f"run filter {text!r}: nan compares only with = or !=, e.g. "
                f'"metrics.{match["key"]} = nan" (the runs whose latest value is NaN).'
            )
        if match["op"] in (">", ">=") and not math.isnan(number):
            # Both backends sort NaN above every number; like IEEE comparisons, we don't.
            # (NaN equals only NaN as stored on both, so "= nan" finds diverged runs.)
            return match["key"], lambda v: and_(op(v, number), v != math.nan)
        return match["key"], lambda v: op(v, number)
    if match["kind"] in ("params", "tags"):
        column = RunRow.params if match["kind"] == "params" else RunRow.tags
        return op(column[match["key"]].as_string(), value)
    if match["field"] == "status":
        return op(_status(cutoff), value)
    return op(getattr(RunRow, match["field"]), value)


def _order(query: Any, order_by: str | None, cutoff: datetime) -> Any:
    if not order_by:
        return query.order_by(RunRow.started_at.desc())
    field, _, direction = order_by.strip().partition(" ")
    descending = direction.strip().lower() == "desc"
    if field.startswith("metrics."):
        key = field.removeprefix("metrics.")
        value = (
            select(LatestMetricRow.value)
            .where(LatestMetricRow.run_id == RunRow.id, LatestMetricRow.key == key)
            .scalar_subquery()
        )
        # Either way: the scores, then NaN (no score at all), then the runs without the metric.
        rank = case((value == math.nan, 1), (value.is_(None), 2), else_=0)
        return query.order_by(rank, value.desc() if descending else value.asc())
    sort: ColumnElement[Any]
    if field == "status":
        sort = _status(cutoff)
    elif field in ("started_at", "ended_at", "name", "experiment"):
        sort = getattr(RunRow, field)
    else:
        raise Invalid(
            f"order_by {order_by!r}: use metrics.KEY, started_at, ended_at, name or status, "
            "optionally followed by asc or desc."
        )
    return query.order_by(sort.desc().nulls_last() if descending else sort.asc().nulls_last())


def metric_history(ws: Workspace, run_id: str, key: str) -> list[MetricPoint]:
    with ws.db.read() as s:
        rows = s.scalars(
            select(MetricRow)
            .where(MetricRow.run_id == run_id, MetricRow.key == key)
            .order_by(MetricRow.step, MetricRow.at)
        )
        return [MetricPoint(key=r.key, value=r.value, step=r.step, at=r.at) for r in rows]


def plot_histories(ws: Workspace, runs: Sequence[Run], out: Path) -> Path | None:
    """One panel per metric with a history longer than one point; None if there is none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in runs for k in r.metrics})
    series = {k: [(r, metric_history(ws, r.id, k)) for r in runs] for k in keys}
    series = {k: v for k, v in series.items() if any(len(h) > 1 for _, h in v)}
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.8 * len(series)), squeeze=False)
    for ax, (key, per_run) in zip(axes[:, 0], series.items(), strict=True):
        for run, history in per_run:
            if history:
                ax.plot(
                    [p.step for p in history], [p.value for p in history], label=run.name or run.id
                )
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
