"""Watch an endpoint: drift, decay and SLOs per window, and the alerts they raise.

The monitor computes (sketches, tests, the domain classifier) and the serving layer logs; this
module puts them together for one endpoint, because only the loop may look at the registry (the
reference profile, the registered metrics, the model) and the endpoint's routing at once.

    >>> report = endpoint_report(ws, "credit", spec, window=timedelta(hours=1))
    >>> report.drift.drifted_columns, report.decay
    >>> offline_report(ws, "loans@3", "new.parquet", spec).drift.drifted
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.core.errors import Invalid, NotFound, ShipyardError
from shipyard.core.records import (
    Alert,
    Decay,
    DriftReport,
    ModelVersion,
    MonitorReport,
    Profile,
    SloResult,
    WindowPerformance,
    WindowTraffic,
)
from shipyard.core.spec import DecaySpec, MonitorSpec, ProjectSpec, parse_duration
from shipyard.data import get_version as get_dataset_version
from shipyard.data import get_version_by_id, open_source, read_table
from shipyard.evaluate.metrics import compute, greater_is_better
from shipyard.monitor import (
    WindowSketch,
    alerts_with_keys,
    compare,
    deliver_alert,
    domain_classifier,
    drift_between,
    raise_alert,
)
from shipyard.monitor.drift import features_summary, joint_summary, judged
from shipyard.monitor.window import LogChunk, labelled, scan, window_bounds
from shipyard.registry import get_document, get_profile, get_version, load_model
from shipyard.serve.endpoints import get_endpoint
from shipyard.store.workspace import Workspace
from shipyard.train import get_run

log = logging.getLogger("shipyard.loop.watch")

PREDICTION = "prediction"
REFERENCE_ROWS = 5_000
HISTORY = 24


@dataclass
class Reference:
    """What production is compared with: the champion's training data, as the registry kept it."""

    version: ModelVersion
    features: list[str]
    sketch: WindowSketch
    prediction_sketch: WindowSketch | None
    importance: dict[str, float]
    sample: pd.DataFrame | None
    classes: list[str] | None
    primary_metric: str | None = None  # the metric its training run optimised


def load_reference(ws: Workspace, model_ref: str, *, rows: int = REFERENCE_ROWS) -> Reference:
    """The drift reference of a model version: its profile, importance and a sample of its data."""
    version = get_version(ws, model_ref)
    features = version.signature.names
    raw = get_profile(ws, version.ref)
    if raw is None:
        raise NotFound(
            f"{version.ref} has no reference profile (it was registered without one); "
            "register it with `shipyard train` so the monitor has a baseline."
        )
    profile = Profile.model_validate(raw)
    sketch = WindowSketch.from_profile(profile, [f for f in features if profile.column(f)])
    importance = _importance(ws, version)
    sample = None
    prediction_sketch = None
    if version.dataset_version_id is not None:
        try:
            data = read_table(
                ws, get_version_by_id(ws, version.dataset_version_id), columns=features
            )
            sample = _sample(data, rows)
            predicted = _predict(ws, version, sample)
            prediction_sketch = WindowSketch.reference_from(pd.DataFrame({PREDICTION: predicted}))
        except ShipyardError as exc:  # the dataset may have been erased: drift still works
            log.warning("%s: no reference sample (%s)", version.ref, exc.message)
    return Reference(
        version=version,
        features=features,
        sketch=sketch,
        prediction_sketch=prediction_sketch,
        importance=importance,
        sample=sample,
        classes=version.signature.classes,
        primary_metric=_primary_metric(ws, version),
    )


