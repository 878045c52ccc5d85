"""Diff: schema changes, row counts, and distribution shifts ranked largest first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.core.records import DatasetVersion
from shipyard.data import DatasetDiff, diff_versions, ingest
from shipyard.data.diff import SchemaChange
from shipyard.store.workspace import Workspace

WriteFile = Callable[[pd.DataFrame, str], Path]


def _frame(rows: int, *, seed: int, shift: float, categories: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "a": rng.normal(0 + shift, 1, rows),
            "b": rng.normal(10, 2, rows),
            "cat": rng.choice(categories, rows),
            "kind": rng.integers(0, 5, rows),
        }
    )


@pytest.fixture
def shifted(
    any_workspace: Workspace, write_file: WriteFile
) -> tuple[DatasetVersion, DatasetVersion]:
    before = _frame(4_000, seed=1, shift=0.0, categories=["A", "B", "C"]).assign(
        gone=np.arange(4_000)
    )
    after = _frame(4_500, seed=2, shift=2.0, categories=["A", "B", "C", "D"])
    after = after.assign(kind=after["kind"] + 0.5, extra="x")
    v1 = ingest(any_workspace, write_file(before, "v1.csv"), name="d", id="id").version
    # allow: a column changing type may be a blocking rule of the dataset
    v2 = ingest(any_workspace, write_file(after, "v2.csv"), name="d", allow=True).version
    return v1, v2


def test_schema_changes_are_listed(
    any_workspace: Workspace, shifted: tuple[DatasetVersion, DatasetVersion]
) -> None:
    diff = diff_versions(any_workspace, "d@1", "d@2")

    assert diff.schema_changes == [
        SchemaChange(column="extra", change="added", after="string"),
        SchemaChange(column="kind", change="dtype", before="int64", after="float64"),
        SchemaChange(column="gone", change="removed", before="int64"),
    ]
    assert (diff.before, diff.after) == ("d@1", "d@2")
    assert (diff.rows_before, diff.rows_after, diff.rows_change) == (4_000, 4_500, 500)
    assert not diff.same_content


def test_shifted_column_ranks_first(
    any_workspace: Workspace, shifted: tuple[DatasetVersion, DatasetVersion]
) -> None:
    diff = diff_versions(any_workspace, *shifted)

    first = diff.shifts[0]
    assert first.column == "a"
    assert first.psi > 0.2 and first.large
    # 4,000 and 4,500 rows over 20 bins: chance alone gives a PSI near 0.009
    assert first.noise == pytest.approx(19 * (1 / 4_000 + 1 / 4_500))
    assert diff.warnings == []
    assert first.mean_before == pytest.approx(0.0, abs=0.1)
    assert first.mean_after == pytest.approx(2.0, abs=0.1)
    by_column = {s.column: s for s in diff.shifts}
    assert by_column["b"].psi < 0.05
    assert [s.psi for s in diff.shifts] == sorted((s.psi for s in diff.shifts), reverse=True)
    # ids are new in every version and a changed dtype has nothing to compare
    assert set(by_column) == {"a", "b", "cat"}


def test_new_categories_are_listed(
    any_workspace: Workspace, shifted: tuple[DatasetVersion, DatasetVersion]
) -> None:
    diff = diff_versions(any_workspace, "d@1", "d@2")

    cat = next(s for s in diff.shifts if s.column == "cat")
    assert cat.new_categories == ["D"]
    assert cat.psi > 0.2  # a quarter of the rows moved into the new category
    assert cat.js is not None and 0 < cat.js <= 1


def test_version_against_itself_has_no_changes(
    any_workspace: Workspace, shifted: tuple[DatasetVersion, DatasetVersion]
) -> None:
    diff = diff_versions(any_workspace, "d@1", "d@1")

    assert diff.same_content
    assert diff.schema_changes == []
    assert diff.rows_change == 0
    assert all(s.psi == pytest.approx(0.0, abs=1e-12) for s in diff.shifts)
    assert all(s.new_categories == [] for s in diff.shifts)


def test_small_versions_warn_and_no_shift_is_called_large(
    workspace: Workspace, write_file: WriteFile
) -> None:
    # 50 rows each from one distribution: PSI over 20 bins passes 0.2 by chance alone.
    v1, v2 = (_frame(50, seed=seed, shift=0.0, categories=["A", "B", "C"]) for seed in (1, 2))
    ingest(workspace, write_file(v1, "v1.csv"), name="d", id="id")
    ingest(workspace, write_file(v2, "v2.csv"), name="d")

    diff = diff_versions(workspace, "d@1", "d@2")

    a = next(s for s in diff.shifts if s.column == "a")
    assert a.psi > 0.2 and not a.large
    assert a.bins == 20 and a.noise == pytest.approx(19 * (1 / 50 + 1 / 50))
    assert not any(s.large for s in diff.shifts)
    assert diff.warnings == [
        "d@1 and d@2 have 50 and 50 rows: too few for PSI over 20 bins. Samples of these sizes "
        "from one distribution differ by a PSI of about 0.76 by chance alone (0.2 is a large "
        "shift), so no shift is called large in 4 of 4 columns. Compare versions of 380 rows "
        "or more."
    ]


def test_diff_round_trips_as_plain_data(
    any_workspace: Workspace, shifted: tuple[DatasetVersion, DatasetVersion]
) -> None:
    diff = diff_versions(any_workspace, "d@1", "d@2")

    assert DatasetDiff.model_validate_json(diff.model_dump_json()) == diff
