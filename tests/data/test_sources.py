"""Readers: formats are recognised, everything streams in batches, bad files say what is wrong."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from shipyard.core.errors import Invalid, NotFound
from shipyard.data import open_source, sources

Frames = Callable[..., pd.DataFrame]
WriteFile = Callable[[pd.DataFrame, str], Path]
WriteText = Callable[[str, str], Path]


def _read(source: sources.Source) -> pa.Table:
    return pa.Table.from_batches(list(source.batches()))


@pytest.mark.parametrize(
    ("filename", "fmt", "delimiter"),
    [
        ("loans.csv", "csv", ","),
        ("loans.tsv", "csv", "\t"),
        ("loans.parquet", "parquet", ","),
        ("loans.jsonl", "jsonl", ","),
    ],
)
def test_format_comes_from_the_suffix(
    loans: Frames, write_file: WriteFile, filename: str, fmt: str, delimiter: str
) -> None:
    frame = loans(15)
    source = open_source(write_file(frame, filename))

    assert (source.format, source.delimiter, source.query) == (fmt, delimiter, None)
    table = _read(source)
    assert table.column_names == list(frame.columns)
    assert table.column("loan_id").to_pylist() == frame["loan_id"].tolist()
    assert table.column("grade").to_pylist() == frame["grade"].tolist()


@pytest.mark.parametrize("suffix", [".ndjson", ".json"])
def test_other_json_lines_suffixes(write_text: WriteText, suffix: str) -> None:
    source = open_source(write_text(f"events{suffix}", '{"a": 1}\n{"a": 2}\n'))

    assert source.format == "jsonl"
    assert _read(source).column("a").to_pylist() == [1, 2]


def test_gzipped_csv_is_read(data_dir: Path) -> None:
    path = data_dir / "loans.csv.gz"
    path.write_bytes(gzip.compress(b"id,x\n1,2.5\n2,3.5\n"))

    source = open_source(path)

    assert source.format == "csv"
    assert _read(source).to_pydict() == {"id": [1, 2], "x": [2.5, 3.5]}


def test_ragged_row_in_a_gzipped_csv_names_its_line(data_dir: Path) -> None:
    path = data_dir / "loans.csv.gz"
    path.write_bytes(gzip.compress(b"id,x\n1,2.5\n2,3.5\n3\n"))

    with pytest.raises(Invalid, match=r"line 4 has 1 field\(s\) where the header has 2"):
        _read(open_source(path))


def test_explicit_format_overrides_the_suffix(write_text: WriteText) -> None:
    source = open_source(write_text("export.dat", "a,b\n1,x\n"), format="csv")

    assert _read(source).to_pydict() == {"a": [1], "b": ["x"]}


def test_unknown_suffix_asks_for_the_format(write_text: WriteText) -> None:
    path = write_text("loans.xlsx", "not really")
    with pytest.raises(
        Invalid, match=r"cannot tell the format of '.*loans\.xlsx' from its name; pass --format"
    ):
        open_source(path)


def test_unsupported_format_lists_the_supported_ones(write_text: WriteText) -> None:
    path = write_text("loans.csv", "a\n1\n")
    with pytest.raises(
        Invalid, match=r"format 'xlsx' is not supported; use one of csv, parquet, jsonl"
    ):
        open_source(path, format="xlsx")


def test_missing_file_is_not_found(data_dir: Path) -> None:
    with pytest.raises(NotFound, match=r"data file '.*missing\.csv' does not exist"):
        open_source(data_dir / "missing.csv")


def test_directory_is_invalid(data_dir: Path) -> None:
    with pytest.raises(Invalid, match=r"is a directory; give one CSV, Parquet or JSON-lines file"):
        open_source(data_dir)


def test_blank_csv_has_no_header(write_text: WriteText) -> None:
    with pytest.raises(Invalid, match=r"blank\.csv has no header and no rows"):
        _read(open_source(write_text("blank.csv", "\n\n")))


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("id,,x", r"column\(s\) \[2\] have an empty header"),
        ("id,x,id", r"duplicate column name\(s\) \['id'\]; make headers unique"),
    ],
)
def test_bad_csv_header_is_invalid(write_text: WriteText, header: str, problem: str) -> None:
    with pytest.raises(Invalid, match=problem):
        _read(open_source(write_text("bad.csv", f"{header}\n1,2,3\n")))


def test_csv_streams_block_by_block(
    csv_lines: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 4096)
    path = csv_lines("id,x", [f"{i},{i / 4}" for i in range(5_000)])

    batches = list(open_source(path).batches())

    assert len(batches) > 10
    table = pa.Table.from_batches(batches)
    assert table.column("id").to_pylist() == list(range(5_000))
    assert table.column("x").to_pylist() == [i / 4 for i in range(5_000)]


def test_parquet_streams_batch_by_batch(write_file: WriteFile) -> None:
    frame = pd.DataFrame({"id": range(150_000)})
    batches = list(open_source(write_file(frame, "ids.parquet")).batches())

    assert len(batches) >= 3
    assert sum(b.num_rows for b in batches) == 150_000


def test_truncated_parquet_is_invalid(write_text: WriteText) -> None:
    with pytest.raises(Invalid, match=r"broken\.parquet is not a readable Parquet file"):
        _read(open_source(write_text("broken.parquet", "PAR1 not really parquet")))


def test_broken_json_line_is_invalid(write_text: WriteText) -> None:
    path = write_text("events.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(Invalid, match=r"cannot read as JSON lines \(one object per line\)"):
        _read(open_source(path))


@pytest.mark.parametrize(
    ("early", "late", "column", "widened", "expected"),
    [
        ("1", "2.5", "x", pa.float64(), 2.5),
        ("null", '"late"', "x", pa.string(), "late"),
        ("null", "0.5", "x", pa.float64(), 0.5),
        ("null", "true", "x", pa.bool_(), True),
    ],
    ids=["ints-then-float", "missing-then-text", "missing-then-number", "missing-then-bool"],
)
def test_json_lines_widen_a_type_that_changes_in_a_later_block(
    write_text: WriteText,
    monkeypatch: pytest.MonkeyPatch,
    early: str,
    late: str,
    column: str,
    widened: pa.DataType,
    expected: object,
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    # Another integer column ("n") that never changes must not be the one widened.
    lines = [f'{{"id": {i}, "n": {i}, "x": {early}}}' for i in range(500)]
    path = write_text(
        "events.jsonl", "\n".join([*lines, f'{{"id": 500, "n": 1, "x": {late}}}']) + "\n"
    )
    source = open_source(path)

    with pytest.raises(sources.TypeWiden) as caught:
        _read(source)
    assert (caught.value.column, caught.value.dtype) == (column, widened)
    source.column_types[column] = widened  # what the ingest does before reading again
    table = _read(source)

    assert table.column("x").to_pylist()[-1] == expected
    assert table.column("x").type == widened
    assert table.column("n").type == pa.int64()
    assert table.num_rows == 501


def test_json_lines_with_a_number_then_text_name_the_column(
    write_text: WriteText, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    lines = [f'{{"id": {i}, "code": {i}}}' for i in range(500)]
    path = write_text("codes.jsonl", "\n".join([*lines, '{"id": 500, "code": "A7"}']) + "\n")

    with pytest.raises(Invalid, match=r"column 'code' has mixed types: its values are JSON"):
        _read(open_source(path))


def test_sql_source_streams_in_chunks(
    sqlite_table: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "SQL_CHUNK", 4)
    url = sqlite_table(pd.DataFrame({"id": range(10), "s": list("abcdefghij")}), table="t")

    source = open_source(url, sql="SELECT id, s FROM t ORDER BY id")
    batches = list(source.batches())

    assert (source.format, source.query, source.size) == (
        "sql",
        "SELECT id, s FROM t ORDER BY id",
        None,
    )
    assert [b.num_rows for b in batches] == [4, 4, 2]
    assert pa.Table.from_batches(batches).to_pydict() == {
        "id": list(range(10)),
        "s": list("abcdefghij"),
    }


def test_unknown_sql_scheme_is_invalid() -> None:
    source = open_source("nosuchdb://host/db", sql="SELECT 1")
    with pytest.raises(Invalid, match=r"SQL URL 'nosuchdb://host/db' is not usable: .*sqlite:///"):
        _read(source)


def test_sql_label_hides_the_password() -> None:
    source = open_source("postgresql://bob:hunter2@db.internal:5432/loans", sql="SELECT 1")

    assert source.label == "postgresql://bob:***@db.internal:5432/loans"
    assert source.uri.endswith("bob:hunter2@db.internal:5432/loans")
