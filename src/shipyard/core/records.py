"""Domain records (DESIGN.md section 1): immutable, plain data, no I/O.

Stored rows (store/tables.py) and wire schemas are separate types; these are what services
return and what the CLI, API and SDK render.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.core.errors import Invalid


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- identity -----------------------------------------------------------------------------------


class Role(StrEnum):
    """What a token may do; `admin` may do everything."""

    viewer = "viewer"
    scientist = "scientist"
    deployer = "deployer"
    admin = "admin"
    predictor = "predictor"


class Token(Record):
    id: str
    name: str
    role: Role
    prefix: str = Field(description="First characters of the secret, to recognise it in lists.")
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(Record):
    seq: int
    id: str
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: str | None = None
    after: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


# -- data ---------------------------------------------------------------------------------------

DType = Literal["int64", "float64", "bool", "string", "timestamp", "date"]
ColumnRole = Literal["feature", "target", "id", "time", "sensitive"]
Severity = Literal["error", "warning"]


class ColumnSchema(Record):
    """One column's type and contract. Inferred rules are warnings; declared rules are errors."""

    name: str
    dtype: DType
    role: ColumnRole = "feature"
    nullable: bool = True
    unique: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str] | None = Field(default=None, description="Allowed categories, if closed.")
    severity: dict[str, Severity] = Field(
        default_factory=dict,
        description="Severity per rule: dtype, nullable, unique, range, values.",
    )

    def rule_severity(self, rule: str) -> Severity:
        return self.severity.get(rule, "error" if rule in ("dtype", "present") else "warning")


class DatasetSchema(Record):
    columns: list[ColumnSchema]

    def column(self, name: str) -> ColumnSchema | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class Histogram(Record):
    edges: list[float]
    counts: list[int]


class ColumnProfile(Record):
    name: str
    dtype: DType
    count: int
    missing: int
    distinct: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = Field(default_factory=dict)
    histogram: Histogram | None = None
    top: dict[str, int] = Field(default_factory=dict, description="Most frequent categories.")

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0


class Profile(Record):
    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)


class Violation(Record):
    rule: str
    column: str
    severity: Severity
    count: int
    message: str
    examples: list[dict[str, Any]] = Field(default_factory=list)


class ValidationReport(Record):
    rows: int
    violations: list[Violation] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]


class CleaningStep(Record):
    """One replayable cleaning step; `params` are plain data."""

    op: Literal["trim", "lower", "empty_to_null", "coerce", "fill", "drop_missing", "dedupe"]
    columns: list[str] = Field(default_factory=list, description="Empty means every column.")
    params: dict[str, Any] = Field(default_factory=dict)
    rows_changed: int | None = None


class Lineage(Record):
    source: str
    format: str
    query: str | None = None
    source_digest: str | None = None
    parent: str | None = None
    steps: list[CleaningStep] = Field(default_factory=list)
    contract: dict[str, Any] = Field(
        default_factory=dict, description="The contract declared for this ingest (plain data)."
    )


class Dataset(Record):
    name: str
    target: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    created_at: datetime
    created_by: str
    versions: int = 0


class DatasetVersion(Record):
    id: str
    dataset: str
    version: int
    content_hash: str
    rows: int
    columns: int
    schema_: DatasetSchema = Field(alias="schema")
    profile: Profile
    validation: ValidationReport
    lineage: Lineage
    created_at: datetime
    created_by: str

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


# -- runs ---------------------------------------------------------------------------------------


class RunStatus(StrEnum):
    running = "running"
    finished = "finished"
    failed = "failed"
    interrupted = "interrupted"
    killed = "killed"  # its process died (no heartbeat): SIGKILL, out of memory, power loss


class MetricPoint(Record):
    key: str
    value: float
    step: int
    at: datetime


class RunArtifact(Record):
    name: str
    digest: str
    size: int


class Run(Record):
    id: str
    experiment: str
    name: str | None = None
    status: RunStatus
    parent_id: str | None = None
    dataset_version_id: str | None = None
    seed: int | None = None
    git_commit: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="Latest value per key.")
    artifacts: list[RunArtifact] = Field(default_factory=list)
    started_at: datetime
    ended_at: datetime | None = None
    created_by: str
    note: str | None = None


# -- models -------------------------------------------------------------------------------------


