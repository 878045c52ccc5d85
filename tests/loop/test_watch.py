"""Monitoring an endpoint from its prediction log: drift, decay, SLOs, history and alerts.

Real models answer real (synthetic) customers; the answers go through the real prediction log
into SQLite (and PostgreSQL), feedback labels through `record_feedback`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from loop_cases import ENDPOINT, drifted, label, log_traffic, served
from projects import customers, spec_dict
from shipyard.core.errors import Invalid, NotFound
from shipyard.core.spec import parse_spec
from shipyard.data import ingest
from shipyard.loop.policies import check_policies
from shipyard.loop.watch import endpoint_report, load_reference, offline_report
from shipyard.monitor import list_alerts
from shipyard.serve.predlog import PredictionLog
from shipyard.store.workspace import Workspace


def test_steady_traffic_is_not_drift(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    same = customers(600, seed=21)
    ids = log_traffic(workspace, setup.champion, same)
    label(workspace, ids, same)

    report = endpoint_report(workspace, ENDPOINT, setup.spec)

    assert report.model_ref == "churn@1"
    assert report.drift.current_rows == 600
    assert report.drift.note is None
    assert not report.drift.drifted, report.drift.drifted_columns
    assert report.traffic[-1].requests == 600
    assert report.traffic[-1].p99_ms == pytest.approx(2.0)
    assert report.decay is not None and not report.decay.decayed
    assert report.decay.labelled == 600
    assert report.alerts == []


def test_drifted_traffic_is_flagged_with_decay_and_alerts(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    ws = any_workspace
    setup = served(ws, tmp_path / "p")
    shifted = drifted(800)
    ids = log_traffic(ws, setup.champion, shifted)
    assert label(ws, ids, shifted) == 800

    report = endpoint_report(ws, ENDPOINT, setup.spec, raise_alerts=True)

    drift = report.drift
    assert drift.drifted
    assert {"tenure", "plan"} <= set(drift.drifted_columns)
    assert "region" not in drift.drifted_columns  # its distribution did not change
    tenure = next(f for f in drift.features if f.column == "tenure")
    assert tenure.kind == "numeric" and tenure.score > tenure.threshold
    assert len(tenure.bins) == len(tenure.reference_share) == len(tenure.current_share)
    assert drift.prediction is not None  # the model's outputs moved too
    assert drift.multivariate is not None and drift.multivariate.auc > 0.8
    decay = report.decay
    assert decay is not None and decay.metric == "roc_auc"
    assert decay.decayed and decay.drop > 0.05
    assert report.performance[-1].labelled == 800
    kinds = {a.kind for a in report.alerts}
    assert {"drift", "decay"} <= kinds
    assert {a.kind for a in list_alerts(ws, ENDPOINT)} >= {"drift", "decay"}

    again = endpoint_report(ws, ENDPOINT, setup.spec, raise_alerts=True)
    assert again.alerts == report.alerts  # one alert per window, not one per look
    assert len(list_alerts(ws, ENDPOINT)) == len(report.alerts)
    looked = endpoint_report(ws, ENDPOINT, setup.spec)  # a look that raises nothing
    assert [a.id for a in looked.alerts] == [a.id for a in report.alerts]


def test_a_window_without_traffic_says_so_and_raises_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    setup = served(workspace, tmp_path / "p")
    old = log_traffic(
        workspace, setup.champion, drifted(300), at=datetime.now(UTC) - timedelta(hours=5)
    )
    assert old

    report = endpoint_report(workspace, ENDPOINT, setup.spec, raise_alerts=True)

    assert report.drift.current_rows == 0
    assert not report.drift.drifted
    assert report.drift.note is not None and "traffic" in report.drift.note
    assert report.alerts == [] and list_alerts(workspace, ENDPOINT) == []
    assert sum(w.rows for w in report.traffic) == 300  # the history still shows it
    assert report.traffic[-1].rows == 0


def test_history_windows_split_the_traffic(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    now = datetime.now(UTC)
    log_traffic(workspace, setup.champion, customers(150, seed=5), at=now - timedelta(hours=2.5))
    log_traffic(workspace, setup.champion, drifted(200), at=now - timedelta(minutes=30), prefix="d")

    report = endpoint_report(workspace, ENDPOINT, setup.spec, end=now, history=4)

    assert [w.rows for w in report.traffic] == [0, 150, 0, 200]
    assert report.traffic[1].drifted_share is not None
    assert report.traffic[1].drifted_share < report.traffic[3].drifted_share  # type: ignore[operator]


def test_unknown_endpoint_and_missing_reference(workspace: Workspace, tmp_path: Path) -> None:
    served(workspace, tmp_path / "p")
    with pytest.raises(NotFound, match=r"endpoint 'nope' does not exist.*churn"):
        endpoint_report(workspace, "nope")
    with pytest.raises(NotFound, match="churn@9"):
        load_reference(workspace, "churn@9")


def test_offline_report_between_two_files(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    reference = tmp_path / "ref.parquet"
    current = tmp_path / "cur.csv"
    customers(2_000, seed=1).to_parquet(reference)
    shifted = drifted(2_000)
    shifted["extra"] = 1
    shifted.to_csv(current, index=False)

    report = offline_report(workspace, str(reference), str(current), setup.spec)

    assert {"tenure", "plan"} <= set(report.drift.drifted_columns)
    judged = {f.column for f in report.drift.features}
    assert not judged & {"churned", "customer_id", "signed_at"}  # target, id and time are not
    assert report.drift.ignored_columns == ["extra"]

    by_version = offline_report(workspace, "customers@1", str(current), setup.spec)
    assert by_version.drift.reference == "customers@1"


def test_offline_report_refuses_missing_columns(workspace: Workspace, tmp_path: Path) -> None:
    setup = served(workspace, tmp_path / "p")
    current = tmp_path / "cur.csv"
    customers(300, seed=1).drop(columns=["plan", "spend"]).to_csv(current, index=False)
    with pytest.raises(Invalid, match="plan"):
        offline_report(workspace, "customers@1", str(current), setup.spec)
    with pytest.raises(NotFound, match="neither a file nor a dataset version"):
        offline_report(workspace, "nothing@1", str(current), setup.spec)


def test_labels_are_matched_to_the_version_that_answered(
    workspace: Workspace, tmp_path: Path
) -> None:
    setup = served(workspace, tmp_path / "p")
    frame = customers(200, seed=8)
    ids = log_traffic(workspace, setup.champion, frame)
    label(workspace, ids[:120], frame.iloc[:120])

    report = endpoint_report(workspace, ENDPOINT, setup.spec)

    assert sum(w.labelled for w in report.performance) == 120
    without_spec = endpoint_report(workspace, ENDPOINT)  # decay on the run's own metric
    assert without_spec.decay is not None and without_spec.decay.metric == "roc_auc"
    assert isinstance(report.performance[-1].metrics.get("accuracy"), float)
    assert pd.notna(report.performance[-1].metrics["accuracy"])


def test_server_failures_count_against_the_error_rate_slo(
    workspace: Workspace, tmp_path: Path
) -> None:
    setup = served(workspace, tmp_path / "p", monitor={"slo": {"error_rate": 0.01, "p99_ms": 50}})
    log_traffic(workspace, setup.champion, customers(190, seed=2))
    failures = [
        {
            "request_id": f"e{i}",
            "endpoint": ENDPOINT,
            "version_id": setup.champion.id,
            "at": datetime.now(UTC) - timedelta(minutes=10),
            "latency_ms": 30.0,
            "row": 0,
            "inputs": None,
            "outputs": {"error": 500, "message": "model crashed"},
        }
        for i in range(10)
    ]
    with PredictionLog(workspace) as log:
        log.append(failures)

    report = endpoint_report(workspace, ENDPOINT, setup.spec, raise_alerts=True)

    traffic = report.traffic[-1]
    assert (traffic.requests, traffic.errors, traffic.rows) == (200, 10, 190)
    assert report.drift.current_rows == 190  # failures are not inputs to judge
    slos = {s.name: s for s in report.slos}
    assert slos["error_rate"].observed == pytest.approx(0.05) and not slos["error_rate"].passed
    assert slos["p99_ms"].passed  # failures' latencies are not answers' latencies
    assert [a.kind for a in report.alerts] == ["slo"]
    assert "error_rate" in report.alerts[0].message


def test_offline_report_judges_only_features_and_says_what_the_share_is(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Roles come from the dataset version (ingested without a spec): the id and time are left
    out, the target is label drift, and with no model the share is a share of the features."""
    source = tmp_path / "customers.csv"
    customers(1_500, seed=1).to_csv(source, index=False)
    ingest(workspace, source, name="people", target="churned", id="customer_id", time="signed_at")
    current = tmp_path / "new.parquet"
    shifted = drifted(1_500)
    shifted["churned"] = "yes"  # every new customer churned: label drift, not a feature's
    shifted.to_parquet(current)

    drift = offline_report(workspace, "people@1", str(current)).drift

    judged = {f.column for f in drift.features}
    assert judged == {"tenure", "spend", "plan", "region", "sex"}
    assert drift.excluded == {"customer_id": "id column", "signed_at": "time column"}
    assert drift.label is not None and drift.label.column == "churned" and drift.label.drifted
    assert drift.multivariate is not None
    assert "churned" not in drift.multivariate.top_features  # the label is not a feature
    assert not drift.by_importance
    moved = len(drift.drifted_columns)
    assert drift.drifted_share == pytest.approx(moved / 5)
    assert drift.reasons[0] == (
        f"{moved} of 5 features drifted ({moved / 5:.0%} of the features; threshold 20%): "
        + ", ".join(drift.drifted_columns)
    )
    assert not any("importance" in reason for reason in drift.reasons)

    # The spec's roles count as well: a sensitive column is not a feature either.
    spec = parse_spec(yaml.safe_dump(spec_dict()), base_dir=tmp_path)
    with_spec = offline_report(workspace, str(source), str(current), spec).drift
    assert "sex" not in {f.column for f in with_spec.features}
    assert with_spec.excluded["sex"] == "sensitive column"


