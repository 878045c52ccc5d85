"""`shipyard monitor report` as a user reads it: at 80 and 100 columns, offline and for an
endpoint, saying what it judged and why."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from loop_cases import drifted
from projects import customers
from shipyard.cli.app import main
from shipyard.cli.monitor import render
from shipyard.core.records import (
    Alert,
    Decay,
    DriftReport,
    FeatureDrift,
    MonitorReport,
    MultivariateDrift,
)
from shipyard.monitor.drift import judged

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def run(home: Path, *args: str, columns: int = 80) -> tuple[int, str, str]:
    code: Any = None
    with CliRunner().isolation(env={"COLUMNS": str(columns)}) as (out, err, _):
        try:
            main(["--home", str(home), *args])
        except SystemExit as exc:
            code = exc.code
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int)
    return code, stdout, stderr


def shown(report: MonitorReport, columns: int) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=columns, highlight=False).print(render(report))
    return buffer.getvalue()


@pytest.mark.parametrize("columns", [80, 100])
def test_offline_report_judges_features_and_says_what_the_share_is(
    tmp_path: Path, columns: int
) -> None:
    home = tmp_path / "ws"
    assert run(home, "init")[0] == 0
    source = tmp_path / "customers.csv"
    customers(1_000, seed=1).to_csv(source, index=False)
    ingested = run(
        home, "data", "ingest", str(source), "--name", "people", "--target", "churned",
        "--id", "customer_id", "--time", "signed_at",
    )  # fmt: skip
    assert ingested[0] == 0, ingested[2]
    current = tmp_path / "new.parquet"
    shifted = drifted(1_000)
    shifted["churned"] = "yes"
    shifted.to_parquet(current)

    code, out, err = run(
        home, "monitor", "report", "--reference", "people@1", "--current", str(current),
        "--spec", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r.html"),
        columns=columns,
    )  # fmt: skip

    assert code == 0, err
    assert all(len(line) <= columns for line in out.splitlines())
    text = " ".join(out.split())  # the prose as read, whatever the line breaks
    assert "model's importance" not in text
    assert "features drifted (" in text and "% of the features; threshold 20%)" in text
    assert "label drift (churned): " in text and ": DRIFTED" in text
    assert "not judged as features: customer_id (id column), signed_at (time column)" in text
    assert "no joint drift: no joint drift" not in text
    header = next(line for line in out.splitlines() if line.lstrip().startswith("FEATURE"))
    assert header.split() == ["FEATURE", "TEST", "SCORE", "P-VALUE", "LIMIT", "DRIFT", "MISSING"]
    table = out[out.index(header) :].splitlines()[2:7]
    assert {row.split()[0] for row in table} == {"tenure", "spend", "plan", "region", "sex"}
    tenure = next(row.split() for row in table if row.split()[0] == "tenure")
    assert tenure[1:4] == ["wasserstein", tenure[2], "<0.001"] and tenure[5] == "yes"

    as_json = run(
        home, "monitor", "report", "--reference", "people@1", "--current", str(current),
        "--spec", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r.html"), "--json",
    )  # fmt: skip
    drift = json.loads(as_json[1])["drift"]
    assert drift["label"]["column"] == "churned"
    assert set(drift["excluded"]) == {"customer_id", "signed_at"}


def feature(column: str, **fields: Any) -> FeatureDrift:
    base: dict[str, Any] = {
        "kind": "numeric", "test": "wasserstein", "score": 0.05, "threshold": 0.1,
        "drifted": False, "reference_rows": 5000, "current_rows": 4000,
        "missing_reference": 0.0, "missing_current": 0.0, "scores": {"pvalue": 0.4},
    }  # fmt: skip
    return FeatureDrift.model_validate({"column": column, **base, **fields})


def endpoint_report(drift: DriftReport, alerts: int) -> MonitorReport:
    alert = Alert(id="alr_1", endpoint="credit", kind="drift", message="m", created_at=T0)
    return MonitorReport(
        endpoint="credit",
        model_ref="credit@3",
        start=T0,
        end=T0 + timedelta(hours=1),
        drift=drift,
        decay=Decay(
            metric="rmse",
            registered=10.0,
            current=12.5,
            drop=2.5,
            threshold=1.0,
            labelled=300,
            decayed=True,
        ),
        alerts=[alert.model_copy(update={"id": f"alr_{i}"}) for i in range(alerts)],
    )


@pytest.mark.parametrize("columns", [80, 100])
def test_joint_drift_alone_reads_as_drift_with_its_reasons(columns: int) -> None:
    drift = DriftReport(
        reference="credit@3", current="credit 10:00-11:00", reference_rows=5000,
        current_rows=4000, threshold=0.2,
        features=[
            feature("income_with_a_long_name", importance=0.7, scores={"pvalue": 3e-12},
                    score=0.09),
            feature("age", importance=0.3),
        ],
    )  # fmt: skip
    joint = MultivariateDrift(
        auc=0.88, threshold=0.75, drifted=True, rows=4000, top_features={"income": 0.8}
    )

    out = shown(endpoint_report(judged(drift, joint), alerts=2), columns)

    assert all(len(line) <= columns for line in out.splitlines())
    text = " ".join(out.split())
    assert text.count("DRIFT: ") == 1
    assert "DRIFT: joint drift: a domain classifier tells current rows from reference rows " in text
    assert "ROC-AUC 0.880 (threshold 0.75), mostly by income (80%); the per-feature tests " in text
    header = next(line for line in out.splitlines() if line.lstrip().startswith("FEATURE"))
    assert header.split()[-1] == "IMPORTANCE"
    assert "<0.001" in out and "70%" in out and "30%" in out
    assert (
        "DECAY: rmse 12.5000 on 300 labelled rows vs 10.0000 registered (+2.5000, worse; "
        "decays when worse by more than 1)" in text
    )
    assert "2 alerts for this window" in text and text.count("alr_") == 2


def test_no_alerts_is_said_and_one_alert_is_singular() -> None:
    drift = DriftReport(
        reference="r", current="c", reference_rows=500, current_rows=400, threshold=0.2,
        features=[feature("age")],
    )  # fmt: skip
    assert "no alerts for this window" in shown(endpoint_report(judged(drift), 0), 80)
    assert "1 alert for this window" in shown(endpoint_report(judged(drift), 1), 80)
