"""Monitoring an endpoint from its prediction log: drift, decay, SLOs, history and alerts.

Real models answer real (synthetic) customers; the answers go through the real prediction log
into SQLite (and PostgreSQL), feedback labels through `record_feedback`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from loop_cases import ENDPOINT, drifted, label, log_traffic, served
from projects import customers
from shipyard.core.errors import Invalid, NotFound
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