def endpoint_report(
    ws: Workspace,
    endpoint: str,
    spec: ProjectSpec | None = None,
    *,
    window: timedelta | None = None,
    end: datetime | None = None,
    history: int = HISTORY,
    reference: Reference | None = None,
    raise_alerts: bool = False,
) -> MonitorReport:
    """Drift, decay and SLOs of the champion of `endpoint` over the last `window` (and history).

    The latest window is judged; `history` windows before it give the drift, traffic and
    performance over time. With `raise_alerts`, crossed thresholds become alerts (once per
    window) and go to the spec's webhooks. `report.alerts` are the window's alerts on record,
    raised by this call or an earlier one (the loop, `monitor watch`), so a report shows the
    same alerts as `shipyard alerts ls`.
    """
    monitor = spec.monitor if spec is not None else MonitorSpec()
    size = window or parse_duration(monitor.window, what="monitor.window")
    end = end or datetime.now(UTC)
    route = get_endpoint(ws, endpoint)
    ref = reference or load_reference(ws, route.champion_ref)
    bounds = window_bounds(end, size, history)
    buckets = _Buckets(ref, bounds, sample_rows=_sample_rows(monitor))
    for chunk in scan(
        ws,
        endpoint,
        bounds[0][0],
        end,
        version_id=ref.version.id,
        features=ref.features,
    ):
        buckets.add(chunk)
    start = bounds[-1][0]
    current = buckets.windows[-1]
    same_day = start.astimezone(UTC).date() == end.astimezone(UTC).date()
    label = f"{endpoint} {_when(start)}–{_when(end)[11:] if same_day else _when(end)} UTC"
    drift = _drift(ref, current, monitor, label)
    traffic = [_traffic(b, w, ref, monitor) for b, w in zip(bounds, buckets.windows, strict=True)]
    traffic[-1] = traffic[-1].model_copy(update={"drifted_share": drift.drifted_share})
    task = ref.version.task
    performance = _performance(ws, endpoint, ref, bounds, task)
    metric = _decay_metric(spec, ref)
    decay = judge_decay(ref.version.metrics, performance, metric, monitor.decay, since=start)
    slos = _slos(monitor, traffic[-1], size)
    report = MonitorReport(
        endpoint=endpoint,
        model_ref=ref.version.ref,
        start=start,
        end=end,
        drift=drift,
        traffic=traffic,
        performance=performance,
        decay=decay,
        slos=slos,
    )
    alerts = _window_alerts(ws, report, monitor, ref, raise_new=raise_alerts)
    return report.model_copy(update={"alerts": alerts})


def offline_report(
    ws: Workspace,
    reference: str,
    current: str,
    spec: ProjectSpec | None = None,
    *,
    multivariate: bool = True,
    importance: Mapping[str, float] | None = None,
) -> MonitorReport:
    """Drift between any two data sets: dataset versions (`loans@3`) or files (CSV, Parquet…).

    Only feature columns are judged as features. The roles come from the dataset versions'
    schemas and the spec's `data:` section: the target is judged apart (label drift), the id,
    time and sensitive columns are left out (`drift.excluded` says why). Without `importance`
    the drifted share is a share of the features, and the report says so.
    """
    monitor = spec.monitor if spec is not None else MonitorSpec()
    ref_table, ref_label, ref_roles = _data(ws, reference, "reference")
    cur_table, cur_label, cur_roles = _data(ws, current, "current")
    roles = {**cur_roles, **ref_roles, **(_spec_roles(spec) if spec is not None else {})}
    roles = {name: role for name, role in roles.items() if name in ref_table.column_names}
    target = next((name for name, role in roles.items() if role == "target"), None)
    excluded = {
        name: ROLE_REASONS.get(role, f"{role} column")
        for name, role in roles.items()
        if role not in ("feature", "target")
    }
    if target is not None and target not in cur_table.column_names:
        excluded[target] = "target column; the current data has no labels"
        target = None
    columns = [c for c in ref_table.column_names if c not in roles or roles[c] == "feature"]
    cur_table = cur_table.drop_columns([c for c in cur_table.column_names if c in excluded])
    drift = drift_between(
        ref_table,
        cur_table,
        columns=columns,
        spec=monitor,
        importance=importance,
        multivariate=multivariate and monitor.multivariate is not None,
        label_column=target,
        excluded=excluded,
        reference_label=ref_label,
        current_label=cur_label,
    )
    return MonitorReport(drift=drift)


