"""Cleaning steps: each one changes what it says, counts the rows it changed, and is recorded."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shipyard.core.errors import Invalid
from shipyard.core.records import CleaningStep, DatasetVersion
from shipyard.data import ingest, read_table, sources
from shipyard.store.workspace import Workspace

# `shipyard.data.ingest` is also the name of the function the package exports.
ingest_module = importlib.import_module("shipyard.data.ingest")

WriteText = Callable[[str, str], Path]
NothingStored = Callable[[Workspace], AbstractContextManager[None]]


def step(op: str, *columns: str, **params: Any) -> CleaningStep:
    return CleaningStep(op=op, columns=list(columns), params=params)  # type: ignore[arg-type]


@pytest.fixture
def cleaned(workspace: Workspace, write_text: WriteText) -> Callable[..., DatasetVersion]:
    """`cleaned(csv_text, *steps)`: the version ingested from that CSV with those steps."""

    def run(text: str, *steps: CleaningStep, name: str = "people") -> DatasetVersion:
        path = write_text(f"{name}.csv", text)
        return ingest(workspace, path, name=name, steps=steps).version

    return run


def _column(ws: Workspace, version: DatasetVersion, name: str) -> list[Any]:
    return read_table(ws, version).column(name).to_pylist()


def _changed(version: DatasetVersion) -> list[tuple[str, int | None]]:
    return [(s.op, s.rows_changed) for s in version.lineage.steps]


def test_trim_strips_whitespace_and_counts_rows(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,name,city\n1,  Alice ,NYC\n2,Bob,Paris \n3, Carol , Boston\n4,Dave,LA\n",
        step("trim"),
    )

    assert _column(workspace, version, "name") == ["Alice", "Bob", "Carol", "Dave"]
    assert _column(workspace, version, "city") == ["NYC", "Paris", "Boston", "LA"]
    # row 3 changed in two columns: still one row
    assert _changed(version) == [("trim", 3)]


def test_lower_changes_only_the_named_columns(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned("id,grade,city\n1,A,NYC\n2,b,LA\n3,C,Rome\n", step("lower", "grade"))

    assert _column(workspace, version, "grade") == ["a", "b", "c"]
    assert _column(workspace, version, "city") == ["NYC", "LA", "Rome"]
    assert _changed(version) == [("lower", 2)]


def test_empty_to_null_turns_blank_text_into_missing(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned("id,city\n1,NYC\n2,  \n3,\n4, \t\n", step("empty_to_null", "city"))

    assert _column(workspace, version, "city") == ["NYC", None, None, None]
    assert _changed(version) == [("empty_to_null", 2)]  # row 3 was missing already


def test_coerce_to_float_makes_unparseable_values_missing(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,income\n1,10.5\n2,unknown\n3,\n4,2e3\n5, 7 \n6,12k\n",
        step("coerce", "income", to="float64"),
    )

    assert _column(workspace, version, "income") == [10.5, None, None, 2000.0, 7.0, None]
    assert version.schema_.column("income").dtype == "float64"  # type: ignore[union-attr]
    assert _changed(version) == [("coerce", 2)]


def test_coerce_to_int_rejects_fractions(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,count\n1,3\n2,x\n3,2.5\n4,7\n5,\n6,1e2\n", step("coerce", "count", to="int64")
    )

    assert _column(workspace, version, "count") == [3, None, None, 7, None, 100]
    assert version.schema_.column("count").dtype == "int64"  # type: ignore[union-attr]
    assert _changed(version) == [("coerce", 2)]


def test_coerce_reads_the_column_as_text_so_late_junk_is_no_error(
    workspace: Workspace, write_text: WriteText, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BLOCK_SIZE", 1024)
    rows = "".join(f"{i},{i}\n" for i in range(2_000))
    path = write_text("late.csv", f"id,x\n{rows}2000,oops\n")

    version = ingest(workspace, path, name="late", steps=[step("coerce", "x", to="int64")]).version

    x = _column(workspace, version, "x")
    assert x[:3] == [0, 1, 2]
    assert x[-1] is None
    assert _changed(version) == [("coerce", 1)]


def test_fill_with_a_constant(workspace: Workspace, cleaned: Callable[..., DatasetVersion]) -> None:
    version = cleaned(
        "id,grade,score\n1,A,1\n2,,\n3,B,\n4,,4\n",
        step("fill", "grade", value="unknown"),
        step("fill", "score", value=0),
    )

    assert _column(workspace, version, "grade") == ["A", "unknown", "B", "unknown"]
    assert _column(workspace, version, "score") == [1, 0, 0, 4]
    assert _changed(version) == [("fill", 2), ("fill", 2)]


def test_fill_with_the_median_and_the_mode(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,income,count,grade\n1,1.0,1,A\n2,,,B\n3,2.5,3,B\n4,100.0,,\n5,,8,C\n",
        step("fill", "income", "count", strategy="median"),
        step("fill", "grade", strategy="mode"),
    )

    assert _column(workspace, version, "income") == [1.0, 2.5, 2.5, 100.0, 2.5]
    assert _column(workspace, version, "count") == [1, 3, 3, 3, 8]
    assert _column(workspace, version, "grade") == ["A", "B", "B", "B", "C"]
    # income and count are both missing on row 2: one row
    assert _changed(version) == [("fill", 3), ("fill", 1)]


def test_fill_without_columns_fills_every_column_with_missing_values(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned("id,a,b\n1,1.0,x\n2,,x\n3,3.0,\n4,5.0,y\n", step("fill", strategy="mode"))

    assert _column(workspace, version, "a") == [1.0, 3.0, 3.0, 5.0]
    assert _column(workspace, version, "b") == ["x", "x", "x", "y"]
    assert _changed(version) == [("fill", 2)]


def test_drop_missing_drops_rows_missing_the_named_columns(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,income,note\n1,1.0,\n2,,x\n3,3.0,y\n4,,\n", step("drop_missing", "income")
    )

    assert _column(workspace, version, "id") == [1, 3]
    assert version.rows == 2
    assert _changed(version) == [("drop_missing", 2)]


@pytest.mark.parametrize(
    ("columns", "kept", "dropped"),
    [((), [1, 2, 3, 4, 5, 6, 8, 10], 2), (("email",), [1, 2, 3, 4, 5, 6], 4)],
    ids=["whole-rows", "by-key"],
)
def test_dedupe_keeps_the_first_row_across_batches(
    workspace: Workspace,
    write_text: WriteText,
    monkeypatch: pytest.MonkeyPatch,
    columns: tuple[str, ...],
    kept: list[int],
    dropped: int,
) -> None:
    monkeypatch.setattr(ingest_module, "ROW_GROUP", 3)  # the second pass sees batches of 3 rows
    rows = [
        (1, "a@x.org", 10),
        (2, "b@x.org", 20),
        (3, "c@x.org", 30),
        (4, "d@x.org", 40),
        (5, "e@x.org", 50),
        (6, "f@x.org", 60),
        (1, "a@x.org", 10),  # same as row 1
        (8, "b@x.org", 21),  # same email as row 2
        (3, "c@x.org", 30),  # same as row 3
        (10, "d@x.org", 41),  # same email as row 4
    ]
    text = "id,email,amount\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    path = write_text("people.csv", text)

    version = ingest(workspace, path, name="people", steps=[step("dedupe", *columns)]).version

    assert _column(workspace, version, "id") == kept
    assert _changed(version) == [("dedupe", dropped)]
    assert version.rows == len(kept)


def test_steps_run_in_order_and_are_recorded_in_the_lineage(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    steps = [
        step("trim", "grade"),
        step("lower", "grade"),
        step("coerce", "income", to="float64"),
        step("dedupe"),
    ]
    version = cleaned("id,grade,income\n1, A ,1\n2,b,x\n1,a,1\n", *steps)

    assert version.lineage.steps == [
        s.model_copy(update={"rows_changed": n}) for s, n in zip(steps, [1, 1, 1, 1], strict=True)
    ]
    assert _column(workspace, version, "grade") == ["a", "b"]


def test_equal_steps_count_their_own_rows(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    # As with a spec's `{op: trim}` plus `--trim`: here the second trim has work of its own,
    # the padding that the fill between them put in.
    steps = [step("trim"), step("fill", "name", value="  n/a  "), step("trim")]
    version = cleaned("id,name\n1,\n2, Bob \n3,\n4,Carl\n", *steps)

    assert _changed(version) == [("trim", 1), ("fill", 2), ("trim", 2)]
    assert _column(workspace, version, "name") == ["n/a", "Bob", "n/a", "Carl"]


def test_same_file_and_steps_replay_to_the_same_version_other_steps_make_a_new_one(
    workspace: Workspace, write_text: WriteText
) -> None:
    path = write_text("people.csv", "id,name\n1, Ann\n2,Bo \n")
    first = ingest(workspace, path, name="people", steps=[step("trim")])

    again = ingest(workspace, path, name="people", steps=[step("trim")])
    raw = ingest(workspace, path, name="people")

    assert not again.created
    assert again.version.id == first.version.id
    assert raw.created
    assert raw.version.version == 2
    assert _column(workspace, raw.version, "name") == [" Ann", "Bo "]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            step("fill", "grade"),
            r"cleaning step 1 \(fill\): give params\.value \(a constant\) or "
            r"params\.strategy \(median, mean, mode\)",
        ),
        (
            step("fill", "grade", strategy="average"),
            r"cleaning step 1 \(fill\): give params\.value",
        ),
        (
            step("coerce", "income", to="decimal"),
            r"cleaning step 1 \(coerce\): 'to' is 'decimal'; "
            r"expected one of float64, int64, bool, timestamp, date, string",
        ),
        (step("coerce", to="int64"), r"cleaning step 1 \(coerce\): name the columns to coerce"),
        (
            step("trim", "nickname"),
            r"cleaning step 'trim' names column\(s\) \['nickname'\] that the data does not have; "
            r"the columns are \['id', 'grade', 'income'\]",
        ),
        (
            step("fill", "grade", strategy="median"),
            r"fill with 'median' needs a numeric column; "
            r"'grade' is string\. Use strategy: mode or a constant value",
        ),
    ],
    ids=[
        "fill-without-value",
        "fill-unknown-strategy",
        "coerce-bad-type",
        "coerce-no-columns",
        "unknown-column",
        "median-of-text",
    ],
)
def test_invalid_step_is_rejected_and_stores_nothing(
    workspace: Workspace,
    write_text: WriteText,
    stores_nothing: NothingStored,
    bad: CleaningStep,
    message: str,
) -> None:
    path = write_text("people.csv", "id,grade,income\n1,A,1\n2,,2\n")
    with stores_nothing(workspace), pytest.raises(Invalid, match=message):
        ingest(workspace, path, name="people", steps=[bad])


def test_coerce_to_bool_and_dates(
    workspace: Workspace, cleaned: Callable[..., DatasetVersion]
) -> None:
    version = cleaned(
        "id,ok,day\n1,yes,2024-01-02\n2,N,not a date\n3,maybe,2024-02-30\n4,TRUE,2024-12-31\n",
        step("coerce", "ok", to="bool"),
        step("coerce", "day", to="date"),
    )

    table = read_table(workspace, version)
    assert table.schema.field("ok").type == pa.bool_()
    assert table.column("ok").to_pylist() == [True, False, None, True]
    assert [str(d) if d else None for d in table.column("day").to_pylist()] == [
        "2024-01-02",
        None,
        None,
        "2024-12-31",
    ]
    assert _changed(version) == [("coerce", 1), ("coerce", 2)]