class ModelStatus(StrEnum):
    candidate = "candidate"
    approved = "approved"
    rejected = "rejected"
    deployed = "deployed"
    archived = "archived"


class SignatureColumn(Record):
    name: str
    dtype: DType
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None


class Signature(Record):
    """What a model accepts and returns; serving validates requests against it."""

    inputs: list[SignatureColumn]
    output: Literal["class", "number", "cluster"]
    classes: list[str] | None = None
    id_column: str | None = None
    target: str | None = Field(default=None, description="The training data's target column.")
    carried: list[SignatureColumn] | None = Field(
        default=None,
        description="Columns of the training data a request may carry that are not inputs: "
        "the declared id and sensitive columns. Logged with the prediction, never given to the "
        "model. None where the model was registered before Shipyard recorded them.",
    )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]


class GateResult(Record):
    gate: str
    kind: Literal["metric", "fairness", "tests"]
    passed: bool
    value: float | None = None
    threshold: float | None = None
    detail: str = ""


class ModelVersion(Record):
    id: str
    model: str
    version: int
    status: ModelStatus
    run_id: str | None = None
    dataset_version_id: str | None = None
    task: Literal["classification", "regression", "clustering"]
    flavor: str
    artifact: str
    signature: Signature
    metrics: dict[str, float] = Field(default_factory=dict)
    gates: list[GateResult] = Field(default_factory=list)
    documents: dict[str, str] = Field(default_factory=dict, description="name → artifact digest")
    aliases: list[str] = Field(default_factory=list)
    description: str | None = None
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]


# -- endpoints ----------------------------------------------------------------------------------

CanaryState = Literal["running", "promoted", "rolled_back", "stopped"]


class Challenger(Record):
    """A version that answers `weight` percent of an endpoint's requests (A/B test)."""

    version_id: str
    ref: str
    weight: float = Field(description="Share of traffic, in percent (0-100).")


class ShadowTarget(Record):
    """A version without a traffic share: a shadow (sees a copy of requests) or the pin."""

    version_id: str
    ref: str


class Canary(Record):
    """A version ramping up through `steps` (percent of traffic), guarded by `guard`."""

    version_id: str
    ref: str
    steps: list[int] = Field(description="Traffic percent at each step, increasing.")
    step: int = Field(default=0, description="Index into `steps` of the current step.")
    state: CanaryState = "running"
    guard: dict[str, float] = Field(
        default_factory=dict,
        description="Limits: error_rate (0-1), p99_ms, agreement (0-1), min_requests.",
    )
    reason: str | None = Field(default=None, description="Why it stopped or rolled back.")

    @property
    def percent(self) -> int:
        """The share of traffic the canary gets now (0 unless it is running)."""
        return self.steps[self.step] if self.state == "running" else 0


class Endpoint(Record):
    """Routing for one served endpoint. Every change makes a new `revision`.

    The champion answers whatever the canary and the challengers do not take; shadows see a
    copy of every request off the critical path; the `pin` flag (`pinned`) overrides it all.
    """

    name: str
    champion_id: str
    champion_ref: str
    challengers: list[Challenger] = Field(default_factory=list)
    shadows: list[ShadowTarget] = Field(default_factory=list)
    canary: Canary | None = None
    flags: dict[str, str] = Field(default_factory=dict)
    pinned: ShadowTarget | None = Field(
        default=None, description="The version the `pin` flag names, resolved."
    )
    champion_follows: str | None = Field(
        default=None,
        description="The alias reference (NAME@ALIAS) the champion follows; None: pinned.",
    )
    loop_paused: str | None = Field(
        default=None, description="Why the retrain loop is paused here (None: it may act)."
    )
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str | None = None

    def targets(self) -> dict[str, str]:
        """Every version this endpoint can send traffic to, version id → ref (load these)."""
        out = {self.champion_id: self.champion_ref}
        out.update({c.version_id: c.ref for c in self.challengers})
        out.update({s.version_id: s.ref for s in self.shadows})
        if self.canary is not None and self.canary.state == "running":
            out[self.canary.version_id] = self.canary.ref
        if self.pinned is not None:
            out[self.pinned.version_id] = self.pinned.ref
        return out


class Prediction(Record):
    """One logged prediction: one row of one request, answered by one version."""

    request_id: str
    endpoint: str
    version_id: str
    at: datetime
    latency_ms: float
    shadow: bool = False
    row: int = Field(default=0, description="Position of the row in its request.")
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any]