# Why a column with a role is not judged as a feature: an id is unique per row, time always
# moves on, and a sensitive column is for fairness slices, not a model input.
ROLE_REASONS = {"id": "id column", "time": "time column", "sensitive": "sensitive column"}


def _spec_roles(spec: ProjectSpec) -> dict[str, str]:
    data = spec.data
    roles = dict.fromkeys(data.sensitive, "sensitive")
    for role, name in (("target", data.target), ("id", data.id), ("time", data.time)):
        if name is not None:
            roles[name] = role
    return roles


# -- windows ------------------------------------------------------------------------------------


@dataclass
class _Window:
    sketch: WindowSketch
    prediction: WindowSketch | None
    rows: int = 0
    shadow_rows: int = 0
    errors: int = 0
    latency: list[np.ndarray] = field(default_factory=list)
    requests: set[str] = field(default_factory=set)
    sample: list[pd.DataFrame] = field(default_factory=list)
    sampled: int = 0


class _Buckets:
    """One pass over the log, split into windows: a sketch, latencies and a sample each."""

    def __init__(
        self, ref: Reference, bounds: Sequence[tuple[datetime, datetime]], *, sample_rows: int
    ) -> None:
        self.ref = ref
        self.edges = np.array([_np_time(b[0]) for b in bounds] + [_np_time(bounds[-1][1])])
        self.windows = [
            _Window(
                ref.sketch.empty_like(),
                ref.prediction_sketch.empty_like() if ref.prediction_sketch else None,
            )
            for _ in bounds
        ]
        self.sample_rows = sample_rows

    def add(self, chunk: LogChunk) -> None:
        last = len(self.windows) - 1
        if chunk.errors is not None and chunk.errors.any():
            failed = np.searchsorted(self.edges, chunk.at[chunk.errors], side="right") - 1
            for i in failed.tolist():
                if 0 <= i <= last:
                    self.windows[i].errors += 1
            chunk = chunk.answered()
        index = np.searchsorted(self.edges, chunk.at, side="right") - 1
        predicted = _chunk_predictions(chunk, self.ref) if self.ref.prediction_sketch else None
        for i in np.unique(index):
            if not 0 <= i <= last:
                continue
            mask = index == i
            part = {name: values[mask] for name, values in chunk.inputs.items()}
            win = self.windows[i]
            win.sketch.update(part, rows=int(mask.sum()))
            if win.prediction is not None and predicted is not None:
                win.prediction.update({PREDICTION: predicted[mask]})
            win.rows += int(mask.sum())
            ids = chunk.request_ids[mask]
            first = np.unique(ids, return_index=True)[1]
            win.requests.update(ids.tolist())
            win.latency.append(chunk.latency_ms[mask][first])
            if i == last and win.sampled < self.sample_rows:
                take = min(self.sample_rows - win.sampled, int(mask.sum()))
                win.sample.append(pd.DataFrame({k: v[:take] for k, v in part.items()}))
                win.sampled += take


def _drift(ref: Reference, win: _Window, monitor: MonitorSpec, label: str) -> DriftReport:
    drift = compare(
        ref.sketch,
        win.sketch,
        spec=monitor,
        importance=ref.importance or None,
        reference_label=ref.version.ref,
        current_label=label,
    )
    if win.prediction is not None and ref.prediction_sketch is not None and drift.note is None:
        pred = compare(ref.prediction_sketch, win.prediction, spec=monitor)
        drift = drift.model_copy(update={"prediction": pred.features[0] if pred.features else None})
    multivariate = monitor.multivariate
    if (
        multivariate is not None
        and drift.note is None
        and ref.sample is not None
        and win.sampled >= monitor.min_rows
    ):
        current = pd.concat(win.sample, ignore_index=True)
        joint = domain_classifier(
            ref.sample,
            _typed_like(current, ref.sample),
            ref.features,
            rows=multivariate.rows,
            threshold=multivariate.threshold,
        )
        drift = judged(drift, joint)  # joint drift alone drifts the window too
    return drift


