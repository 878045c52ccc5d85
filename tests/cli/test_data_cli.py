"""`shipyard data` end to end through `main()`: real files, a real workspace, real exit codes,
and the tables as they read in an 80-column terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.cli.app import main

# Names as long as real data sets have them (scikit-learn's wine: od280/od315_of_diluted_wines).
LONG = ["nonflavanoid_phenols", "od280/od315_of_diluted_wines", "proanthocyanins"]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def sy(tmp_path: Path) -> Any:
    """`sy("data", "ls")` runs `shipyard --home <tmp>/ws data ls` in an 80-column terminal."""

    def run(*args: str) -> Result:
        code: Any = None
        with CliRunner().isolation(env={"COLUMNS": "80"}) as (out, err, _):
            try:
                main(["--home", str(tmp_path / "ws"), *args])
            except SystemExit as exc:
                code = exc.code
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        assert isinstance(code, int), f"main() must exit with an int code, got {code!r}"
        return Result(code, stdout, stderr)

    assert run("init", "--json").exit_code == 0
    return run


def _wines(rows: int, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(2.0, 0.5, rows).round(3) for name in LONG})
    frame["alcohol"] = rng.normal(13.0, 0.8, rows).round(2)
    frame["cultivar"] = rng.integers(0, 3, rows)
    return frame


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def to_csv(frame: pd.DataFrame, name: str) -> str:
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return str(path)

    return to_csv


def _ingest(sy: Any, path: str, *options: str) -> Result:
    result = sy("data", "ingest", path, "--name", "wine", *options)
    assert result.exit_code == 0, result.stderr
    return result


def _fits(output: str) -> None:
    assert output.strip()
    assert max(len(line) for line in output.splitlines()) <= 80


def _whole_or_cut(name: str, output: str) -> bool:
    """The name is printed whole, or cut short with an ellipsis: never broken over two lines."""
    return name in output or any(f"{name[:n]}…" in output for n in range(4, len(name)))


# -- ingest -------------------------------------------------------------------------------------


def test_a_new_version_missing_a_column_exits_6_as_validate_does(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(60, seed=0), "wine.csv"), "--target", "cultivar")
    broken = write(_wines(60, seed=1).drop(columns=["alcohol"]), "broken.csv")

    validated = sy("data", "validate", broken, "--against", "wine")
    ingested = sy("data", "ingest", broken, "--name", "wine")

    assert (validated.exit_code, ingested.exit_code) == (6, 6)
    assert "alcohol: required column 'alcohol' is missing (60 rows)" in ingested.stderr
    assert "nothing was stored" in ingested.stderr
    assert [v["ref"] for v in sy("data", "show", "wine", "--json").json()["versions"]] == ["wine@1"]


# -- ls -----------------------------------------------------------------------------------------


def test_ls_json_is_a_summary_without_schema_or_profile(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(60, seed=0), "wine.csv"), "--target", "cultivar")
    _ingest(sy, write(_wines(80, seed=1), "wine2.csv"))

    (wine,) = sy("data", "ls", "--json").json()

    assert set(wine) == {
        "name",
        "versions",
        "latest",
        "latest_id",
        "rows",
        "columns",
        "content_hash",
        "errors",
        "warnings",
        "target",
        "id",
        "time",
        "sensitive",
        "created_at",
        "created_by",
        "updated_at",
    }
    assert (wine["name"], wine["versions"], wine["latest"]) == ("wine", 2, "wine@2")
    assert (wine["rows"], wine["columns"], wine["target"]) == (80, 5, "cultivar")
    assert "schema" in sy("data", "show", "wine@2", "--json").json()


# -- diff ---------------------------------------------------------------------------------------


def test_diff_of_small_versions_warns_and_calls_nothing_large(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(50, seed=0), "wine.csv"))
    _ingest(sy, write(_wines(50, seed=1), "wine2.csv"))

    table = sy("data", "diff", "wine@1", "wine@2")
    data = sy("data", "diff", "wine@1", "wine@2", "--json").json()

    assert table.exit_code == 0
    _fits(table.stdout)
    text = " ".join(table.stdout.split())
    assert "warning: wine@1 and wine@2 have 50 and 50 rows: too few for PSI over 20 bins." in text
    assert "unclear" in text and "large " not in text.split("Largest shifts")[1]
    assert data["warnings"] and data["warnings"][0].startswith("wine@1 and wine@2 have 50 and 50")
    assert not any(s["large"] for s in data["shifts"])
    assert max(s["psi"] for s in data["shifts"]) > 0.2  # what used to be called a large shift


def test_diff_of_large_versions_names_the_large_shift(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(2_000, seed=0), "wine.csv"))
    moved = _wines(2_000, seed=1)
    moved["alcohol"] += 1.0
    _ingest(sy, write(moved, "wine2.csv"))

    table = sy("data", "diff", "wine@1", "wine@2")

    _fits(table.stdout)
    assert "warning" not in table.stdout
    (alcohol,) = [line for line in table.stdout.splitlines() if line.strip().startswith("alcohol")]
    assert alcohol.split()[2] == "large"
    assert all(_whole_or_cut(name, table.stdout) for name in LONG)


# -- tables at 80 columns -----------------------------------------------------------------------


def test_show_profile_and_validate_keep_names_whole_at_80_columns(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(60, seed=0), "wine.csv"), "--target", "cultivar")
    _ingest(sy, write(_wines(60, seed=1), "wine2.csv"))
    odd = _wines(60, seed=2).drop(columns=["alcohol"])
    odd.loc[3, LONG[1]] = 99.0  # outside the inferred range: a warning with an example

    schema = sy("data", "show", "wine@1")
    versions = sy("data", "show", "wine")
    profile = sy("data", "profile", "wine@1")
    checked = sy("data", "validate", write(odd, "odd.csv"), "--against", "wine")

    for result in (schema, versions, profile, checked):
        _fits(result.stdout)
    assert all(name in schema.stdout for name in LONG)
    hashes = [
        v["content_hash"][:12] for v in sy("data", "show", "wine", "--json").json()["versions"]
    ]
    assert all(h in versions.stdout.split() for h in hashes)  # whole, never folded
    assert "wine@1" in versions.stdout and "wine@2" in versions.stdout
    assert all(_whole_or_cut(name, profile.stdout) for name in LONG)
    assert all(_whole_or_cut(name, checked.stdout) for name in ["alcohol", LONG[1]])
    assert "row 3: 99.0" in checked.stdout


def test_profile_gives_time_columns_a_table_of_dates(sy: Any, write: Any) -> None:
    rows = 300
    frame = pd.DataFrame(
        {
            "loan_id": range(rows),
            "issued_at": pd.date_range("2024-01-01", periods=rows, freq="7h"),
            "amount": np.linspace(300.0, 25_530.5, rows),
        }
    )
    sy("data", "ingest", write(frame, "loans.csv"), "--name", "loans", "--id", "loan_id")

    result = sy("data", "profile", "loans")

    _fits(result.stdout)
    (line,) = [row for row in result.stdout.splitlines() if row.lstrip().startswith("issued_at")]
    assert line.split()[1:5] == ["0", "2024-01-01", "2024-02-13", "2024-03-28"]
    (amount,) = [row for row in result.stdout.splitlines() if row.lstrip().startswith("amount")]
    assert "25,530" in amount.split()  # not 2.553e+04


def test_validate_json_is_one_document_when_it_fails(sy: Any, write: Any) -> None:
    _ingest(sy, write(_wines(60, seed=0), "wine.csv"))
    broken = write(_wines(60, seed=1).drop(columns=["alcohol"]), "broken.csv")

    failed = sy("data", "validate", broken, "--against", "wine", "--json")
    passed = sy(
        "data", "validate", write(_wines(60, seed=2), "ok.csv"), "--against", "wine", "--json"
    )

    assert failed.exit_code == 6
    error = failed.json()  # one document, or json.loads raises
    assert error["error"] == "ValidationFailed"
    assert [
        v["column"] for v in error["details"]["report"]["violations"] if v["severity"] == "error"
    ] == ["alcohol"]
    assert passed.exit_code == 0 and passed.json()["passed"] is True
