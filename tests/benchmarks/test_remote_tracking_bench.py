"""Smoke test of benchmarks/remote_tracking.py: both servers start, every job runs end to end over
HTTP, and the report has its shape. MLflow's venv is the one `make bench` uses (bench-output/,
created on first use, about a minute); if it cannot be made the test is skipped with the reason.
Not a timing test: nothing here compares speeds against a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "remote_tracking.py"


@pytest.mark.slow
def test_remote_tracking_benchmark_runs_both_servers(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)]
    command += ["--venvs", str(ROOT / "bench-output")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "remote_tracking.json").read_text())
    if report["mlflow_status"].startswith("UNAVAILABLE"):
        pytest.skip(f"MLflow's venv cannot be created: {report['mlflow_status']}")
    assert report["quick"] is True
    assert set(report["results"]) == {"shipyard", "mlflow"}
    sizes = report["sizes"]
    ship, ml = report["results"]["shipyard"], report["results"]["mlflow"]
    assert set(ship) == {"metric_loop", "runs", "search", "list"}
    assert set(ml) == {"metric_loop", "metric_loop_async", "runs", "search"}
    assert ship["metric_loop"]["calls"] == sizes["metric_calls"]
    assert 0 < ship["metric_loop"]["loop_s"] <= ship["metric_loop"]["durable_s"]
    assert all(job["stored"] == sizes["metric_calls"] for job in ship["metric_loop"]["jobs"])
    assert all(job["stored"] == sizes["mlflow_calls"] for job in ml["metric_loop"]["jobs"])
    for tool in (ship, ml):
        assert all(job["stored"] == sizes["runs"] for job in tool["runs"]["jobs"])
    # Both searched the same seeded runs over HTTP and found the same ones.
    assert len(ship["search"]["hits"]) == 1
    assert ship["search"]["hits"] == ml["search"]["hits"]
    assert 0 < ship["search"]["hits"][0] < sizes["search_runs"]
    listing = ship["list"]
    pages = -(-sizes["list_runs"] // sizes["list_page"])
    assert listing["requests"] == sizes["list_passes"] * pages
    assert 0 < listing["p50_ms"] <= listing["p99_ms"] <= listing["max_ms"]
    assert all(p["runs"] == sizes["list_runs"] for p in listing["jobs"][0]["passes"])
    for row in report["table"]:
        assert row["shipyard"] > 0
        assert (row["mlflow"] is None) == row["task"].startswith("list ")
    assert not list(tmp_path.glob("remote-tracking-*")), "the scratch directory was left behind"
    assert "Shipyard" in proc.stdout