def _traffic(
    bounds: tuple[datetime, datetime], win: _Window, ref: Reference, monitor: MonitorSpec
) -> WindowTraffic:
    latency = np.concatenate(win.latency) if win.latency else np.empty(0)
    share = None
    if win.rows >= monitor.min_rows:
        share = compare(ref.sketch, win.sketch, spec=monitor, importance=ref.importance or None)
    return WindowTraffic(
        start=bounds[0],
        end=bounds[1],
        requests=len(win.requests) + win.errors,
        rows=win.rows,
        errors=win.errors,
        shadow_rows=win.shadow_rows,
        p50_ms=float(np.percentile(latency, 50)) if latency.size else None,
        p99_ms=float(np.percentile(latency, 99)) if latency.size else None,
        drifted_share=share.drifted_share if share is not None else None,
    )


def _performance(
    ws: Workspace,
    endpoint: str,
    ref: Reference,
    bounds: Sequence[tuple[datetime, datetime]],
    task: str,
) -> list[WindowPerformance]:
    if task == "clustering":
        return []
    edges = np.array([_np_time(b[0]) for b in bounds] + [_np_time(bounds[-1][1])])
    truth: list[list[Any]] = [[] for _ in bounds]
    predicted: list[list[Any]] = [[] for _ in bounds]
    scores: list[list[Any]] = [[] for _ in bounds]
    for chunk in labelled(ws, endpoint, bounds[0][0], bounds[-1][1], version_id=ref.version.id):
        index = np.searchsorted(edges, chunk.at, side="right") - 1
        assert chunk.truth is not None
        for j, i in enumerate(index.tolist()):
            if 0 <= i < len(bounds):
                truth[i].append(chunk.truth[j])
                predicted[i].append(chunk.labels[j])
                scores[i].append(chunk.probabilities[j])
    out = []
    for (start, end), t, p, s in zip(bounds, truth, predicted, scores, strict=True):
        if not t:
            continue
        out.append(
            WindowPerformance(
                start=start, end=end, labelled=len(t), metrics=_metrics(task, ref, t, p, s)
            )
        )
    return out


def _metrics(
    task: str, ref: Reference, truth: list[Any], predicted: list[Any], scores: list[Any]
) -> dict[str, float]:
    try:
        if task == "regression":
            return compute(task, np.asarray(truth, float), np.asarray(predicted, float))
        classes = ref.classes or sorted({str(v) for v in truth + predicted})
        y_score = None
        if scores and all(isinstance(s, Mapping) for s in scores):
            y_score = np.array([[float(s.get(c, 0.0)) for c in classes] for s in scores])
        return compute(
            task,
            np.array([str(v) for v in truth], dtype=object),
            np.array([str(v) for v in predicted], dtype=object),
            y_score,
            labels=classes,
        )
    except Invalid as exc:
        log.warning("window metrics not computed: %s", exc.message)
        return {}


def _decay_metric(spec: ProjectSpec | None, ref: Reference) -> str | None:
    if spec is not None and spec.monitor.decay.metric:
        return spec.monitor.decay.metric
    if spec is not None:
        return spec.train.metric
    return ref.primary_metric


def judge_decay(
    registered: Mapping[str, float],
    performance: Sequence[WindowPerformance],
    metric: str | None,
    spec: DecaySpec,
    *,
    since: datetime,
) -> Decay | None:
    """`metric` over the labelled windows from `since` against its registered value; None
    when it was not registered or fewer than `spec.min_labels` rows have labels."""
    if metric is None or metric not in registered:
        return None
    recent = [w for w in performance if w.start >= since and metric in w.metrics]
    labelled_rows = sum(w.labelled for w in recent)
    if not recent or labelled_rows < spec.min_labels:
        return None
    current = sum(w.metrics[metric] * w.labelled for w in recent) / labelled_rows
    drop = (
        registered[metric] - current if greater_is_better(metric) else current - registered[metric]
    )
    return Decay(
        metric=metric,
        registered=registered[metric],
        current=current,
        drop=drop,
        threshold=spec.drop,
        labelled=labelled_rows,
        decayed=drop > spec.drop,
    )


