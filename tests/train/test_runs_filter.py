"""The runs filter language at its edges: many clauses, several metrics, NaN, over the CLI."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli.app import main
from shipyard.core.errors import Invalid
from shipyard.store.workspace import Workspace
from shipyard.train import search_runs
from shipyard.train.runs import MAX_CLAUSES

RUNS = {  # name: (a, b)
    "low": (0.1, 5.0),
    "mid": (0.5, math.nan),
    "high": (0.9, 1.0),
    "a-only": (0.7, None),
}


@pytest.fixture
def runs(any_workspace: Workspace) -> Workspace:
    for name, (a, b) in RUNS.items():
        with shipyard.start_run("f", name=name, workspace=any_workspace):
            shipyard.log_metric("a", a)
            if b is not None:
                shipyard.log_metric("b", b)
    return any_workspace


def _names(ws: Workspace, text: str) -> list[str | None]:
    return sorted(r.name for r in search_runs(ws, experiment="f", filter=text))


def test_a_filter_of_thousands_of_clauses_is_refused_naming_the_limit(runs: Workspace) -> None:
    """2,000 clauses used to fail after seconds (SQLite: expression tree too deep) or minutes
    of planning (PostgreSQL) with a database error."""
    text = " and ".join(["metrics.a > 1"] * 2000)
    with pytest.raises(Invalid, match=r"run filter has 2000 clauses; at most 100 are allowed"):
        search_runs(runs, filter=text)


def test_the_most_clauses_allowed_still_work(runs: Workspace) -> None:
    clauses = ["metrics.a > 0.05", "metrics.b < 10", "status = 'finished'", "params.x != 'y'"]
    text = " and ".join(clauses[i % len(clauses)] for i in range(MAX_CLAUSES))
    assert _names(runs, text) == []  # no run has the param x
    text = " and ".join(clauses[i % 3] for i in range(MAX_CLAUSES))
    assert _names(runs, text) == ["high", "low"]  # NaN is not below 10; a-only has no b


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a > 0.3", ["a-only", "high", "mid"]),
        ("metrics.a > 0.3 and metrics.a < 0.8", ["a-only", "mid"]),
        ("metrics.a > 0.3 and metrics.b > 0", ["high"]),
        ("metrics.a >= 0 and metrics.b != 1", ["low", "mid"]),
        ("metrics.b = nan and metrics.a < 1", ["mid"]),
        ("metrics.b != nan and metrics.a < 1", ["high", "low"]),
        ("metrics.a < 1 and metrics.b > -inf", ["high", "low"]),
    ],
)
def test_clauses_on_one_or_several_metrics_agree(
    runs: Workspace, text: str, expected: list[str]
) -> None:
    """One metric is searched through its index, several through one grouped subquery: the
    same answers, NaN included, on both backends."""
    assert _names(runs, text) == expected


def test_the_cli_refuses_a_long_filter_with_exit_2(tmp_path: Path) -> None:
    home = str(tmp_path / "ws")
    text = " and ".join(["metrics.a > 1"] * 2000)
    with CliRunner().isolation(env={"COLUMNS": "80"}) as (_out, err, _):
        codes = []
        for args in (["init"], ["runs", "ls", "--filter", text]):
            try:
                main(["--home", home, *args])
            except SystemExit as exc:
                codes.append(exc.code)
        sys.stderr.flush()
        stderr = err.getvalue().decode()
    assert codes == [0, 2]
    assert "2000 clauses; at most 100 are allowed" in " ".join(stderr.split())
