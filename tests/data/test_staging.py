"""Staging directories: a killed ingest's files are removed by the next ingest, a running one's
are left alone. The ingests here are real processes, killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.data import ingest
from shipyard.data.staging import UNLOCKED_AFTER, staging, sweep
from shipyard.store.workspace import Workspace

# What an ingest does while it streams: stage a file, then keep going until it is killed.
_INGESTING = """
import sys, time
from pathlib import Path
from shipyard.data.staging import staging
with staging(Path(sys.argv[1])) as stage:
    (stage / "stream.parquet").write_bytes(b"rows")
    print(stage.name, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def ingesting(workspace: Workspace) -> Iterator[Callable[[], tuple[subprocess.Popen[str], str]]]:
    """`ingesting()`: a process in the middle of an ingest, and its staging directory's name."""
    started: list[subprocess.Popen[str]] = []
    src = str(Path(shipyard.__file__).parents[1])

    def start() -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _INGESTING, str(workspace.scratch)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": src},
        )
        started.append(proc)
        assert proc.stdout is not None
        return proc, proc.stdout.readline().strip()

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _ingest_one(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    pd.DataFrame({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5]}).to_csv(path, index=False)
    ingest(ws, path, name="small")


def test_the_next_ingest_removes_a_killed_ingests_files(
    workspace: Workspace, ingesting: Callable[[], tuple[subprocess.Popen[str], str]], tmp_path: Path
) -> None:
    proc, name = ingesting()
    assert (workspace.scratch / name / "stream.parquet").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (workspace.scratch / name).exists()  # what SIGKILL leaves behind

    _ingest_one(workspace, tmp_path)

    assert list(workspace.scratch.iterdir()) == []


def test_a_running_ingests_files_are_left_alone(
    workspace: Workspace, ingesting: Callable[[], tuple[subprocess.Popen[str], str]], tmp_path: Path
) -> None:
    proc, name = ingesting()

    _ingest_one(workspace, tmp_path)

    assert proc.poll() is None
    assert [p.name for p in workspace.scratch.iterdir()] == [name]
    assert (workspace.scratch / name / "stream.parquet").read_bytes() == b"rows"


def test_unlocked_directories_are_removed_only_when_old(tmp_path: Path) -> None:
    # An older Shipyard's staging directory (no lock), and one that died before its rename.
    old, hidden, recent = (
        tmp_path / "ingest-0a1b",
        tmp_path / ".ingest-2c3d",
        tmp_path / "ingest-4e",
    )
    for directory in (old, hidden, recent):
        directory.mkdir()
        (directory / "stream.parquet").write_bytes(b"rows")
    long_ago = (tmp_path / "ingest-4e").stat().st_mtime - UNLOCKED_AFTER - 60
    for directory in (old, hidden):
        os.utime(directory, (long_ago, long_ago))
    (tmp_path / "retrain-x.parquet").write_bytes(b"not an ingest's")

    assert sweep(tmp_path) == ["ingest-0a1b", ".ingest-2c3d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest-4e", "retrain-x.parquet"]


def test_staging_leaves_nothing_when_the_ingest_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), staging(tmp_path) as stage:
        (stage / "stream.parquet").write_bytes(b"rows")
        raise RuntimeError("boom")

    assert list(tmp_path.iterdir()) == []
