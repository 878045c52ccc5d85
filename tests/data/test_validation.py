"""Validation against a stored version: inferred rules warn, declared and structural ones block."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from shipyard.core.errors import NotFound
from shipyard.core.records import ColumnSchema, DatasetSchema, DatasetVersion, ValidationReport
from shipyard.core.spec import ColumnContract
from shipyard.data import ingest, sources, validate_file
from shipyard.data.validation import Validator
from shipyard.store.workspace import Workspace

Frames = Callable[..., pd.DataFrame]
WriteFile = Callable[[pd.DataFrame, str], Path]


@pytest.fixture
def reference(
    workspace: Workspace, loans: Frames, write_file: WriteFile
) -> Callable[..., DatasetVersion]:
    """`reference(contract=None)`: loans@1 from 40 rows, the version files are checked against."""

    def make(contract: dict[str, ColumnContract] | None = None) -> DatasetVersion:
        path = write_file(loans(40), "reference.csv")
        return ingest(
            workspace, path, name="loans", target="defaulted", id="loan_id", contract=contract
        ).version

    return make


def _rules(report: ValidationReport) -> set[tuple[str, str, str, int]]:
    return {(v.column, v.rule, v.severity, v.count) for v in report.violations}


def test_clean_file_passes(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    seen: list[int] = []

    report = validate_file(
        workspace,
        write_file(loans(40).iloc[5:25], "new.csv"),
        against="loans@1",
        progress=seen.append,
    )

    assert report.passed
    assert report.violations == []
    assert report.rows == 20
    assert seen == [20]


def test_out_of_range_value_and_new_category_warn(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    frame = loans(40).iloc[:20].copy()
    frame.loc[2, "income"] = 10_000_000.0
    frame.loc[7, "grade"] = "E"

    report = validate_file(workspace, write_file(frame, "new.csv"), against="loans")

    assert report.passed
    assert _rules(report) == {
        ("income", "range", "warning", 1),
        ("grade", "values", "warning", 1),
    }
    by_rule = {v.rule: v for v in report.violations}
    assert by_rule["range"].examples == [{"row": 2, "value": 10_000_000.0}]
    assert by_rule["values"].examples == [{"row": 7, "value": "E"}]


def test_missing_column_and_text_in_a_number_column_are_errors(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    frame = loans(40).iloc[:20].drop(columns="grade").astype({"income": "object"})
    frame.loc[5, "income"] = "abc"
    frame.loc[9, "income"] = "12k"

    report = validate_file(workspace, write_file(frame, "new.csv"), against="loans@1")

    assert not report.passed
    assert _rules(report) == {
        ("grade", "present", "error", 20),
        ("income", "dtype", "error", 2),
    }
    income = next(v for v in report.errors if v.column == "income")
    assert income.examples == [{"row": 5, "value": "abc"}, {"row": 9, "value": "12k"}]
    assert "not numbers" in income.message


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_missing_text_column_is_an_error_in_every_format(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
    suffix: str,
) -> None:
    # A JSON reader given a column's type adds the column, all missing, when the file lacks it.
    reference()
    frame = loans(40).iloc[:20].drop(columns="grade")

    report = validate_file(workspace, write_file(frame, f"new.{suffix}"), against="loans@1")

    assert [(v.column, v.rule) for v in report.errors] == [("grade", "present")]


def test_text_in_a_number_column_after_the_first_block_is_found(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference()
    monkeypatch.setattr(sources, "BLOCK_SIZE", 2048)
    frame = pd.concat([loans(40)] * 50, ignore_index=True)
    frame["loan_id"] = range(len(frame))
    frame = frame.astype({"income": "object"})
    frame.loc[1_500, "income"] = "unknown"
    path = write_file(frame, "new.csv")
    assert path.stat().st_size > 20 * 2048

    report = validate_file(workspace, path, against="loans@1")

    assert report.rows == 2_000
    income = next(v for v in report.errors if v.column == "income")
    assert (income.rule, income.count) == ("dtype", 1)
    assert income.examples == [{"row": 1_500, "value": "unknown"}]


def test_duplicate_ids_and_missing_target_are_errors(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    frame = loans(40).iloc[:20].copy()
    frame.loc[3, "loan_id"] = 1
    frame["defaulted"] = frame["defaulted"].astype("Int64")
    frame.loc[6, "defaulted"] = pd.NA

    report = validate_file(workspace, write_file(frame, "new.csv"), against="loans@1")

    assert _rules(report) == {
        ("loan_id", "unique", "error", 2),
        ("defaulted", "nullable", "error", 1),
    }
    unique = next(v for v in report.violations if v.rule == "unique")
    assert unique.examples == [{"value": 1, "rows": 2}]


def test_declared_rules_block_inferred_ones_warn(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference(contract={"income": ColumnContract(min=0)})
    frame = loans(40).iloc[:20].copy()
    frame.loc[4, "income"] = -1.0
    frame.loc[8, "grade"] = "Z"

    report = validate_file(workspace, write_file(frame, "new.csv"), against="loans@1")

    assert _rules(report) == {
        ("income", "range", "error", 1),
        ("grade", "values", "warning", 1),
    }


def test_extra_column_is_a_warning(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    frame = loans(40).iloc[:10].assign(region="north")

    report = validate_file(workspace, write_file(frame, "new.csv"), against="loans@1")

    assert report.passed
    assert _rules(report) == {("region", "extra", "warning", 10)}


def test_validating_against_an_unknown_version_is_not_found(
    workspace: Workspace,
    reference: Callable[..., DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    reference()
    with pytest.raises(
        NotFound, match=r"dataset loans@3 does not exist: loans has versions 1 to 1"
    ):
        validate_file(workspace, write_file(loans(5), "new.csv"), against="loans@3")


def test_validator_counts_rows_across_batches() -> None:
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="x", dtype="float64", min=0, severity={"range": "error"}),
            ColumnSchema(name="k", dtype="string", unique=True),
        ]
    )
    validator = Validator(schema)
    validator.update(pa.record_batch({"x": [1.0, -1.0, 2.0], "k": ["a", "b", "c"]}))
    validator.update(pa.record_batch({"x": [3.0, -2.0], "k": ["d", "a"]}))

    report = validator.report()

    assert report.rows == 5
    by_rule = {v.rule: v for v in report.violations}
    assert by_rule["range"].examples == [{"row": 1, "value": -1.0}, {"row": 4, "value": -2.0}]
    assert by_rule["range"].severity == "error"
    assert by_rule["unique"].examples == [{"value": "a", "rows": 2}]
    assert by_rule["unique"].count == 2
