"""Versions: references resolve, unknown ones say what exists, reads verify the stored bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from shipyard.core.errors import Integrity, Invalid, NotFound
from shipyard.core.records import DatasetVersion, Ref
from shipyard.data import (
    get_dataset,
    get_version,
    ingest,
    list_datasets,
    list_versions,
    read_pandas,
    read_table,
)
from shipyard.store.workspace import Workspace

Frames = Callable[..., pd.DataFrame]
WriteFile = Callable[[pd.DataFrame, str], Path]


@pytest.fixture
def two_versions(
    any_workspace: Workspace, loans: Frames, write_file: WriteFile
) -> tuple[DatasetVersion, DatasetVersion]:
    v1 = ingest(
        any_workspace, write_file(loans(10), "jan.csv"), name="loans", target="defaulted"
    ).version
    v2 = ingest(any_workspace, write_file(loans(15, seed=1), "feb.csv"), name="loans").version
    return v1, v2


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("loans", 2), ("loans@latest", 2), ("loans@1", 1), ("loans@2", 2), (" loans@1 ", 1)],
)
def test_references_resolve(
    any_workspace: Workspace,
    two_versions: tuple[DatasetVersion, DatasetVersion],
    ref: str,
    expected: int,
) -> None:
    version = get_version(any_workspace, ref)

    assert version == two_versions[expected - 1]
    assert get_version(any_workspace, Ref.parse(ref)) == version


def test_unknown_version_lists_the_versions_that_exist(
    any_workspace: Workspace, two_versions: tuple[DatasetVersion, DatasetVersion]
) -> None:
    with pytest.raises(
        NotFound,
        match=r"dataset loans@3 does not exist: loans has versions 1 to 2\. "
        r"`shipyard data show loans` lists them",
    ):
        get_version(any_workspace, "loans@3")


def test_unknown_dataset_lists_the_known_ones(
    any_workspace: Workspace, two_versions: tuple[DatasetVersion, DatasetVersion]
) -> None:
    with pytest.raises(
        NotFound,
        match=r"dataset 'lones' does not exist \(known datasets: loans\)\. Ingest it with "
        r"`shipyard data ingest FILE --name lones`",
    ):
        get_version(any_workspace, "lones@1")


def test_unknown_dataset_in_an_empty_workspace(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match=r"dataset 'loans' does not exist \(no datasets are stored"):
        get_dataset(workspace, "loans")
    with pytest.raises(NotFound, match=r"dataset 'loans' does not exist"):
        list_versions(workspace, "loans")


def test_dataset_versions_have_no_aliases(
    any_workspace: Workspace, two_versions: tuple[DatasetVersion, DatasetVersion]
) -> None:
    with pytest.raises(NotFound, match=r"dataset versions have no aliases; use loans@N"):
        get_version(any_workspace, "loans@champion")


@pytest.mark.parametrize("ref", ["loans@0", "loans@-1", "../loans@1", "loans@1@2"])
def test_malformed_reference_is_invalid(workspace: Workspace, ref: str) -> None:
    with pytest.raises(Invalid, match=r"dataset reference"):
        get_version(workspace, ref)


def test_listing_datasets_and_versions(
    any_workspace: Workspace,
    two_versions: tuple[DatasetVersion, DatasetVersion],
    loans: Frames,
    write_file: WriteFile,
) -> None:
    ws = any_workspace
    other = ingest(ws, write_file(loans(5), "apr.csv"), name="april").version

    assert list_versions(ws, "loans") == list(two_versions)
    listed = [(d.name, d.versions, latest) for d, latest in list_datasets(ws)]
    assert listed == [("april", 1, other), ("loans", 2, two_versions[1])]
    dataset = get_dataset(ws, "loans")
    assert (dataset.versions, dataset.target, dataset.created_by) == (2, "defaulted", ws.actor)


def test_read_table_selects_columns(
    any_workspace: Workspace, two_versions: tuple[DatasetVersion, DatasetVersion], loans: Frames
) -> None:
    table = read_table(any_workspace, "loans@1", columns=["loan_id", "grade"])

    assert table.column_names == ["loan_id", "grade"]
    assert table.column("grade").to_pylist() == loans(10)["grade"].tolist()
    assert read_pandas(any_workspace, two_versions[1]).shape == (15, 6)


def test_reading_changed_bytes_is_an_integrity_error(
    workspace: Workspace, loans: Frames, write_file: WriteFile
) -> None:
    version = ingest(workspace, write_file(loans(10), "jan.csv"), name="loans").version
    blob = Path(workspace.artifacts.path_of(version.content_hash))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(Integrity, match=r"does not match its digest"):
        read_table(workspace, "loans@1")