def test_joint_drift_alone_drifts_the_window_alerts_and_calls_for_a_retrain(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Spend follows the plan the other way round: every column's distribution is unchanged,
    only how plan and spend move together, which the domain classifier sees."""
    setup = served(workspace, tmp_path / "p")
    flipped = customers(1_000, seed=31)
    noise = np.random.default_rng(31).normal(0, 5, len(flipped))
    spend = 20 + 15 * (flipped["plan"] == "basic") + noise  # half the plans are basic
    flipped["spend"] = spend.round(2).where(flipped["spend"].notna())  # same gaps
    log_traffic(workspace, setup.champion, flipped)

    report = endpoint_report(workspace, ENDPOINT, setup.spec, raise_alerts=True)

    drift = report.drift
    assert not drift.features_drifted, drift.drifted_columns
    assert drift.multivariate is not None and drift.multivariate.drifted
    assert drift.drifted
    [reason] = drift.reasons
    assert reason.startswith("joint drift: a domain classifier tells current rows from reference")
    assert "mostly by spend" in reason or "mostly by plan" in reason
    assert [a.kind for a in report.alerts] == ["multivariate"]
    assert report.alerts[0].message == f"{ENDPOINT}: {reason}"

    triggers = check_policies(
        setup.spec, setup.champion, report, now=datetime.now(UTC), last_retrain=None
    )
    assert [t.policy for t in triggers] == ["drift"]
    assert triggers[0].reason == f"drift: {reason}"
