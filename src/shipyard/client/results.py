"""What the client returns: the API's result schemas (`api.schemas`), as the client reads them.

They mirror `shipyard.api.schemas` field for field (tests/client/test_results.py pins that),
but are defined here because importing `shipyard.api.schemas` runs `shipyard/api/__init__.py`,
which builds the server (Starlette, SQLAlchemy, scikit-learn, LightGBM: seconds). Unlike the
server's, they ignore fields they do not know, so a newer server does not break an older client.
Small value types nest the domain records of `core.records`, as on the server.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shipyard.core.records import (
    AlertKind,
    Canary,
    Challenger,
    DatasetSchema,
    GateResult,
    Lineage,
    ModelStatus,
    MonitorReport,
    Profile,
    Role,
    RolloutEvent,
    RolloutStage,
    RunArtifact,
    RunStatus,
    ShadowTarget,
    Signature,
    ValidationReport,
)

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def metric_float(value: object) -> object:
    """A metric value as received: the strings "NaN", "Infinity", "-Infinity" (JSON has no
    such numbers, so the API sends them so) become the floats; None (older servers) is NaN."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


def metric_wire(value: float) -> float | str:
    """A metric value as sent: NaN and ±inf as the API's strings, anything else a float."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


Metric = Annotated[float, BeforeValidator(metric_float)]


class Result(BaseModel):
    """An answer of the server, parsed; unknown (newer) fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# -- tokens -------------------------------------------------------------------------------------


class TokenView(Result):
    id: str
    name: str
    role: Role
    prefix: str
    active: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(Result):
    token: TokenView
    secret: str = Field(description="Shown this once; only its hash is stored.")


# -- audit --------------------------------------------------------------------------------------


class AuditEventView(Result):
    seq: int
    id: str
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: str | None
    after: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainView(Result):
    ok: bool
    events: int
    head: str
    problems: list[str]


# -- datasets -----------------------------------------------------------------------------------


class VersionSummary(Result):
    ref: str
    id: str
    version: int
    rows: int
    columns: int
    content_hash: str
    errors: int
    warnings: int
    created_at: datetime
    created_by: str


class DatasetView(Result):
    name: str
    target: str | None
    id_column: str | None
    time_column: str | None
    sensitive: list[str]
    versions: int
    created_at: datetime
    created_by: str
    latest: VersionSummary | None


class VersionView(Result):
    ref: str
    id: str
    dataset: str
    version: int
    rows: int
    columns: int
    content_hash: str
    schema_: DatasetSchema = Field(alias="schema")
    validation: ValidationReport
    lineage: Lineage
    created_at: datetime
    created_by: str


class IngestView(Result):
    created: bool = Field(description="False: the same data is already this version.")
    version: VersionView


class ValidationView(Result):
    against: str
    passed: bool
    report: ValidationReport


class ProfileView(Result):
    ref: str
    profile: Profile


class SchemaChangeView(Result):
    column: str
    change: str
    before: str | None
    after: str | None


class ShiftView(Result):
    column: str
    dtype: str
    psi: float | None
    bins: int
    noise: float | None
    large: bool
    js: float | None
    mean_before: float | None
    mean_after: float | None
    missing_before: float | None
    missing_after: float | None
    new_categories: list[str]


class DiffView(Result):
    before: str
    after: str
    rows_before: int
    rows_after: int
    same_content: bool
    schema_changes: list[SchemaChangeView]
    shifts: list[ShiftView]
    warnings: list[str]


# -- runs ---------------------------------------------------------------------------------------


class RunView(Result):
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
    metrics: dict[str, Metric]  # NaN and ±inf as floats
    artifacts: list[RunArtifact]
    started_at: datetime
    ended_at: datetime | None
    created_by: str
    note: str | None


class RunDetail(Result):
    run: RunView
    children: list[str]


class MetricPointView(Result):
    step: int
    value: Metric  # NaN and ±inf as floats
    at: datetime


class BatchLogged(Result):
    run_id: str
    metrics: int
    params: int
    tags: int


# -- models -------------------------------------------------------------------------------------


class ModelVersionView(Result):
    ref: str
    id: str
    model: str
    version: int
    status: ModelStatus
    aliases: list[str]
    task: Literal["classification", "regression", "clustering"]
    flavor: str
    artifact: str
    run_id: str | None
    dataset_version_id: str | None
    signature: Signature
    metrics: dict[str, float | None]
    gates: list[GateResult]
    documents: list[str]
    description: str | None
    created_at: datetime
    created_by: str


# -- endpoints ----------------------------------------------------------------------------------


class EndpointState(Result):
    name: str
    revision: int = Field(description="Send it back with a change (409 if it moved on).")
    champion_id: str
    champion_ref: str
    challengers: list[Challenger]
    shadows: list[ShadowTarget]
    canary: Canary | None
    flags: dict[str, str]
    pinned: ShadowTarget | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str | None


# -- monitoring, alerts, the loop ---------------------------------------------------------------


class ReportView(Result):
    endpoint: str
    report: MonitorReport


class AlertView(Result):
    id: str
    endpoint: str
    kind: AlertKind
    message: str
    details: dict[str, Any]
    created_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    deliveries: list[dict[str, Any]]


class RolloutView(Result):
    id: str
    endpoint: str
    trigger: str
    stage: RolloutStage
    champion_ref: str
    candidate_ref: str | None
    candidate_id: str | None
    dataset_ref: str | None
    reason: str
    events: list[RolloutEvent]
    created_at: datetime
    updated_at: datetime


class TurnView(Result):
    endpoint: str
    action: str
    reason: str
    rollout: RolloutView | None
    report: MonitorReport | None


class TurnsView(Result):
    turns: list[TurnView]


class LoopState(Result):
    endpoint: str
    paused: str | None = Field(description="Why the loop is paused here; None: it may act.")
    rollouts: list[RolloutView]


__all__ = [
    "AlertView",
    "AuditEventView",
    "BatchLogged",
    "ChainView",
    "DatasetView",
    "DiffView",
    "EndpointState",
    "IngestView",
    "LoopState",
    "Metric",
    "MetricPointView",
    "ModelVersionView",
    "ProfileView",
    "ReportView",
    "Result",
    "RolloutView",
    "RunDetail",
    "RunView",
    "SchemaChangeView",
    "ShiftView",
    "TokenCreated",
    "TokenView",
    "TurnView",
    "TurnsView",
    "ValidationView",
    "VersionSummary",
    "VersionView",
]
