"""Factories for the data suite: small real files in tmp_path, and snapshots of what is stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from shipyard.core.records import AuditEvent
from shipyard.store import audit
from shipyard.store.tables import AuditRow, DatasetRow, DatasetVersionRow
from shipyard.store.workspace import Workspace


@pytest.fixture
def loans() -> Callable[..., pd.DataFrame]:
    """`loans(rows, seed=0, start_id=1)`: a small loan book with every column type we infer."""

    def make(rows: int = 40, *, seed: int = 0, start_id: int = 1) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "loan_id": np.arange(start_id, start_id + rows, dtype=np.int64),
                "income": rng.normal(50_000, 12_000, rows).round(2),
                "grade": rng.choice(["A", "B", "C", "D"], rows),
                "sex": rng.choice(["F", "M"], rows),
                "issued_at": pd.date_range("2024-01-01", periods=rows, freq="h", unit="us"),
                "defaulted": rng.integers(0, 2, rows).astype(np.int64),
            }
        )

    return make


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    with path.open("w") as fh:
        for record in frame.to_dict(orient="records"):
            plain = {
                k: (v.isoformat(sep=" ") if isinstance(v, pd.Timestamp) else v)
                for k, v in record.items()
            }
            fh.write(json.dumps(plain, default=lambda v: v.item()) + "\n")


@pytest.fixture
def write_file(data_dir: Path) -> Callable[[pd.DataFrame, str], Path]:
    """`write_file(frame, "name.csv")`: the frame in the format its suffix names."""

    def write(frame: pd.DataFrame, name: str) -> Path:
        path = data_dir / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        elif name.endswith(".tsv"):
            frame.to_csv(path, index=False, sep="\t")
        elif name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        elif name.endswith(".jsonl"):
            _write_jsonl(frame, path)
        else:
            raise AssertionError(f"no writer for {name}")
        return path

    return write


@pytest.fixture
def write_text(data_dir: Path) -> Callable[[str, str], Path]:
    """`write_text("name.csv", "a,b\\n1,2\\n")`: a file with exactly these characters."""

    def write(name: str, text: str) -> Path:
        path = data_dir / name
        path.write_bytes(text.encode())
        return path

    return write


@pytest.fixture
def csv_lines(data_dir: Path) -> Callable[..., Path]:
    """`csv_lines(header, rows, name=...)`: a CSV from a header line and row strings."""

    def write(header: str, rows: list[str], *, name: str = "data.csv") -> Path:
        path = data_dir / name
        path.write_text("\n".join([header, *rows]) + "\n")
        return path

    return write


@pytest.fixture
def sqlite_table(data_dir: Path) -> Callable[..., str]:
    """`sqlite_table(frame, table="loans")`: a real SQLite file holding the frame; its URL."""

    def make(frame: pd.DataFrame, table: str = "loans") -> str:
        path = data_dir / "source.db"
        columns = ", ".join(f'"{c}" {_sqlite_type(frame[c])}' for c in frame.columns)
        marks = ", ".join("?" for _ in frame.columns)
        rows = [
            tuple(None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row)
            for row in frame.itertuples(index=False)
        ]
        with sqlite3.connect(path) as conn:
            conn.execute(f'CREATE TABLE "{table}" ({columns})')
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        conn.close()
        return f"sqlite:///{path}"

    return make


def _sqlite_type(series: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(series):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series):
        return "REAL"
    return "TEXT"


# -- what the workspace holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    datasets: int
    versions: int
    events: int
    blobs: frozenset[str]
    scratch: tuple[str, ...]


def _snapshot(ws: Workspace) -> Stored:
    with ws.db.read() as s:
        datasets = s.scalar(select(func.count()).select_from(DatasetRow)) or 0
        versions = s.scalar(select(func.count()).select_from(DatasetVersionRow)) or 0
        events = s.scalar(select(func.count()).select_from(AuditRow)) or 0
    root = Path(ws.artifacts.root)
    blobs = frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    scratch = tuple(sorted(p.name for p in ws.scratch.iterdir()))
    return Stored(datasets, versions, events, blobs, scratch)


@pytest.fixture
def stored() -> Callable[[Workspace], Stored]:
    """`stored(ws)`: row counts, artifact blobs and scratch entries, to compare before/after."""
    return _snapshot


@pytest.fixture
def stores_nothing() -> Callable[[Workspace], AbstractContextManager[None]]:
    """`with stores_nothing(ws): ...`: the block adds no rows, blobs, events or scratch files."""

    @contextmanager
    def check(ws: Workspace) -> Iterator[None]:
        before = _snapshot(ws)
        yield
        after = _snapshot(ws)
        assert after == before
        assert after.scratch == ()

    return check


@pytest.fixture
def ingest_events() -> Callable[[Workspace], list[AuditEvent]]:
    """`ingest_events(ws)`: the `dataset.ingest` audit events, newest first."""

    def events(ws: Workspace) -> list[AuditEvent]:
        with ws.db.read() as s:
            return audit.events(s, limit=None, action="dataset.ingest")

    return events
