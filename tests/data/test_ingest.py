"""Ingest: every format round-trips, versions are content-addressed, bad input stores nothing."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shipyard.core.errors import Conflict, Invalid, NotFound, Unavailable, ValidationFailed
from shipyard.core.records import AuditEvent, Lineage, ValidationReport
from shipyard.core.spec import ColumnContract, parse_spec
from shipyard.data import (
    get_dataset,
    get_version,
    ingest,
    ingest_spec,
    list_versions,
    open_source,
    read_pandas,
    read_table,
    sources,
    validate_file,
)
from shipyard.store import audit
from shipyard.store.artifacts import sha256_file
from shipyard.store.workspace import Workspace

LOAN_TYPES = {
    "loan_id": "int64",
    "income": "float64",
    "grade": "string",
    "sex": "string",
    "issued_at": "timestamp",
    "defaulted": "int64",
}
LOAN_ROLES = {
    "loan_id": "id",
    "income": "feature",
    "grade": "feature",
    "sex": "sensitive",
    "issued_at": "time",
    "defaulted": "target",
}
ROLES = {"target": "defaulted", "id": "loan_id", "time": "issued_at", "sensitive": ["sex"]}

Frames = Callable[..., pd.DataFrame]
WriteFile = Callable[[pd.DataFrame, str], Path]
WriteText = Callable[[str, str], Path]
NothingStored = Callable[[Workspace], AbstractContextManager[None]]


# -- each format --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("loans.csv", "csv"),
        ("loans.tsv", "csv"),
        ("loans.parquet", "parquet"),
        ("loans.jsonl", "jsonl"),
    ],
)
def test_each_file_format_round_trips(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile, filename: str, fmt: str
) -> None:
    ws = any_workspace
    frame = loans(30)
    path = write_file(frame, filename)

    result = ingest(ws, path, name="loans", **ROLES)

    version = result.version
    assert result.created
    assert version.ref == "loans@1"
    assert (version.rows, version.columns) == (30, 6)
    pd.testing.assert_frame_equal(read_pandas(ws, "loans@1"), frame)
    assert {c.name: c.dtype for c in version.schema_.columns} == LOAN_TYPES
    assert {c.name: c.role for c in version.schema_.columns} == LOAN_ROLES
    assert version.lineage == Lineage(
        source=str(path), format=fmt, source_digest=sha256_file(path), steps=[]
    )
    assert version.validation.passed
    assert ws.artifacts.exists(version.content_hash)
    dataset = get_dataset(ws, "loans")
    assert (dataset.target, dataset.id_column, dataset.time_column, dataset.sensitive) == (
        "defaulted",
        "loan_id",
        "issued_at",
        ["sex"],
    )


def test_sql_query_over_sqlite_round_trips_in_chunks(
    workspace: Workspace,
    loans: Frames,
    sqlite_table: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "SQL_CHUNK", 7)
    frame = loans(25).drop(columns="issued_at")
    url = sqlite_table(frame)
    query = "SELECT * FROM loans ORDER BY loan_id"
    seen: list[int] = []

    version = ingest(
        workspace,
        open_source(url, sql=query),
        name="loans",
        target="defaulted",
        id="loan_id",
        sensitive=["sex"],
        progress=seen.append,
    ).version

    assert seen == [7, 14, 21, 25]
    pd.testing.assert_frame_equal(read_pandas(workspace, version), frame)
    assert {c.name: c.dtype for c in version.schema_.columns} == {
        k: v for k, v in LOAN_TYPES.items() if k != "issued_at"
    }
    assert {c.name: c.role for c in version.schema_.columns if c.role != "feature"} == {
        "loan_id": "id",
        "sex": "sensitive",
        "defaulted": "target",
    }
    assert version.lineage == Lineage(source=url, format="sql", query=query, source_digest=None)


def test_sql_column_missing_in_the_first_chunks_takes_its_later_type(
    workspace: Workspace, sqlite_table: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "SQL_CHUNK", 4)
    frame = pd.DataFrame(
        {"id": np.arange(10), "note": [None] * 8 + ["late", "later"], "x": [None] * 9 + [1.5]}
    )
    url = sqlite_table(frame, table="notes")

    version = ingest(
        workspace, open_source(url, sql="SELECT * FROM notes ORDER BY id"), name="notes"
    ).version

    assert {c.name: c.dtype for c in version.schema_.columns} == {
        "id": "int64",
        "note": "string",
        "x": "float64",
    }
    table = read_table(workspace, version)
    assert table.column("note").to_pylist() == [None] * 8 + ["late", "later"]
    assert table.column("x").to_pylist() == [None] * 9 + [1.5]


@pytest.mark.postgres
def test_sql_query_over_postgres_round_trips(workspace: Workspace, pg_url: str) -> None:
    rows = [
        {
            "loan_id": i,
            "income": 1000.5 * i,
            "amount": Decimal(f"{i}0.25"),
            "grade": "ABCD"[i % 4],
            "approved": i % 2 == 0,
            "issued_at": datetime(2024, 1, i, 12, 30, tzinfo=UTC),
            "due": date(2025, 1, i),
            "defaulted": None if i == 3 else i % 2,
        }
        for i in range(1, 7)
    ]
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE loans (loan_id bigint PRIMARY KEY, income double precision, "
                "amount numeric(10, 2), grade text, approved boolean, issued_at timestamptz, "
                "due date, defaulted integer)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO loans VALUES (:loan_id, :income, :amount, :grade, :approved, "
                ":issued_at, :due, :defaulted)"
            ),
            rows,
        )
    engine.dispose()
    query = "SELECT * FROM loans ORDER BY loan_id"

    version = ingest(
        workspace, open_source(pg_url, sql=query), name="loans", id="loan_id", time="issued_at"
    ).version

    assert {c.name: c.dtype for c in version.schema_.columns} == {
        "loan_id": "int64",
        "income": "float64",
        "amount": "float64",
        "grade": "string",
        "approved": "bool",
        "issued_at": "timestamp",
        "due": "date",
        "defaulted": "int64",
    }
    table = read_table(workspace, version)
    expected = {k: [r[k] for r in rows] for k in rows[0]}
    expected["amount"] = [float(a) for a in expected["amount"]]
    assert table.to_pydict() == expected
    assert version.schema_.column("issued_at").role == "time"  # type: ignore[union-attr]
    assert version.lineage == Lineage(source=pg_url, format="sql", query=query)


def test_project_spec_data_section_is_ingested(
    workspace: Workspace, loans: Frames, write_file: WriteFile, data_dir: Path
) -> None:
    frame = loans(20)
    frame.loc[4, "grade"] = " B "
    write_file(frame, "loans.csv")
    spec = parse_spec(
        "project: credit\n"
        "data:\n"
        "  source: loans.csv\n"
        "  target: defaulted\n"
        "  id: loan_id\n"
        "  contract: {income: {min: 0}, grade: {values: [A, B, C, D]}}\n"
        "  clean: [{op: trim, columns: [grade]}]\n"
    ).data

    version = ingest_spec(workspace, spec, name="credit", base_dir=data_dir).version

    assert version.lineage.source == str(data_dir / "loans.csv")
    assert [(s.op, s.rows_changed) for s in version.lineage.steps] == [("trim", 1)]
    assert read_table(workspace, version).column("grade")[4].as_py() == "B"
    grade = version.schema_.column("grade")
    assert grade is not None and grade.values == ["A", "B", "C", "D"]
    assert grade.severity["values"] == "error"


def test_project_spec_sql_source_is_ingested(
    workspace: Workspace, loans: Frames, sqlite_table: Callable[..., str], data_dir: Path
) -> None:
    url = sqlite_table(loans(12).drop(columns="issued_at"))
    spec = parse_spec(
        f"project: credit\ndata:\n  source: {{sql: 'SELECT * FROM loans', url: '{url}'}}\n"
    ).data

    version = ingest_spec(workspace, spec, name="credit", base_dir=data_dir).version

    assert version.rows == 12
    assert version.lineage.query == "SELECT * FROM loans"


# -- content addressing -------------------------------------------------------------------------


def test_same_file_twice_is_the_same_version(
    any_workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    stores_nothing: NothingStored,
) -> None:
    ws = any_workspace
    path = write_file(loans(), "loans.csv")
    first = ingest(ws, path, name="loans", **ROLES)

    with stores_nothing(ws):
        again = ingest(ws, path, name="loans", **ROLES)

    assert first.created and not again.created
    assert again.version == first.version
    assert [v.id for v in list_versions(ws, "loans")] == [first.version.id]


def test_same_file_under_a_new_contract_is_checked_again(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    frame = loans()
    path = write_file(frame, "loans.csv")
    ingest(workspace, path, name="loans", **ROLES)
    too_strict = {"income": ColumnContract(min=float(frame["income"].max()) + 1)}

    with stores_nothing(workspace), pytest.raises(ValidationFailed, match="income: values outside"):
        ingest(workspace, path, name="loans", contract=too_strict, **ROLES)


def test_same_data_in_other_bytes_is_the_same_version(
    workspace: Workspace, write_text: WriteText, stores_nothing: NothingStored
) -> None:
    first = ingest(workspace, write_text("a.csv", "id,x\n1,2.5\n2,3.5\n"), name="d", id="id")

    with stores_nothing(workspace):
        again = ingest(workspace, write_text("b.csv", "id,x\r\n1,2.50\r\n2,3.5\r\n"), name="d")

    assert not again.created
    assert again.version.id == first.version.id


def test_sql_query_twice_is_the_same_version(
    workspace: Workspace, loans: Frames, sqlite_table: Callable[..., str]
) -> None:
    url = sqlite_table(loans(10).drop(columns="issued_at"))
    source = "SELECT * FROM loans ORDER BY loan_id"
    first = ingest(workspace, open_source(url, sql=source), name="loans")
    again = ingest(workspace, open_source(url, sql=source), name="loans")

    assert not again.created
    assert again.version.id == first.version.id


def test_changed_data_is_the_next_version_with_its_parent(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile
) -> None:
    ws = any_workspace
    v1 = ingest(ws, write_file(loans(20), "jan.csv"), name="loans", **ROLES).version
    v2 = ingest(ws, write_file(loans(25, seed=1), "feb.csv"), name="loans").version

    assert (v1.version, v2.version) == (1, 2)
    assert v1.lineage.parent is None
    assert v2.lineage.parent == v1.id
    assert v2.content_hash != v1.content_hash
    assert get_version(ws, "loans@latest").id == v2.id
    assert get_version(ws, "loans").id == v2.id
    assert get_version(ws, "loans@1").id == v1.id
    assert get_version(ws, "loans@2").id == v2.id
    assert len(read_pandas(ws, "loans@1")) == 20
    assert len(read_pandas(ws, "loans@2")) == 25
    # roles are the dataset's: the second ingest inherited them
    assert {c.name: c.role for c in v2.schema_.columns} == LOAN_ROLES


def test_other_target_than_the_dataset_is_a_conflict(
    any_workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    stores_nothing: NothingStored,
) -> None:
    ws = any_workspace
    ingest(ws, write_file(loans(), "jan.csv"), name="loans", **ROLES)
    feb = write_file(loans(seed=1), "feb.csv")

    with (
        stores_nothing(ws),
        pytest.raises(
            Conflict,
            match=r"dataset 'loans' has target column 'defaulted'; this ingest says 'grade'\. "
            r"Keep --target defaulted",
        ),
    ):
        ingest(ws, feb, name="loans", target="grade")


# -- bad input stores nothing -------------------------------------------------------------------


def test_missing_file_is_not_found(
    any_workspace: Workspace, data_dir: Path, stores_nothing: NothingStored
) -> None:
    with (
        stores_nothing(any_workspace),
        pytest.raises(NotFound, match=r"data file '.*nope\.csv' does not exist; check the path"),
    ):
        ingest(any_workspace, data_dir / "nope.csv", name="loans")


def test_zero_byte_file_is_invalid(
    any_workspace: Workspace, write_text: WriteText, stores_nothing: NothingStored
) -> None:
    path = write_text("empty.csv", "")
    with (
        stores_nothing(any_workspace),
        pytest.raises(Invalid, match=r"empty\.csv' is empty \(0 bytes\); nothing to ingest"),
    ):
        ingest(any_workspace, path, name="loans")


@pytest.mark.parametrize("content", ["id,x\n", "id,x\r\n", "id,x"])
def test_header_only_csv_is_invalid(
    any_workspace: Workspace, write_text: WriteText, stores_nothing: NothingStored, content: str
) -> None:
    path = write_text("header.csv", content)
    with (
        stores_nothing(any_workspace),
        pytest.raises(Invalid, match=r"header\.csv has a header but no rows; nothing to ingest"),
    ):
        ingest(any_workspace, path, name="loans")


@pytest.mark.parametrize("before", [1, 2_000], ids=["first-block", "later-block"])
def test_ragged_row_names_its_line(
    any_workspace: Workspace,
    csv_lines: Callable[..., Path],
    stores_nothing: NothingStored,
    monkeypatch: pytest.MonkeyPatch,
    before: int,
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 4096)
    rows = [f"{i},{i * 2},x" for i in range(before)]
    path = csv_lines("id,x,s", [*rows, "7,8", "9,10,y"])
    line = before + 2  # the header is line 1

    with (
        stores_nothing(any_workspace),
        pytest.raises(
            Invalid,
            match=rf"line {line} has 2 field\(s\) where the header has 3 \(a ragged row\)\. "
            r"Fix that line",
        ) as caught,
    ):
        ingest(any_workspace, path, name="loans")
    assert caught.value.details["line"] == line


def test_mixed_types_after_the_first_block_name_the_column_and_value(
    any_workspace: Workspace,
    csv_lines: Callable[..., Path],
    stores_nothing: NothingStored,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    rows = [f"{i},{i * 10}" for i in range(2_000)]
    path = csv_lines("id,income", [*rows, "2000,unknown", "2001,5"])
    assert path.stat().st_size > 10 * 1024  # the bad value is many blocks in

    with (
        stores_nothing(any_workspace),
        pytest.raises(
            Invalid,
            match=r"column 'income' has mixed types: its values read as int64 up to about row "
            r"[\d,]+, then 'unknown' appears\..*`--coerce income`",
        ) as caught,
    ):
        ingest(any_workspace, path, name="loans")
    assert caught.value.details["column"] == "income"
    assert caught.value.details["value"] == "unknown"
    assert caught.value.details["after_row"] > 0


def test_ints_then_floats_in_a_later_block_widen_to_float(
    workspace: Workspace, csv_lines: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    rows = [f"{i},{i}" for i in range(2_000)]
    path = csv_lines("id,x", [*rows, "2000,2.5"])

    version = ingest(workspace, path, name="d", id="id").version

    assert version.schema_.column("x").dtype == "float64"  # type: ignore[union-attr]
    x = read_table(workspace, version).column("x").to_pylist()
    assert x[:3] == [0.0, 1.0, 2.0]
    assert x[-1] == 2.5
    assert len(x) == 2_001
    assert version.validation.violations == []


def test_json_lines_widen_like_csv(
    workspace: Workspace, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    rows = [f'{{"id": {i}, "x": {i}, "note": null}}' for i in range(2_000)]
    path = data_dir / "events.jsonl"
    path.write_text("\n".join([*rows, '{"id": 2000, "x": 2.5, "note": "late"}']) + "\n")

    version = ingest(workspace, path, name="d", id="id").version

    types = {c.name: c.dtype for c in version.schema_.columns}  # type: ignore[union-attr]
    assert types == {"id": "int64", "x": "float64", "note": "string"}
    table = read_table(workspace, version)
    assert table.column("x").to_pylist()[-2:] == [1999.0, 2.5]
    assert table.column("note").to_pylist()[-2:] == [None, "late"]


def test_column_empty_in_the_first_block_takes_its_later_type(
    workspace: Workspace, csv_lines: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    rows = [f"{i},," for i in range(2_000)]
    path = csv_lines("id,note,score", [*rows, "2000,late,0.5", "2001,,7"])

    version = ingest(workspace, path, name="d").version

    types = {c.name: c.dtype for c in version.schema_.columns}
    assert types == {"id": "int64", "note": "string", "score": "float64"}
    table = read_table(workspace, version)
    assert table.column("note").to_pylist()[-3:] == [None, "late", None]
    assert table.column("score").to_pylist()[-3:] == [None, 0.5, 7.0]
    assert table.column("note").null_count == 2_001


@pytest.mark.parametrize(
    ("role", "flag"),
    [("target", {"target": "label"}), ("id", {"id": "label"}), ("time", {"time": "label"})],
)
def test_missing_role_column_names_it_and_lists_the_columns(
    any_workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    stores_nothing: NothingStored,
    role: str,
    flag: dict[str, str],
) -> None:
    path = write_file(loans(), "loans.csv")
    with (
        stores_nothing(any_workspace),
        pytest.raises(
            Invalid,
            match=rf"the {role} column 'label' is not in the data; the columns are "
            r"\['loan_id', 'income', 'grade', 'sex', 'issued_at', 'defaulted'\]\. "
            rf"Fix --{role}",
        ),
    ):
        ingest(any_workspace, path, name="loans", **flag)  # type: ignore[arg-type]


def test_missing_sensitive_column_is_invalid(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    path = write_file(loans(), "loans.csv")
    with (
        stores_nothing(workspace),
        pytest.raises(Invalid, match=r"sensitive column 'age' is not in the data \['loan_id'"),
    ):
        ingest(workspace, path, name="loans", sensitive=["sex", "age"])


def test_duplicate_ids_block_with_examples(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    frame = loans(12)
    frame.loc[[5, 9], "loan_id"] = [3, 7]
    path = write_file(frame, "loans.csv")

    with (
        stores_nothing(any_workspace),
        pytest.raises(
            ValidationFailed,
            match=r"breaks 1 blocking rule\(s\) of dataset 'loans'; nothing was stored:\n"
            r"  - loan_id: duplicate values in a unique column \(4 rows; e.g. 3 ×2, 7 ×2\)\n"
            r"Fix the data, relax the contract, or pass --allow",
        ) as caught,
    ):
        ingest(any_workspace, path, name="loans", **ROLES)
    report = ValidationReport.model_validate(caught.value.details["report"])
    assert [(v.column, v.rule, v.severity, v.count) for v in report.violations] == [
        ("loan_id", "unique", "error", 4)
    ]


def test_duplicate_ids_are_stored_with_allow(
    workspace: Workspace, loans: Frames, write_file: WriteFile
) -> None:
    frame = loans(12)
    frame.loc[[5, 9], "loan_id"] = [3, 7]

    version = ingest(
        workspace, write_file(frame, "loans.csv"), name="loans", allow=True, **ROLES
    ).version

    assert not version.validation.passed
    (violation,) = version.validation.violations
    assert (violation.column, violation.rule, violation.count) == ("loan_id", "unique", 4)
    assert violation.examples == [{"value": 3, "rows": 2}, {"value": 7, "rows": 2}]
    pd.testing.assert_frame_equal(read_pandas(workspace, version), frame)


def test_missing_target_values_block(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    frame = loans(12)
    frame["defaulted"] = frame["defaulted"].astype("Int64")
    frame.loc[[4, 9], "defaulted"] = pd.NA
    path = write_file(frame, "loans.csv")

    with (
        stores_nothing(any_workspace),
        pytest.raises(
            ValidationFailed,
            match=r"  - defaulted: missing values where none are allowed \(2 rows; "
            r"e.g. row 4: None, row 9: None\)",
        ),
    ):
        ingest(any_workspace, path, name="loans", **ROLES)


def test_contract_naming_an_unknown_column_is_invalid(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    path = write_file(loans(), "loans.csv")
    with (
        stores_nothing(any_workspace),
        pytest.raises(
            Invalid,
            match=r"the contract names column\(s\) \['incme'\] that the data does not have; "
            r"the columns are \['loan_id', 'income'",
        ),
    ):
        ingest(any_workspace, path, name="loans", contract={"incme": ColumnContract(min=0)})


@pytest.mark.parametrize("name", ["team/loans", "..", "../loans", "loans/../x", ""])
def test_unsafe_dataset_name_is_invalid(
    any_workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    stores_nothing: NothingStored,
    name: str,
) -> None:
    path = write_file(loans(), "loans.csv")
    with (
        stores_nothing(any_workspace),
        pytest.raises(Invalid, match=rf"dataset name '{name}' is not allowed: use 1-64 letters"),
    ):
        ingest(any_workspace, path, name=name)


def test_unreachable_database_is_unavailable_without_the_password(
    any_workspace: Workspace, stores_nothing: NothingStored
) -> None:
    url = "postgresql://bob:hunter2@127.0.0.1:1/loans"
    with (
        stores_nothing(any_workspace),
        pytest.raises(
            Unavailable,
            match=r"(?s)cannot connect to postgresql://bob:\*\*\*@127\.0\.0\.1:1/loans: .*"
            r"Check the URL, that the server is running, and the credentials",
        ) as caught,
    ):
        ingest(any_workspace, open_source(url, sql="SELECT 1"), name="loans")
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(caught.value.details)


@pytest.mark.parametrize(
    ("query", "problem"),
    [("SELEC * FRM loans", r'near "SELEC": syntax error'), ("SELECT * FROM nope", "no such table")],
)
def test_bad_sql_over_sqlite_is_invalid(
    any_workspace: Workspace,
    loans: Frames,
    sqlite_table: Callable[..., str],
    stores_nothing: NothingStored,
    query: str,
    problem: str,
) -> None:
    url = sqlite_table(loans(5).drop(columns="issued_at"))
    with (
        stores_nothing(any_workspace),
        pytest.raises(Invalid, match=rf"the SQL query failed on sqlite:///.*: {problem}"),
    ):
        ingest(any_workspace, open_source(url, sql=query), name="loans")


@pytest.mark.postgres
def test_bad_sql_over_postgres_is_invalid(
    workspace: Workspace, pg_url: str, stores_nothing: NothingStored
) -> None:
    with (
        stores_nothing(workspace),
        pytest.raises(Invalid, match=r'the SQL query failed on .*relation "nope" does not exist'),
    ):
        ingest(workspace, open_source(pg_url, sql="SELECT * FROM nope"), name="loans")


@pytest.mark.postgres
def test_sql_errors_never_show_the_password(
    workspace: Workspace, pg_url: str, stores_nothing: NothingStored
) -> None:
    if make_url(pg_url).password:
        pytest.skip("the test database needs its own password")
    # The loopback server trusts its clients: the password is carried in the URL, never checked.
    url = make_url(pg_url).set(password="hunter2").render_as_string(hide_password=False)
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE loans (loan_id bigint, defaulted integer)"))
        conn.execute(text("INSERT INTO loans VALUES (1, 0), (2, NULL)"))
    engine.dispose()
    cases = [
        ("SELECT * FROM loans", {"target": "label"}, Invalid, "the target column 'label'"),
        ("SELECT * FROM loans WHERE false", {}, Invalid, "the query returned no rows"),
        ("SELECT * FROM loans", {"target": "defaulted"}, ValidationFailed, "missing values"),
    ]
    for query, roles, error, message in cases:
        with stores_nothing(workspace), pytest.raises(error, match=message) as caught:
            ingest(workspace, open_source(url, sql=query), name="loans", **roles)  # type: ignore[arg-type]
        assert "hunter2" not in str(caught.value)
        assert "postgres:***@" in str(caught.value)


# -- contracts ----------------------------------------------------------------------------------


def _broken_loans(loans: Frames) -> pd.DataFrame:
    frame = loans(20)
    frame.loc[[3, 11], "income"] = [-5.0, -7.5]
    frame.loc[5, "grade"] = "Z"
    frame.loc[8, "sex"] = None
    return frame


CONTRACT = {
    "income": {"min": 0},
    "grade": {"values": ["A", "B", "C", "D"]},
    "sex": {"nullable": False},
}


def test_declared_rules_block_with_counts_and_examples(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    path = write_file(_broken_loans(loans), "loans.csv")
    contract = {k: ColumnContract(**v) for k, v in CONTRACT.items()}

    with (
        stores_nothing(any_workspace),
        pytest.raises(ValidationFailed, match=r"breaks 3 blocking rule\(s\)") as caught,
    ):
        ingest(any_workspace, path, name="loans", contract=contract)

    message = caught.value.message
    assert "income: values outside [0, inf] (2 rows; e.g. row 3: -5.0, row 11: -7.5)" in message
    assert (
        "grade: values not in the allowed set ['A', 'B', 'C', 'D'] (1 row; e.g. row 5: 'Z')"
        in message
    )
    assert "sex: missing values where none are allowed (1 row; e.g. row 8: None)" in message
    report = ValidationReport.model_validate(caught.value.details["report"])
    assert {(v.column, v.rule, v.count) for v in report.errors} == {
        ("income", "range", 2),
        ("grade", "values", 1),
        ("sex", "nullable", 1),
    }


def test_warning_severity_stores_with_the_violations(
    workspace: Workspace, loans: Frames, write_file: WriteFile
) -> None:
    path = write_file(_broken_loans(loans), "loans.csv")
    contract = {k: ColumnContract(**v, severity="warning") for k, v in CONTRACT.items()}

    version = ingest(workspace, path, name="loans", contract=contract).version

    assert version.validation.passed
    assert {(v.column, v.rule, v.severity, v.count) for v in version.validation.violations} == {
        ("income", "range", "warning", 2),
        ("grade", "values", "warning", 1),
        ("sex", "nullable", "warning", 1),
    }
    income = version.schema_.column("income")
    assert income is not None and income.min == 0 and income.severity["range"] == "warning"


def test_declared_string_type_keeps_leading_zeros(
    workspace: Workspace, csv_lines: Callable[..., Path]
) -> None:
    path = csv_lines("zip,amount", ["02134,1", "10001,2", "00501,3"])

    as_text = ingest(
        workspace, path, name="zips", contract={"zip": ColumnContract(type="string")}
    ).version
    inferred = ingest(workspace, path, name="zips-inferred").version

    assert as_text.schema_.column("zip").dtype == "string"  # type: ignore[union-attr]
    assert read_table(workspace, as_text).column("zip").to_pylist() == ["02134", "10001", "00501"]
    assert read_table(workspace, inferred).column("zip").to_pylist() == [2134, 10001, 501]


# -- a new version keeps the dataset's rules ------------------------------------------------------


def _drop_grade(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["grade"])


def _drop_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["defaulted"])


def _negative_income(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[2, 5], "income"] = -1.0
    return frame


def _repeated_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "loan_id"] = frame.loc[0, "loan_id"]
    return frame


def _missing_target(frame: pd.DataFrame) -> pd.DataFrame:
    frame["defaulted"] = frame["defaulted"].astype("Int64")
    frame.loc[1, "defaulted"] = pd.NA
    return frame


def _text_income(frame: pd.DataFrame) -> pd.DataFrame:
    frame["income"] = frame["income"].astype(object)
    frame.loc[2, "income"] = "unknown"
    return frame


def _numeric_grades(frame: pd.DataFrame) -> pd.DataFrame:
    frame["grade"] = [str(i % 3) for i in range(len(frame))]  # codes that look like numbers
    return frame


def _extra_column(frame: pd.DataFrame) -> pd.DataFrame:
    frame["region"] = "north"
    return frame


@pytest.mark.parametrize(
    ("change", "blocked"),
    [
        (_drop_grade, {("grade", "present")}),
        (_drop_target, {("defaulted", "present")}),
        (_negative_income, {("income", "range")}),
        (_repeated_id, {("loan_id", "unique")}),
        (_missing_target, {("defaulted", "nullable")}),
        (_text_income, {("income", "dtype")}),
        (_numeric_grades, set()),
        (_extra_column, set()),
    ],
)
def test_a_new_version_is_checked_exactly_as_validate_checks_it(
    workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    stores_nothing: NothingStored,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    blocked: set[tuple[str, str]],
) -> None:
    ws = workspace
    first = write_file(loans(30), "jan.csv")
    ingest(ws, first, name="loans", contract={"income": ColumnContract(min=0)}, **ROLES)
    path = write_file(change(loans(30, seed=1, start_id=31)), "feb.csv")

    checked = validate_file(ws, path, against="loans")
    assert {(v.column, v.rule) for v in checked.errors} == blocked
    if blocked:
        with stores_nothing(ws), pytest.raises(ValidationFailed) as caught:
            ingest(ws, path, name="loans")
        report = ValidationReport.model_validate(caught.value.details["report"])
    else:
        version = ingest(ws, path, name="loans").version
        assert version.version == 2
        report = version.validation
    # the same blocking rules, and the same warnings (new ranges, categories, columns) as well
    assert report.violations == checked.violations


def test_a_new_version_missing_a_column_says_how_to_drop_one(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    ingest(workspace, write_file(loans(20), "jan.csv"), name="loans", **ROLES)
    path = write_file(loans(20, seed=1).drop(columns=["income"]), "feb.csv")

    with (
        stores_nothing(workspace),
        pytest.raises(
            ValidationFailed,
            match=r"feb.csv breaks 1 blocking rule\(s\) of dataset 'loans'; nothing was stored:\n"
            r"  - income: required column 'income' is missing \(20 rows\)\n"
            r"A new version of 'loans' keeps every column of the last one: restore the "
            r"column\(s\), ingest under a new dataset name, or pass --allow",
        ),
    ):
        ingest(workspace, path, name="loans")
    kept = ingest(workspace, path, name="loans", allow=True).version

    assert "income" not in kept.schema_.names
    assert [(v.column, v.rule) for v in kept.validation.errors] == [("income", "present")]


def test_allow_does_not_store_a_new_version_without_its_target(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    ingest(workspace, write_file(loans(20), "jan.csv"), name="loans", **ROLES)
    path = write_file(loans(20, seed=1).drop(columns=["defaulted"]), "feb.csv")

    with (
        stores_nothing(workspace),
        pytest.raises(
            ValidationFailed,
            match=r"  - defaulted: required column 'defaulted' is missing \(20 rows\)\n"
            r"'defaulted': the dataset's role column\(s\) must be in every version, --allow or "
            r"not: restore them, or ingest under a new dataset name\.",
        ),
    ):
        ingest(workspace, path, name="loans", allow=True)


def test_declared_rules_carry_over_to_the_versions_after_the_next(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    contract = {"income": ColumnContract(min=0)}
    ingest(workspace, write_file(loans(20), "jan.csv"), name="loans", contract=contract)
    ingest(workspace, write_file(loans(20, seed=1), "feb.csv"), name="loans")
    path = write_file(_negative_income(loans(20, seed=2)), "mar.csv")

    with stores_nothing(workspace), pytest.raises(ValidationFailed, match=r"income: values"):
        ingest(workspace, path, name="loans")


# -- streaming and audit ------------------------------------------------------------------------


def test_large_csv_streams_block_by_block_with_progress(
    workspace: Workspace, write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 64 << 10)
    rows = 200_000
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": rng.normal(size=rows).round(4),
            "g": rng.choice(["a", "b", "c"], rows),
        }
    )
    path = write_file(frame, "big.csv")
    seen: list[int] = []

    version = ingest(workspace, path, name="big", id="id", progress=seen.append).version

    assert len(seen) > 20
    assert all(a < b for a, b in itertools.pairwise(seen))
    assert seen[-1] == rows == version.rows
    assert read_table(workspace, version, columns=["x"]).column("x").to_pylist()[-1] == float(
        frame["x"].iloc[-1]
    )


def test_ingest_appends_one_chained_audit_event(
    any_workspace: Workspace,
    loans: Frames,
    write_file: WriteFile,
    ingest_events: Callable[[Workspace], list[AuditEvent]],
) -> None:
    ws = any_workspace
    assert ingest_events(ws) == []

    v1 = ingest(ws, write_file(loans(), "jan.csv"), name="loans", **ROLES).version
    ingest(ws, write_file(loans(), "jan-copy.csv"), name="loans")  # same content: no event
    v2 = ingest(ws, write_file(loans(seed=1), "feb.csv"), name="loans").version

    second, first = ingest_events(ws)
    assert (first.object_id, first.before, first.after) == (v1.id, None, v1.id)
    assert first.details["ref"] == "loans@1"
    assert first.details["content_hash"] == v1.content_hash
    assert first.details["rows"] == 40
    assert first.actor == ws.actor
    assert (second.before, second.after) == (v1.id, v2.id)
    assert second.details["ref"] == "loans@2"
    with ws.db.read() as s:
        chain = audit.verify(s)
    assert chain.ok, chain.problems


def test_copied_source_is_a_no_op(
    workspace: Workspace, loans: Frames, write_file: WriteFile, stores_nothing: NothingStored
) -> None:
    path = write_file(loans(), "loans.parquet")
    first = ingest(workspace, path, name="loans").version
    copy = path.with_name("copy.parquet")
    shutil.copy(path, copy)

    with stores_nothing(workspace):
        again = ingest(workspace, copy, name="loans")

    assert again.version.id == first.id
    assert not again.created


def test_ingesting_a_spec_without_a_source_says_what_to_set(workspace: Workspace) -> None:
    from shipyard.data import ingest_spec

    spec = parse_spec("project: p\ndata: {name: flights}\n")
    with pytest.raises(Invalid, match=r"data\.source is not set"):
        ingest_spec(workspace, spec.data, name="flights", base_dir=Path("."))
