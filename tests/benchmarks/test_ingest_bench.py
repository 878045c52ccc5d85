"""Smoke test of benchmarks/ingest.py: it runs end to end and reports sane figures.

Not a timing test: nothing here compares speeds or memory against a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest.py"


@pytest.mark.slow
def test_ingest_benchmark_runs_and_reports_both_tools(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--quick", "--rows", "20000", "--repeat", "1"]
    proc = subprocess.run(
        [*command, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "ingest.json").read_text())
    assert report["rows"] == 20000
    assert report["cols"] == 30
    for tool in ("pandas", "shipyard"):
        figures = report["tools"][tool]
        assert figures["rows"] == 20000
        assert figures["median_s"] > 0
        assert all(t > 0 for t in figures["seconds"])
        assert figures["peak_rss_mb"] > 0
    assert report["tools"]["empty"]["peak_rss_mb"] > 0
    assert "shipyard" in proc.stdout
