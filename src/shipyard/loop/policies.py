"""Retrain policies: the spec's `retrain.when`, judged against a monitoring report.

    retrain:
      when:
        - drift                               # the window drifted: features or joint
        - decay                               # the primary metric dropped (monitor.decay)
        - {every: 7d}                         # a schedule
        - {drift: {features: [temp, dewp], threshold: 0.5}}
        - {decay: {metric: roc_auc, drop: 0.02, min_labels: 200}}

`check_policies()` names every policy whose condition holds, with the evidence in words; an
unknown feature or metric in a policy is a `SpecError` naming its key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shipyard.core.errors import Invalid, SpecError
from shipyard.core.records import Decay, DriftReport, ModelVersion, MonitorReport
from shipyard.core.spec import (
    DecayPolicy,
    DriftPolicy,
    EverySpec,
    ProjectSpec,
    parse_duration,
)
from shipyard.evaluate.metrics import check_metric
from shipyard.loop.watch import judge_decay
from shipyard.monitor import check_webhook_url
from shipyard.monitor.drift import judged


@dataclass(frozen=True)
class Trigger:
    policy: str  # drift | decay | schedule
    reason: str


def check_spec_policies(spec: ProjectSpec, model: ModelVersion) -> None:
    """SpecError for a policy naming a feature the model lacks or an unknown metric, or a
    webhook that may not be called (a private or link-local address)."""
    features = set(model.signature.names)
    for i, policy in enumerate(spec.retrain.when):
        if isinstance(policy, DriftPolicy) and policy.drift.features:
            unknown = [f for f in policy.drift.features if f not in features]
            if unknown:
                raise SpecError(
                    f"retrain.when[{i}].drift.features: {', '.join(map(repr, unknown))} "
                    f"{'is' if len(unknown) == 1 else 'are'} not a feature of {model.ref}; "
                    f"its features are {', '.join(sorted(features))}."
                )
        if isinstance(policy, DecayPolicy) and policy.decay.metric:
            _metric(model.task, policy.decay.metric, f"retrain.when[{i}].decay.metric")
    metric = spec.monitor.decay.metric
    if metric:
        _metric(model.task, metric, "monitor.decay.metric")
    for i, url in enumerate(spec.monitor.webhooks):
        try:
            check_webhook_url(url, allow_private=spec.monitor.allow_private_webhooks)
        except Invalid as exc:
            raise SpecError(f"monitor.webhooks[{i}]: {exc.message}") from exc


def check_policies(
    spec: ProjectSpec,
    model: ModelVersion,
    report: MonitorReport,
    *,
    now: datetime,
    last_retrain: datetime | None,
) -> list[Trigger]:
    """The policies that call for a retrain now, each with the evidence."""
    check_spec_policies(spec, model)
    out: list[Trigger] = []
    for policy in spec.retrain.when:
        trigger = None
        if policy == "drift":
            trigger = _drift(report.drift, None, None)
        elif policy == "decay":
            trigger = _decayed(report.decay)
        elif isinstance(policy, DriftPolicy):
            trigger = _drift(report.drift, policy.drift.features, policy.drift.threshold)
        elif isinstance(policy, DecayPolicy):
            trigger = _decayed(_decay_for(report, model, policy))
        elif isinstance(policy, EverySpec):
            trigger = _schedule(policy.every, model, now, last_retrain)
        if trigger is not None:
            out.append(trigger)
    return out


def _drift(
    drift: DriftReport, features: Sequence[str] | None, threshold: float | None
) -> Trigger | None:
    """The window's verdict (per-feature share or joint drift, the report's own reasons), or,
    for a policy naming features, the importance share of those that drifted."""
    if drift.note is not None:
        return None
    if features is None:
        if threshold is not None and threshold != drift.threshold:
            drift = judged(drift.model_copy(update={"threshold": threshold}))
        if not drift.drifted:
            return None
        return Trigger("drift", "drift: " + "; ".join(drift.reasons))
    watched = [f for f in drift.features if f.column in features]
    weights = {f.column: f.importance if f.importance is not None else 1.0 for f in watched}
    total = sum(weights.values()) or 1.0
    share = sum(weights[f.column] for f in watched if f.drifted) / total
    limit = threshold if threshold is not None else drift.threshold or 0.0
    if share < limit:
        return None
    columns = ", ".join(f.column for f in watched if f.drifted) or "none"
    what = "carry {:.0%} of their importance" if drift.by_importance else "are {:.0%} of them"
    return Trigger(
        "drift",
        f"drift: the watched features that drifted {what.format(share)} "
        f"(threshold {limit:.0%}): {columns}",
    )


def _decayed(decay: Decay | None) -> Trigger | None:
    if decay is None or not decay.decayed:
        return None
    return Trigger(
        "decay",
        f"decay: {decay.metric} {decay.current:.4f} on {decay.labelled:,} labelled rows is "
        f"{decay.drop:.4f} worse than the registered {decay.registered:.4f} (threshold "
        f"{decay.threshold:g})",
    )


def _decay_for(report: MonitorReport, model: ModelVersion, policy: DecayPolicy) -> Decay | None:
    metric = policy.decay.metric or (report.decay.metric if report.decay else None)
    if report.start is None:
        return None
    return judge_decay(model.metrics, report.performance, metric, policy.decay, since=report.start)


def _schedule(
    every: str, model: ModelVersion, now: datetime, last_retrain: datetime | None
) -> Trigger | None:
    period = parse_duration(every, what="retrain.when.every")
    since = last_retrain or model.created_at
    if now - since < period:
        return None
    return Trigger(
        "schedule", f"schedule: every {every}; the last retrain was {since:%Y-%m-%d %H:%M}"
    )


def _metric(task: str, name: str, key: str) -> None:
    try:
        check_metric(task, name)
    except Invalid as exc:
        raise SpecError(f"{key}: {exc.message}") from exc
