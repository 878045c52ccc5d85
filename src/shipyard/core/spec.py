"""`shipyard.yaml`, parsed into typed objects (DESIGN.md section 2).

Every key is checked: an unknown key or a wrong type is a `SpecError` that names the key path,
the value received and the form expected.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from shipyard.core.errors import Invalid, SpecError
from shipyard.core.records import CleaningStep, Severity, check_name


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlSource(_Spec):
    sql: str = Field(description="The query to run.")
    url: str = Field(description="SQLAlchemy URL of the database.")


class ColumnContract(_Spec):
    """Overrides of the inferred schema for one column; declared rules block by default."""

    type: Literal["int64", "float64", "bool", "string", "timestamp", "date"] | None = None
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    nullable: bool | None = None
    unique: bool | None = None
    severity: Severity = "error"

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


class DataSpec(_Spec):
    source: str | SqlSource | None = Field(
        default=None,
        description="What `shipyard data ingest` reads with no file given; not needed to train "
        "on a dataset already ingested.",
    )
    name: str | None = Field(default=None, description="Dataset name; default: the project.")
    target: str | None = None
    id: str | None = None
    time: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    contract: dict[str, ColumnContract] = Field(default_factory=dict)
    clean: list[CleaningStep] = Field(default_factory=list)


class ParamRange(_Spec):
    low: float
    high: float
    log: bool = False
    step: float | None = None


ParamSpace = Annotated[ParamRange | list[Any] | str | int | float | bool | None, Field()]


class Candidate(_Spec):
    estimator: str = Field(description="Import path, e.g. sklearn.linear_model.LogisticRegression")
    params: dict[str, ParamSpace] = Field(default_factory=dict)


class SearchSpec(_Spec):
    trials: int = Field(default=20, ge=1)
    cv: int = Field(default=5, ge=2)
    timeout_s: float | None = None
    parallel: int = Field(default=1, ge=1)


class TrainSpec(_Spec):
    task: Literal["classification", "regression", "clustering"] = "classification"
    metric: str | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    search: SearchSpec = Field(default_factory=SearchSpec)
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)


class TestsGate(_Spec):
    tests: str


Gate = str | TestsGate


class ServeSpec(_Spec):
    max_batch: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=2, ge=0)


_DURATION_RE = re.compile(r"\A([0-9]+)\s*(s|m|h|d|w)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`30s`, `15m`, `1h`, `7d` or `2w` as a timedelta, or Invalid saying the form."""
    match = _DURATION_RE.fullmatch(str(text).strip())
    if not match or int(match[1]) <= 0:
        raise Invalid(
            f"{what} {text!r} is not a duration: give a positive whole number and a unit "
            "s, m, h, d or w (for example 15m, 1h or 7d)."
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parse_duration(value)
        except Invalid as exc:
            raise PydanticCustomError("invalid_duration", exc.message) from None
    return value


Duration = Annotated[str, AfterValidator(_duration)]


class DriftTestSpec(_Spec):
    """Which statistic decides drift for a column, and above which value it counts."""

    test: Literal["wasserstein", "psi", "ks", "jensen_shannon", "chi2"]
    threshold: float = Field(gt=0)


class DriftTests(_Spec):
    numeric: DriftTestSpec | None = None
    categorical: DriftTestSpec | None = None


class MultivariateSpec(_Spec):
    threshold: float = Field(default=0.75, gt=0.5, le=1, description="Domain classifier AUC.")
    rows: int = Field(default=5_000, ge=100, description="Rows per side, sampled.")


class DecaySpec(_Spec):
    metric: str | None = Field(default=None, description="Default: the primary metric.")
    drop: float = Field(default=0.05, gt=0, description="Absolute drop that counts as decay.")
    min_labels: int = Field(default=100, ge=1)


class SloSpec(_Spec):
    p99_ms: float | None = Field(default=None, gt=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    min_rps: float | None = Field(default=None, ge=0)


class MonitorSpec(_Spec):
    window: Duration = "1h"
    drift_threshold: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="The window drifts when its drifted features carry at least this share "
        "of the model's importance (of the features, when importance is unknown).",
    )
    min_rows: int = Field(default=100, ge=1, description="Fewer rows in a window: not judged.")
    tests: DriftTests = Field(default_factory=DriftTests)
    columns: dict[str, DriftTestSpec] = Field(default_factory=dict)
    multivariate: MultivariateSpec | None = Field(default_factory=MultivariateSpec)
    decay: DecaySpec = Field(default_factory=DecaySpec)
    slo: SloSpec = Field(default_factory=SloSpec)
    webhooks: list[str] = Field(default_factory=list)
    allow_private_webhooks: bool = False


class EverySpec(_Spec):
    every: Duration


class DriftWhen(_Spec):
    features: list[str] | None = Field(default=None, description="Default: every feature.")
    threshold: float | None = Field(default=None, gt=0, le=1)


class DriftPolicy(_Spec):
    drift: DriftWhen


class DecayPolicy(_Spec):
    decay: DecaySpec


class GuardSpec(_Spec):
    error_rate: float | None = Field(default=None, ge=0, le=1)
    p99_ms: float | None = Field(default=None, gt=0)
    agreement: float | None = Field(default=None, ge=0, le=1)
    min_requests: int | None = Field(default=None, ge=1)


class RolloutSpec(_Spec):
    shadow: int = Field(default=1000, ge=0)
    canary: list[int] = Field(default_factory=lambda: [10, 50, 100])
    guard: GuardSpec = Field(default_factory=GuardSpec)


Policy = Literal["drift", "decay"] | EverySpec | DriftPolicy | DecayPolicy


class RetrainSpec(_Spec):
    when: list[Policy] = Field(default_factory=list)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    margin: float = Field(
        default=0.0, ge=0, description="How much the candidate must beat the champion by."
    )
    windows: int = Field(
        default=24, ge=1, description="Recent windows whose labelled rows join the training set."
    )
    cooldown: Duration | None = Field(
        default=None,
        description="Least time between the end of a rollout and the next retrain "
        "(default: one monitor window).",
    )


class ProjectSpec(_Spec):
    project: str
    data: DataSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    gates: list[Gate] = Field(default_factory=list)
    serve: ServeSpec = Field(default_factory=ServeSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    base_dir: Path = Field(default=Path(), exclude=True)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        # pydantic only collects ValueError-like errors; an `Invalid` would escape parse_spec.
        try:
            return check_name(value, what="project")
        except Invalid as exc:
            raise PydanticCustomError("invalid_name", exc.message) from None

    @property
    def dataset_name(self) -> str:
        return self.data.name or self.project


def parse_spec(
    text: str, *, source: str = "shipyard.yaml", base_dir: Path | None = None
) -> ProjectSpec:
    """Parse the YAML text of a project spec, or raise a `SpecError` naming each bad key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source}: expected a mapping with at least 'project' and 'data', "
            f"got {type(raw).__name__}."
        )
    try:
        return ProjectSpec.model_validate({**raw, "base_dir": base_dir or Path()})
    except ValidationError as exc:
        raise SpecError(_describe(exc, source, raw), details={"errors": _plain(exc, raw)}) from exc


def load_spec(path: str | Path = "shipyard.yaml") -> ProjectSpec:
    """Read and parse a spec file."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(
            f"spec file {str(file)!r} not found; create it (see README, 'The project spec') "
            "or pass --spec PATH."
        )
    return parse_spec(file.read_text(), source=str(file), base_dir=file.resolve().parent)


def _plain(exc: ValidationError, raw: Any) -> list[dict[str, Any]]:
    return [
        {"key": _key(e["loc"], raw), "value": repr(e.get("input"))[:80], "problem": e["msg"]}
        for e in exc.errors()
    ]


def _key(loc: tuple[Any, ...], raw: Any) -> str:
    # pydantic adds union member names ('str', 'SqlSource', 'list[...]') to the location. A part
    # that indexes the user's input is a key (even 'Income' or 'none'); only others may be tags.
    parts: list[str] = []
    node = raw
    for part in loc:
        indexes = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not indexes and _is_union_tag(part):
            continue
        node = node[part] if indexes else None
        parts.append(str(part))
    return ".".join(parts) or "(top level)"


def _is_union_tag(part: Any) -> bool:
    text = str(part)
    return text[:1].isupper() or "[" in text or text in {"str", "int", "float", "bool", "none"}


def _describe(exc: ValidationError, source: str, raw: Any) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors():
        key = _key(err["loc"], raw)
        if key in seen:
            continue
        seen.add(key)
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            lines.append(
                f"  {key}: unknown key (value {value!r}); remove it or check its spelling."
            )
        elif err["type"] == "missing":
            lines.append(f"  {key}: required key is missing.")
        else:
            msg = err["msg"]
            lines.append(f"  {key}: got {value!r}; {msg[:1].lower()}{msg[1:].rstrip('.')}.")
    return f"{source} is not a valid project spec:\n" + "\n".join(lines)
