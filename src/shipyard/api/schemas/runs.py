"""Runs on the wire: search (the filter language of `train.runs`), one run, a metric's history;
creating a run, logging to it in batches, ending it.

Metric values and NaN: JSON has no NaN or infinity, and a diverged loss is worth keeping, so a
metric value is a JSON number or one of the strings "NaN", "Infinity", "-Infinity", both in
what the server accepts and in what it sends (`MetricValue`). Nothing else is a string.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireRequest, WireResult
from shipyard.core.records import MetricPoint, Run, RunArtifact, RunStatus
from shipyard.train.tracking import KILLED_AFTER_SECONDS

MAX_FILTER = 4000
MAX_POINTS = 10_000  # a batch: as many points as the in-process writer flushes at once
MAX_KEYS = 1_000
NonFinite = Literal["NaN", "Infinity", "-Infinity"]
MetricValue = Annotated[float, Field(strict=True)] | NonFinite  # strict: "0.5" is refused
_NON_FINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_KEY = Field(min_length=1, max_length=250)
Key = Annotated[str, _KEY]


def metric_value(value: float) -> float | NonFinite:
    """A stored value as sent: NaN and ±inf as their strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def metric_float(value: float | str) -> float:
    """A received value as stored."""
    return _NON_FINITE[value] if isinstance(value, str) else float(value)


class RunQuery(ListQuery):
    experiment: str | None = Field(default=None, max_length=200)
    filter: str | None = Field(
        default=None,
        max_length=MAX_FILTER,
        description="Clauses joined by 'and', e.g. \"metrics.auc > 0.8 and params.model = "
        "'lgbm' and status = 'finished'\".",
    )
    order_by: str | None = Field(
        default=None,
        max_length=200,
        description="'metrics.KEY', 'started_at', 'ended_at', 'name' or 'status', then asc or "
        "desc (default: newest first).",
    )
    parent_id: str | None = Field(default=None, max_length=100, description="Its trials.")
    trials: bool = Field(default=False, description="Include search trials (child runs).")


class RunView(WireResult):
    id: str
    experiment: str
    name: str | None
    status: RunStatus
    parent_id: str | None
    dataset_version_id: str | None
    seed: int | None
    git_commit: str | None
    packages: dict[str, str]
    params: dict[str, Any]
    tags: dict[str, str]
    metrics: dict[str, float | NonFinite] = Field(
        description='Latest value per key ("NaN", "Infinity", "-Infinity" as strings).'
    )
    artifacts: list[RunArtifact]
    started_at: datetime
    ended_at: datetime | None
    created_by: str
    note: str | None

    @classmethod
    def of(cls, run: Run) -> RunView:
        return cls(
            id=run.id,
            experiment=run.experiment,
            name=run.name,
            status=run.status,
            parent_id=run.parent_id,
            dataset_version_id=run.dataset_version_id,
            seed=run.seed,
            git_commit=run.git_commit,
            packages=dict(run.packages),
            params=dict(run.params),
            tags=dict(run.tags),
            metrics={k: metric_value(v) for k, v in run.metrics.items()},
            artifacts=list(run.artifacts),
            started_at=run.started_at,
            ended_at=run.ended_at,
            created_by=run.created_by,
            note=run.note,
        )


class RunPage(PageResult):
    items: list[RunView]


class RunDetail(WireResult):
    run: RunView
    children: list[str] = Field(description="Ids of its child runs (search trials).")


class MetricPointView(WireResult):
    step: int
    value: float | NonFinite = Field(description='"NaN", "Infinity", "-Infinity" as strings.')
    at: datetime

    @classmethod
    def of(cls, point: MetricPoint) -> MetricPointView:
        return cls(step=point.step, value=metric_value(point.value), at=point.at)


class MetricPage(PageResult):
    run_id: str
    key: str
    items: list[MetricPointView] = Field(description="By step, then time.")


class RunCreate(WireRequest):
    experiment: Key
    name: str | None = Field(default=None, max_length=256)
    params: dict[Key, Any] = Field(default={}, max_length=MAX_KEYS)
    tags: dict[Key, str] = Field(default={}, max_length=MAX_KEYS)
    parent_id: str | None = Field(
        default=None, max_length=32, description="Makes it a child run (a trial) of this run."
    )
    seed: int | None = None
    heartbeat: bool = Field(
        default=True,
        description="Presume the run dead (status killed) once no log call came for "
        f"{KILLED_AFTER_SECONDS:g} s; send an empty batch to beat while idle. false: it stays "
        "running until ended.",
    )


class MetricIn(WireRequest):
    key: Key
    value: MetricValue = Field(description='A number, or "NaN", "Infinity", "-Infinity".')
    step: int | None = Field(
        default=None,
        ge=-(2**31),
        le=2**31 - 1,
        description="Default: the next after the key's latest step (0 for its first point).",
    )
    timestamp: AwareDatetime | None = Field(
        default=None, description="When it was measured, with a time zone (default: now)."
    )


class LogBatch(WireRequest):
    """Written in one transaction: all of it, or (any field failing) none of it."""

    metrics: list[MetricIn] = Field(default=[], max_length=MAX_POINTS)
    params: dict[Key, Any] = Field(default={}, max_length=MAX_KEYS)
    tags: dict[Key, str] = Field(default={}, max_length=MAX_KEYS)


class BatchLogged(WireResult):
    run_id: str
    metrics: int = Field(description="Points written (committed before this answer).")
    params: int
    tags: int


class RunEnd(WireRequest):
    status: Literal["finished", "failed", "killed", "interrupted"] = "finished"
    note: str | None = Field(default=None, max_length=2000, description="Why, e.g. the error.")
