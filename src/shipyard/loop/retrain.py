"""Retrain: a new training set from production, a candidate, and the proof it is better.

`retrain()` is one trip from "the monitor says so" to "a candidate worth shadowing":

1. the training set: the dataset's latest version plus the production rows that received a
   label in the last `retrain.windows` windows, ingested as a new dataset version whose lineage
   names its parent and the endpoint (the newest labelled rows are held out for step 3);
2. `train_and_register()` with the project spec (search, gates, registration);
3. the candidate and the champion scored on the same recent labelled rows the candidate never
   saw (or, with too few, on the candidate's own held-out split); the candidate goes on only if
   it passed every gate and beats the champion by `retrain.margin` on the primary metric.

Every outcome is a rollout stage with its reason (see `rollouts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.core.errors import ShipyardError
from shipyard.core.records import DatasetVersion, ModelVersion, Rollout
from shipyard.core.spec import ProjectSpec, parse_duration
from shipyard.data import get_dataset, get_version_by_id, ingest, read_table
from shipyard.data import get_version as get_dataset_version
from shipyard.evaluate.metrics import compute, greater_is_better
from shipyard.loop.pipeline import train_and_register
from shipyard.loop.rollout import begin
from shipyard.loop.rollouts import advance, start_rollout
from shipyard.monitor.window import labelled
from shipyard.registry import get_version, load_model
from shipyard.serve.endpoints import get_endpoint
from shipyard.store.workspace import Workspace
from shipyard.train.search import OnTrial

log = logging.getLogger("shipyard.loop.retrain")

HOLDOUT_SHARE = 0.3
MIN_COMPARE = 50


@dataclass
class Comparison:
    metric: str
    candidate: float
    champion: float
    rows: int
    on: str  # which data: "recent labelled production rows" or the candidate's test split

    @property
    def improvement(self) -> float:
        diff = self.candidate - self.champion
        return diff if greater_is_better(self.metric) else -diff


def retrain(
    ws: Workspace,
    spec: ProjectSpec,
    endpoint: str,
    *,
    trigger: str,
    reason: str,
    trials: int | None = None,
    now: datetime | None = None,
    on_trial: OnTrial | None = None,
) -> Rollout:
    """Retrain for `endpoint`; returns the rollout in stage `shadow`/`canary` or `rejected`.

    `on_trial` is called after each search trial (for a progress display).
    """
    route = get_endpoint(ws, endpoint)
    rollout = start_rollout(
        ws, endpoint, trigger=trigger, champion_ref=route.champion_ref, reason=reason
    )
    try:
        return _retrain(
            ws, spec, rollout, trials=trials, now=now or datetime.now(UTC), on_trial=on_trial
        )
    except ShipyardError as exc:
        return advance(
            ws, rollout.id, "failed", f"retrain failed: {exc.message}", expect="retraining"
        )
    except Exception as exc:  # recorded, then re-raised: a bug must not leave it "retraining"
        advance(ws, rollout.id, "failed", f"retrain failed: {exc!r}", expect="retraining")
        raise


def _retrain(
    ws: Workspace,
    spec: ProjectSpec,
    rollout: Rollout,
    *,
    trials: int | None,
    now: datetime,
    on_trial: OnTrial | None,
) -> Rollout:
    champion = get_version(ws, rollout.champion_ref)
    base = (
        get_version_by_id(ws, champion.dataset_version_id)
        if champion.dataset_version_id is not None
        else get_dataset_version(ws, f"{spec.dataset_name}@latest")
    )
    size = parse_duration(spec.monitor.window, what="monitor.window")
    since = now - size * spec.retrain.windows
    recent = production_rows(ws, rollout.endpoint, base, since=since, until=now)
    train_rows, holdout = _split_recent(recent)
    version = _training_set(ws, spec, base, train_rows, rollout.endpoint)
    rollout = advance(
        ws,
        rollout.id,
        "retraining",
        f"training set {version.ref}: {base.ref} plus {len(train_rows):,} labelled production "
        f"rows ({len(holdout):,} newer ones held out to compare)",
        dataset_ref=version.ref,
        expect="retraining",
        details={"dataset": version.ref, "production_rows": len(train_rows)},
    )
    recent_test = len(holdout) >= MIN_COMPARE
    outcome = train_and_register(
        ws,
        spec,
        dataset=version.ref,
        trials=trials,
        on_trial=on_trial,
        description=f"Retrained for endpoint {rollout.endpoint} ({rollout.trigger}).",
        test=holdout if recent_test else None,
        test_label="recent labelled production rows",
    )
    candidate = outcome.model
    fields = {"candidate_ref": candidate.ref, "candidate_id": candidate.id}
    failed = [g for g in outcome.gates if not g.passed]
    if failed:
        gates = "; ".join(f"{g.gate} ({g.detail})" if g.detail else g.gate for g in failed)
        return advance(
            ws,
            rollout.id,
            "rejected",
            f"candidate {candidate.ref} failed its gates: {gates}",
            expect="retraining",
            details={"failed_gates": [g.gate for g in failed]},
            **fields,
        )
    target = outcome.result.target
    if recent_test and target is not None:
        frame, on = holdout, f"{len(holdout):,} recent labelled production rows it never saw"
    else:
        frame = outcome.result.split.test
        on = f"the candidate's held-out split ({len(frame):,} rows of {version.ref})"
    comparison = compare_models(
        ws, candidate, champion, frame, target=target or "", metric=outcome.result.metric, on=on
    )
    margin = spec.retrain.margin
    details = {
        "metric": comparison.metric,
        "candidate": comparison.candidate,
        "champion": comparison.champion,
        "rows": comparison.rows,
        "margin": margin,
    }
    verdict = (
        f"{comparison.metric} {comparison.candidate:.4f} vs the champion's "
        f"{comparison.champion:.4f} on {on}"
    )
    if not comparison.improvement > margin:
        return advance(
            ws,
            rollout.id,
            "rejected",
            f"candidate {candidate.ref} does not beat the champion by the margin {margin:g}: "
            f"{verdict}",
            expect="retraining",
            details=details,
            **fields,
        )
    rollout = advance(
        ws,
        rollout.id,
        "retraining",
        f"candidate {candidate.ref} passed every gate and beats the champion: {verdict}",
        expect="retraining",
        details=details,
        **fields,
    )
    if rollout.stage != "retraining":  # stopped by a person while it trained
        return rollout
    return begin(ws, spec, rollout)


def production_rows(
    ws: Workspace,
    endpoint: str,
    base: DatasetVersion,
    *,
    since: datetime | None,
    until: datetime | None,
) -> pd.DataFrame:
    """Labelled production rows shaped like `base` (its columns and types), oldest first.

    The label goes in the target column and the dataset's time column gets the prediction's
    time; the id column stays empty (`_training_set` numbers the rows).
    """
    dataset = get_dataset(ws, base.dataset)
    names = [c.name for c in base.schema_.columns]
    parts: list[pd.DataFrame] = []
    for chunk in labelled(ws, endpoint, since, until, features=names, shadow=False):
        data: dict[str, Any] = dict(chunk.inputs)
        if dataset.target is not None and chunk.truth is not None:
            data[dataset.target] = chunk.truth
        if dataset.time_column is not None:
            data[dataset.time_column] = chunk.at
        parts.append(pd.DataFrame(data))
    schema = read_table(ws, base).schema
    if not parts:
        return schema.empty_table().to_pandas()
    frame = pd.concat(parts, ignore_index=True)
    return _as_schema(frame, schema).to_pandas()


def _split_recent(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest rows to train on, the newest `HOLDOUT_SHARE` to compare on (by time)."""
    if len(frame) < 2 * MIN_COMPARE:
        return frame, frame.iloc[:0]
    cut = int(len(frame) * (1 - HOLDOUT_SHARE))
    return frame.iloc[:cut], frame.iloc[cut:]


