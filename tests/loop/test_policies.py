"""Retrain policies judged against a monitoring report: which hold, and the evidence in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import yaml

from shipyard.core.records import ModelVersion, MonitorReport
from shipyard.core.spec import ProjectSpec, parse_spec
from shipyard.loop.policies import check_policies
from shipyard.monitor import drift_between

NOW = datetime(2025, 3, 1, tzinfo=UTC)
COLUMNS = ["a", "b", "c", "d", "e"]


def model() -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "id": "mv_1", "model": "m", "version": 1, "status": "candidate",
            "task": "regression", "flavor": "sklearn", "artifact": "0" * 64,
            "signature": {
                "inputs": [{"name": n, "dtype": "float64"} for n in COLUMNS],
                "output": "number",
            },
            "created_at": NOW, "created_by": "local:test",
        }
    )  # fmt: skip


def spec(*when: Any) -> ProjectSpec:
    raw = {
        "project": "m",
        "data": {"source": "data.csv", "target": "y"},
        "train": {"candidates": [{"estimator": "sklearn.linear_model.Ridge"}]},
        "retrain": {"when": list(when)},
    }
    return parse_spec(yaml.safe_dump(raw))


def one_of_five_drifted() -> MonitorReport:
    """Column `a` moves by a full standard deviation; the other four stay: 20% of the features."""
    rows = 4_000
    base = pd.DataFrame({n: range(rows) for n in COLUMNS}).astype(float)
    reference = base.sample(frac=1.0, random_state=1).reset_index(drop=True)
    current = base.sample(frac=1.0, random_state=2).reset_index(drop=True)
    current["a"] += base["a"].std()
    drift = drift_between(reference, current, multivariate=False)
    assert drift.drifted_columns == ["a"] and drift.drifted_share == pytest.approx(0.2)
    return MonitorReport(drift=drift)


def test_a_drift_policy_with_its_own_threshold_uses_it() -> None:
    report = one_of_five_drifted()
    [plain] = check_policies(spec("drift"), model(), report, now=NOW, last_retrain=None)
    assert plain.reason == "drift: 1 of 5 features drifted (20% of the features; threshold 20%): a"
    stricter = spec({"drift": {"threshold": 0.5}})
    assert check_policies(stricter, model(), report, now=NOW, last_retrain=None) == []
    looser = spec({"drift": {"threshold": 0.1}})
    [held] = check_policies(looser, model(), report, now=NOW, last_retrain=None)
    assert held.reason == "drift: 1 of 5 features drifted (20% of the features; threshold 10%): a"


def test_a_drift_policy_on_named_features_says_what_its_share_is_of() -> None:
    report = one_of_five_drifted()
    watched = spec({"drift": {"features": ["a", "b"], "threshold": 0.5}})
    [held] = check_policies(watched, model(), report, now=NOW, last_retrain=None)
    assert held.reason == (
        "drift: the watched features that drifted are 50% of them (threshold 50%): a"
    )