class LabelledPrediction(Record):
    """A logged prediction joined with the ground-truth label fed back for it."""

    request_id: str
    row: int
    version_id: str
    shadow: bool
    at: datetime
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any]
    label: Any
    labelled_at: datetime


class FeedbackResult(Record):
    matched: int
    unknown: int
    unknown_ids: list[str] = Field(
        default_factory=list, description="The first 20 request ids that matched no prediction."
    )


class ScoreResult(Record):
    """What a batch scoring job wrote."""

    source: str
    out: str
    model_ref: str
    version_id: str
    rows: int
    chunks: int
    seconds: float
    kept: list[str] = Field(default_factory=list, description="Columns copied through (the id).")
    out_of_range: dict[str, int] = Field(
        default_factory=dict,
        description="Per column, values scored that lie outside the training data (a number "
        "beyond its range, an unknown category); refused instead with strict_ranges.",
    )


# -- references ---------------------------------------------------------------------------------

NAME_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
_REF_RE = re.compile(r"(?P<name>[^@]+)(?:@(?P<version>.+))?")
_VERSION_RE = re.compile(r"\A[0-9]+\Z")


def check_name(value: str, *, what: str = "name") -> str:
    """A name users give (dataset, model, endpoint): letters, digits, `_ . -`, 1-64 chars."""
    if not NAME_RE.fullmatch(value):
        raise Invalid(
            f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter (for example 'loans' or 'credit-risk')."
        )
    return value


