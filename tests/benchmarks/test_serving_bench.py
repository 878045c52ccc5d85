"""Smoke test of benchmarks/serving/bench.py: `--quick` runs end to end and reports figures.

The quick run measures Shipyard and the no-op ceiling only (MLflow and BentoML need venvs of
their own, downloaded on first use). It needs `wrk`: the benchmark installs Debian's package
when it can (as root), and exits with EX_UNAVAILABLE when it cannot, which skips this test. Not
a timing test: nothing here compares speeds against a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving" / "bench.py"
EX_UNAVAILABLE = 69


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_serving_benchmark_quick_run(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=540, check=False)
    if proc.returncode == EX_UNAVAILABLE:
        pytest.skip(f"the load generator is missing: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "serving.json").read_text())
    assert report["quick"] is True
    assert report["sizes"]["servers"] == ["shipyard", "noop"]
    assert set(report["models"]) == {"hgb", "lgbm"}
    levels = [str(c) for c in report["sizes"]["concurrency"]]
    for key, model in report["models"].items():
        assert model["ref"] == f"flights-{key}@1"
        assert set(model["servers"]) == {"shipyard", "noop"}
        for name, server in model["servers"].items():
            assert server["ok"], f"{key} {name}: {server.get('why')}"
            assert sorted(server["points"]) == sorted(levels)
            for point in server["points"].values():
                assert point["ok"], point.get("why")
                assert point["error_count"] == 0
                assert point["requests"] > 0
                assert point["rps"] > 0
                assert 0 < point["p50_ms"] <= point["p99_ms"]
        # Shipyard answered with the fitted pipeline's own probability, and logged every answer.
        shipyard = model["servers"]["shipyard"]
        assert shipyard["probability"] == pytest.approx(model["expected"], abs=1e-6)
        answered = sum(p["requests"] for p in shipyard["points"].values())
        assert model["logged_predictions"] >= answered
        assert model["ratios"]["shipyard_over_noop"] > 0
        assert model["ratios"]["shipyard_p99_c1_ms"] > 0
        assert model["ratios"]["shipyard_over_mlflow"] is None  # not measured in --quick
    assert not list(tmp_path.glob("serving-*")), "the run left its temporary directory behind"
    assert "Shipyard" in proc.stdout
