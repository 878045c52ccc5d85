"""Runs on the wire: search (the filter language of `train.runs`), one run, a metric's history."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireResult
from shipyard.core.records import MetricPoint, Run, RunArtifact, RunStatus

MAX_FILTER = 4000


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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
    metrics: dict[str, float | None] = Field(description="Latest value per key (NaN: null).")
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
            metrics={k: _finite(v) for k, v in run.metrics.items()},
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
    value: float | None = Field(description="null for NaN or ±inf.")
    at: datetime

    @classmethod
    def of(cls, point: MetricPoint) -> MetricPointView:
        return cls(step=point.step, value=_finite(point.value), at=point.at)


class MetricPage(PageResult):
    run_id: str
    key: str
    items: list[MetricPointView] = Field(description="By step, then time.")