def _slos(monitor: MonitorSpec, traffic: WindowTraffic, size: timedelta) -> list[SloResult]:
    slo = monitor.slo
    out = []
    if slo.p99_ms is not None:
        observed = traffic.p99_ms
        passed = observed is None or observed <= slo.p99_ms
        out.append(SloResult(name="p99_ms", limit=slo.p99_ms, observed=observed, passed=passed))
    if slo.error_rate is not None:
        rate = traffic.errors / traffic.requests if traffic.requests else None
        passed = rate is None or rate <= slo.error_rate
        out.append(SloResult(name="error_rate", limit=slo.error_rate, observed=rate, passed=passed))
    if slo.min_rps is not None:
        rps = traffic.requests / size.total_seconds()
        out.append(
            SloResult(name="min_rps", limit=slo.min_rps, observed=rps, passed=rps >= slo.min_rps)
        )
    return out


# -- alerts -------------------------------------------------------------------------------------


def _window_alerts(
    ws: Workspace, report: MonitorReport, monitor: MonitorSpec, ref: Reference, *, raise_new: bool
) -> list[Alert]:
    """The alerts of the window's findings: raised (and sent) now when `raise_new`, and those
    raised for the same window before, so the count always matches what is on record."""
    assert report.endpoint is not None and report.start is not None
    endpoint = report.endpoint
    assert report.end is not None
    # One alert of a kind per version and aligned window period, however often one looks.
    size = (report.end - report.start).total_seconds()
    stamp = f"{ref.version.id}:{int(report.end.timestamp() // size)}"
    found: list[tuple[str, str, dict[str, Any]]] = []
    drift = report.drift
    if drift.drifted and drift.features_drifted:
        found.append(
            (
                "drift",
                f"{endpoint}: {features_summary(drift)}",
                {"columns": drift.drifted_columns, "share": drift.drifted_share},
            )
        )
    mv = drift.multivariate
    if drift.drifted and mv is not None and mv.drifted:
        found.append(
            (
                "multivariate",
                f"{endpoint}: {joint_summary(mv, alone=not drift.features_drifted)}",
                {"auc": mv.auc, "top_features": mv.top_features},
            )
        )
    decay = report.decay
    if decay is not None and decay.decayed:
        found.append(
            (
                "decay",
                f"{endpoint}: {decay.metric} {decay.current:.4f} on {decay.labelled:,} labelled "
                f"rows, {decay.drop:.4f} worse than at registration ({decay.registered:.4f}; "
                f"threshold {decay.threshold:g})",
                decay.model_dump(mode="json"),
            )
        )
    for slo in report.slos:
        if not slo.passed:
            found.append(
                (
                    "slo",
                    f"{endpoint}: SLO {slo.name} broken: observed {slo.observed:.4g}, "
                    f"limit {slo.limit:g}",
                    slo.model_dump(mode="json"),
                )
            )
    # Every key this window can raise under: an alert raised earlier for a finding that no
    # longer holds (the window filled up since) is still the window's, and `alerts ls` has it.
    slo_names = get_args(SloResult.model_fields["name"].annotation)
    keys = [f"{endpoint}:{kind}:{stamp}" for kind in ("drift", "multivariate", "decay")]
    keys += [f"{endpoint}:slo:{stamp}:{name}" for name in slo_names]
    for kind, message, details in found if raise_new else []:
        key = f"{endpoint}:{kind}:{stamp}"
        if kind == "slo":
            key += f":{details['name']}"
        alert = raise_alert(ws, endpoint, kind, message, key=key, details=details)  # type: ignore[arg-type]
        if alert is not None and monitor.webhooks:
            # Short: a dead webhook must not hold up the loop's next turn for long.
            deliver_alert(
                ws,
                alert,
                monitor.webhooks,
                allow_private=monitor.allow_private_webhooks,
                timeout=3.0,
                retries=1,
            )
    return alerts_with_keys(ws, keys)