class Ref(Record):
    """`name`, `name@N` or `name@latest` (or `name@alias` for models)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str, *, what: str = "reference") -> Ref:
        match = _REF_RE.fullmatch(text.strip())
        if not match:
            raise Invalid(f"{what} {text!r} is not of the form NAME, NAME@N or NAME@latest.")
        name = check_name(match["name"], what=f"{what} name")
        raw = match["version"]
        if raw is None or raw == "latest":
            return cls(name=name)
        # str.isdigit() accepts '²' (int() fails) and '٣' (int() reads 3): ASCII only.
        if _VERSION_RE.fullmatch(raw) and int(raw) > 0:
            return cls(name=name, version=int(raw))
        if NAME_RE.fullmatch(raw):
            return cls(name=name, alias=raw)
        raise Invalid(
            f"{what} {text!r}: the part after '@' must be a version number (1, 2, ...), "
            f"'latest' or an alias, not {raw!r}."
        )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias or 'latest'}"


# -- monitoring ---------------------------------------------------------------------------------

DriftKind = Literal["numeric", "categorical"]
DriftTest = Literal["wasserstein", "psi", "ks", "jensen_shannon", "chi2"]


class FeatureDrift(Record):
    """How one column (or the model's output) moved from the reference to the current data.

    `test` and `threshold` are what decided `drifted` (an effect size, never a p-value alone);
    `scores` holds every statistic computed for the column (p-values under `*_pvalue`).
    `bins`, `reference_share` and `current_share` describe both distributions on the same bins
    (the reference's histogram edges, or its categories plus `(other)`), for plots.
    """

    column: str
    kind: DriftKind
    test: DriftTest
    score: float
    threshold: float
    drifted: bool
    scores: dict[str, float] = Field(default_factory=dict)
    reference_rows: int
    current_rows: int
    missing_reference: float = Field(description="Share of missing values in the reference.")
    missing_current: float
    missing_drifted: bool = False
    new_categories: dict[str, int] = Field(
        default_factory=dict, description="Categories the reference never had, with counts."
    )
    importance: float | None = Field(
        default=None, description="The feature's share of the model's global importance."
    )
    bins: list[str] = Field(default_factory=list)
    reference_share: list[float] = Field(default_factory=list)
    current_share: list[float] = Field(default_factory=list)


class MultivariateDrift(Record):
    """A domain classifier told reference rows from current rows this well (ROC-AUC)."""

    auc: float
    threshold: float
    drifted: bool
    rows: int = Field(description="Rows per side the classifier was trained and tested on.")
    top_features: dict[str, float] = Field(
        default_factory=dict, description="Features that drive the separation, importance share."
    )


class DriftReport(Record):
    """The window's verdict: it drifts when its drifted features carry `threshold` of the
    importance, or when the domain classifier tells it from the reference (joint drift)."""

    reference: str = Field(description="What the reference was (a dataset or model version).")
    current: str
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = Field(default_factory=list)
    prediction: FeatureDrift | None = None
    label: FeatureDrift | None = Field(
        default=None, description="The target column's drift (label drift), not a feature."
    )
    multivariate: MultivariateDrift | None = None
    drifted_share: float = Field(
        default=0.0,
        description="Importance share of the drifted features (the share of features when the "
        "model's importance is not known).",
    )
    threshold: float | None = Field(
        default=None, description="The drifted share at which the window drifts."
    )
    drifted: bool = False
    reasons: list[str] = Field(
        default_factory=list, description="Why the window drifted, in words (empty if not)."
    )
    ignored_columns: list[str] = Field(
        default_factory=list, description="Current columns the reference does not have."
    )
    excluded: dict[str, str] = Field(
        default_factory=dict, description="Columns not judged as features, with the reason."
    )
    note: str | None = Field(default=None, description="Why nothing was judged, when so.")

    @property
    def drifted_columns(self) -> list[str]:
        return [f.column for f in self.features if f.drifted]

    @property
    def by_importance(self) -> bool:
        """Whether `drifted_share` weighs features by the model's importance."""
        return any(f.importance is not None for f in self.features)

    @property
    def features_drifted(self) -> bool:
        """The verdict of the per-feature tests alone (joint drift aside)."""
        if self.threshold is None or self.note is not None or not self.features:
            return self.drifted and bool(self.drifted_columns)
        return self.drifted_share >= self.threshold - 1e-12


class WindowPerformance(Record):
    """Model quality on the labelled predictions of one window."""

    start: datetime
    end: datetime
    labelled: int
    metrics: dict[str, float] = Field(default_factory=dict)


class Decay(Record):
    metric: str
    registered: float = Field(description="The metric on the held-out data at registration.")
    current: float
    drop: float = Field(description="How much worse than registered (positive = worse).")
    threshold: float
    labelled: int
    decayed: bool


class SloResult(Record):
    name: Literal["p99_ms", "error_rate", "min_rps"]
    limit: float
    observed: float | None
    passed: bool


class WindowTraffic(Record):
    """What the endpoint served in one window (primary answers; shadow copies counted apart)."""

    start: datetime
    end: datetime
    requests: int
    rows: int
    errors: int = 0
    shadow_rows: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    drifted_share: float | None = None


AlertKind = Literal["drift", "multivariate", "decay", "slo", "loop"]


class Alert(Record):
    id: str
    endpoint: str
    kind: AlertKind
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    acked_at: datetime | None = None
    acked_by: str | None = None
    deliveries: list[dict[str, Any]] = Field(
        default_factory=list, description="Webhook attempts: url, status or error, at."
    )


class MonitorReport(Record):
    """Everything `shipyard monitor report` shows: drift, decay, SLOs, and their history."""

    endpoint: str | None = None
    model_ref: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    drift: DriftReport
    traffic: list[WindowTraffic] = Field(default_factory=list, description="Oldest first.")
    performance: list[WindowPerformance] = Field(default_factory=list)
    decay: Decay | None = None
    slos: list[SloResult] = Field(default_factory=list)
    alerts: list[Alert] = Field(
        default_factory=list,
        description="The window's alerts on record: raised by this report or an earlier look.",
    )


# -- the loop -----------------------------------------------------------------------------------

RolloutStage = Literal[
    "retraining", "rejected", "shadow", "canary", "promoted", "rolled_back", "stopped", "failed"
]
ROLLOUT_ACTIVE: frozenset[str] = frozenset({"retraining", "shadow", "canary"})


class RolloutEvent(Record):
    at: datetime
    stage: RolloutStage
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class Rollout(Record):
    """One trip round the loop for one endpoint: why it retrained, and where the candidate is."""

    id: str
    endpoint: str
    trigger: str = Field(description="What started it: drift, decay, schedule or manual.")
    stage: RolloutStage
    champion_ref: str
    candidate_ref: str | None = None
    candidate_id: str | None = None
    dataset_ref: str | None = None
    reason: str = Field(description="The latest decision, in words.")
    events: list[RolloutEvent] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.stage in ROLLOUT_ACTIVE