def _training_set(
    ws: Workspace, spec: ProjectSpec, base: DatasetVersion, extra: pd.DataFrame, endpoint: str
) -> DatasetVersion:
    """`base` plus `extra` rows, ingested as the dataset's next version (lineage: base)."""
    if extra.empty:
        return base
    table = read_table(ws, base)
    dataset = get_dataset(ws, base.dataset)
    extra = extra.copy()
    if dataset.id_column is not None:
        extra[dataset.id_column] = _new_ids(table, dataset.id_column, len(extra))
    added = _as_schema(extra, table.schema)
    combined = pa.concat_tables([table, added])
    path = ws.scratch / f"retrain-{endpoint}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.parquet"
    pq.write_table(combined, path)
    try:
        result = ingest(
            ws,
            path,
            name=base.dataset,
            target=dataset.target,
            id=dataset.id_column,
            time=dataset.time_column,
            sensitive=dataset.sensitive,
            contract=spec.data.contract,
            parent=base.id,
            label=f"shipyard loop: {base.ref} + {len(extra):,} labelled rows of endpoint "
            f"{endpoint}",
        )
    finally:
        path.unlink(missing_ok=True)
    return result.version


def _new_ids(table: pa.Table, column: str, count: int) -> list[Any]:
    """Ids for added rows that no row of `table` has: numbers after the largest, or text."""
    kind = table.schema.field(column).type
    if pa.types.is_integer(kind):
        top = pc.max(table.column(column)).as_py() or 0
        return list(range(top + 1, top + 1 + count))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return [f"loop-{stamp}-{i}" for i in range(count)]