# -- helpers ------------------------------------------------------------------------------------


def _primary_metric(ws: Workspace, version: ModelVersion) -> str | None:
    if version.run_id is None:
        return None
    try:
        metric = get_run(ws, version.run_id).params.get("metric")
    except ShipyardError:
        return None
    return metric if isinstance(metric, str) else None


def _importance(ws: Workspace, version: ModelVersion) -> dict[str, float]:
    if "evaluation.json" not in version.documents:
        return {}
    try:
        evaluation = json.loads(get_document(ws, version.ref, "evaluation.json"))
    except (ShipyardError, ValueError):
        return {}
    raw = evaluation.get("importance") or {}
    return {k: float(v) for k, v in raw.items() if k in version.signature.names}


def _sample(table: pa.Table, rows: int, seed: int = 0) -> pd.DataFrame:
    if table.num_rows > rows:
        picked = np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False))
        table = table.take(pa.array(picked))
    return table.to_pandas()


def _predict(ws: Workspace, version: ModelVersion, frame: pd.DataFrame) -> np.ndarray:
    model = load_model(ws, version.ref)
    if version.task == "classification":
        classes = list(getattr(model.pipeline, "classes_", []))
        if len(classes) == 2:
            return np.asarray(model.pipeline.predict_proba(frame))[:, -1]
        return np.asarray([str(v) for v in model.pipeline.predict(frame)], dtype=object)
    return np.asarray(model.pipeline.predict(frame))


def _chunk_predictions(chunk: LogChunk, ref: Reference) -> np.ndarray:
    if ref.version.task == "classification":
        if chunk.scores is not None and ref.classes is not None and len(ref.classes) == 2:
            return chunk.scores
        return np.array([None if v is None else str(v) for v in chunk.labels], dtype=object)
    return np.array([np.nan if v is None else float(v) for v in chunk.labels], dtype=float)


def _typed_like(current: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Logged JSON values back to the reference's column types (numbers, text, times)."""
    out = {}
    for name in reference.columns:
        values = current[name] if name in current else pd.Series([None] * len(current))
        kind = reference[name].dtype
        if pd.api.types.is_datetime64_any_dtype(kind):
            out[name] = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(None)
        elif pd.api.types.is_bool_dtype(kind) or pd.api.types.is_numeric_dtype(kind):
            out[name] = pd.to_numeric(values, errors="coerce")
        else:
            out[name] = values.astype(object)
    return pd.DataFrame(out)


def _data(ws: Workspace, location: str, what: str) -> tuple[pa.Table, str, dict[str, str]]:
    """The data, its label, and the column roles a dataset version declares (none for files)."""
    if Path(location).exists():
        source = open_source(location)
        batches = list(source.batches())
        if not batches:
            raise Invalid(f"the {what} data {location!r} has no rows.")
        return pa.Table.from_batches(batches), source.label, {}
    if "@" in location or "/" not in location:
        try:
            version = get_dataset_version(ws, location)
        except NotFound as exc:
            raise NotFound(
                f"the {what} {location!r} is neither a file nor a dataset version: {exc.message}"
            ) from exc
        roles = {c.name: str(c.role) for c in version.schema_.columns if c.role != "feature"}
        return read_table(ws, version), version.ref, roles
    raise NotFound(f"the {what} file {location!r} does not exist; check the path.")


def _sample_rows(monitor: MonitorSpec) -> int:
    return monitor.multivariate.rows if monitor.multivariate is not None else 0


def _np_time(value: datetime) -> np.datetime64:
    return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "us")


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


__all__ = [
    "Reference",
    "endpoint_report",
    "judge_decay",
    "load_reference",
    "offline_report",
]
