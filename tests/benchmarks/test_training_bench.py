"""Smoke test of benchmarks/training.py: both sides run the same small study and report times.

Not a timing test: nothing here compares speeds against a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "training.py"


@pytest.mark.slow
def test_training_benchmark_runs_both_sides(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "training.json").read_text())
    assert report["quick"] is True
    assert report["sizes"]["trials"] == 5
    assert report["sizes"]["repeat"] == 1
    assert set(report["jobs"]) == {"hand", "hand+eval", "shipyard"}
    for job in report["jobs"].values():
        assert job["median_s"] > 0
        assert all(t > 0 for t in job["seconds"])
        assert 0 < job["search_median_s"] <= job["median_s"]
    assert set(report["jobs"]["hand+eval"]["test_metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert report["jobs"]["shipyard"]["test_metrics"]["f1"] > 0
    assert report["overhead"]["search_baseline_s"] > 0
    assert not list(tmp_path.glob("training-shipyard-*")), "a job left its workspace behind"
    assert "shipyard" in proc.stdout
