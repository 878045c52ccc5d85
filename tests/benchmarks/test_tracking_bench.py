"""Smoke test of benchmarks/tracking.py: Shipyard's side runs end to end and reports figures.

MLflow's side needs its own venv (downloaded on first use), so it is left out here. Not a
timing test: nothing here compares speeds against a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tracking.py"


@pytest.mark.slow
def test_tracking_benchmark_runs_shipyard_side(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--shipyard-only", "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "tracking.json").read_text())
    assert report["quick"] is True
    assert "skipped" in report["mlflow_status"]
    assert set(report["results"]) == {"shipyard"}
    sizes = report["sizes"]
    results = report["results"]["shipyard"]
    loop = results["metric_loop"]
    assert loop["calls"] == sizes["metric_calls"]
    assert 0 < loop["loop_s"] <= loop["durable_s"]
    assert all(job["stored"] == sizes["metric_calls"] for job in loop["jobs"])
    assert results["runs"]["seconds"] > 0
    assert all(job["stored"] == sizes["runs"] for job in results["runs"]["jobs"])
    search = results["search"]
    assert search["median_s"] > 0
    assert all(t > 0 for t in search["seconds"])
    assert len(search["hits"]) == 1
    assert 0 < search["hits"][0] < sizes["search_runs"]
    for row in report["table"]:
        assert row["shipyard"] > 0
        assert row["mlflow"] is None
    assert not list(tmp_path.glob("tracking-*")), "a job left its temporary directory behind"
    assert "Shipyard" in proc.stdout