def _as_schema(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Logged JSON values (numbers, text, ISO times) as arrays of the dataset's types."""
    arrays = []
    n = len(frame)
    for f in schema:
        values = frame[f.name] if f.name in frame else pd.Series([None] * n, dtype=object)
        if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type):
            series = pd.to_datetime(values, errors="coerce", utc=True)
            if getattr(f.type, "tz", None) is None:
                series = series.dt.tz_convert(None)
            arrays.append(pa.array(series, from_pandas=True).cast(f.type, safe=False))
        elif pa.types.is_boolean(f.type):
            arrays.append(pa.array([_bool(v) for v in values], type=pa.bool_()))
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            numbers = pd.to_numeric(values, errors="coerce")
            arrays.append(pa.array(numbers, from_pandas=True).cast(f.type, safe=False))
        else:
            arrays.append(
                pa.array([None if v is None else str(v) for v in values], type=pa.string())
            )
    return pa.Table.from_arrays(arrays, schema=schema)


def _bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def compare_models(
    ws: Workspace,
    candidate: ModelVersion,
    champion: ModelVersion,
    frame: pd.DataFrame,
    *,
    target: str,
    metric: str,
    on: str,
) -> Comparison:
    """Both versions' `metric` on the same labelled rows."""
    features = candidate.signature.names
    values = {}
    for version in (candidate, champion):
        model = load_model(ws, version.ref)
        values[version.id] = _score(version, model.pipeline, frame[features], frame[target], metric)
    return Comparison(
        metric=metric,
        candidate=values[candidate.id],
        champion=values[champion.id],
        rows=len(frame),
        on=on,
    )


def _score(
    version: ModelVersion, pipeline: Any, X: pd.DataFrame, y: pd.Series, metric: str
) -> float:
    if version.task == "regression":
        predicted = pipeline.predict(X)
        return compute("regression", y.astype(float), predicted, only=metric)[metric]
    classes = list(getattr(pipeline, "classes_", []))
    predicted = pipeline.predict(X)
    proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
    labels = [str(c) for c in classes]
    y_true = np.array([str(_label(v, classes)) for v in y], dtype=object)
    y_pred = np.array([str(v) for v in predicted], dtype=object)
    result = compute("classification", y_true, y_pred, proba, labels=labels, only=metric)
    return result.get(metric, float("nan"))


def _label(value: Any, classes: list[Any]) -> Any:
    """A fed-back label in the model's class type (JSON gives 1 for True, '1' for 1…)."""
    for c in classes:
        if value == c or str(value) == str(c):
            return c
        if isinstance(c, (bool, np.bool_)) and isinstance(value, str):
            if value.strip().lower() in ("true", "1") and c:
                return c
            if value.strip().lower() in ("false", "0") and not c:
                return c
    return value
