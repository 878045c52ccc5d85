"""The prediction log's segments on SQLite and PostgreSQL: a reader and a compaction at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shipyard.core.settings import Settings
from shipyard.security import init_workspace
from shipyard.store import logsegments
from shipyard.store.db import Database
from shipyard.store.tables import EndpointRow
from shipyard.store.workspace import Workspace

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def write_segments(db: Database, endpoint: str, count: int, rows: int = 2) -> list[str]:
    """`count` small segments of `endpoint`, one a minute; returns their request ids in order."""
    ids: list[str] = []
    with db.write() as s:
        if s.get(EndpointRow, endpoint) is None:  # what scan() checks; routing is not read
            s.add(
                EndpointRow(
                    name=endpoint,
                    config={},
                    revision=1,
                    created_at=T0,
                    created_by="test",
                    updated_at=T0,
                    updated_by="test",
                )
            )
        for k in range(count):
            request_ids = [f"r{k}-{i}" for i in range(rows)]
            at = int((T0 + timedelta(minutes=k)).timestamp() * 1_000_000)
            base = logsegments.base_arrays(
                request_ids,
                np.zeros(rows, dtype=np.int64),
                ["mv_1"] * rows,
                np.full(rows, at, dtype=np.int64),
                np.ones(rows),
                np.zeros(rows, dtype=bool),
            )
            table = logsegments.columnar_table(
                base,
                {"income": np.arange(rows, dtype=np.float64)},
                np.array(["yes"] * rows),
                None,
                None,
            )
            logsegments.insert_segment(s.connection(), endpoint, table, logsegments.encode(table))
            ids += request_ids
    return ids


def test_segments_listed_in_a_snapshot_stay_readable_while_compaction_merges_them(
    any_workspace: Workspace,
) -> None:
    db = any_workspace.db
    written = write_segments(db, "credit", 4)
    with logsegments.snapshot(db) as s:
        infos = logsegments.segments(s, "credit")
        first = logsegments.read_rows(s, infos[0])
        assert logsegments.compact(db, "credit") == 4  # another connection merges all four
        rest = [logsegments.read_rows(s, info) for info in infos[1:]]
    seen = [rid for rows in [first, *rest] for rid in rows.request_ids.tolist()]
    assert seen == written  # every row once, none from the merged segment as well
    with logsegments.snapshot(db) as s:
        assert [info.rows for info in logsegments.segments(s, "credit")] == [8]


def test_a_monitor_scan_counts_every_row_once_when_a_compaction_runs_mid_scan(
    any_workspace: Workspace,
) -> None:
    """Issue 17 #5: `loop run-once` failed with "prediction log segment 14 is gone"."""
    from shipyard.monitor.window import scan

    written = write_segments(any_workspace.db, "credit", 4)
    chunks = scan(any_workspace, "credit", None, None, chunk_rows=2)
    first = next(chunks)  # the first segment read and handed on
    assert logsegments.compact(any_workspace.db, "credit") == 4  # the server merges all four
    seen = [rid for chunk in [first, *chunks] for rid in chunk.request_ids.tolist()]
    assert seen == written
    again = [rid for c in scan(any_workspace, "credit", None, None) for rid in c.request_ids]
    assert again == written  # and from the merged segment, the same rows


def test_read_predictions_sees_a_compaction_between_list_and_load(
    any_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.serve.predlog import read_predictions

    db = any_workspace.db
    written = write_segments(db, "credit", 4)
    real_segments = logsegments.segments
    merges: list[int] = []

    def listed_then_merged(*args: object, **kwargs: object) -> list[logsegments.SegmentInfo]:
        infos = real_segments(*args, **kwargs)  # type: ignore[arg-type]
        if not merges:  # once, right after the reader listed the segments
            merges.append(logsegments.compact(db, "credit"))
        return infos

    monkeypatch.setattr(logsegments, "segments", listed_then_merged)
    assert [p.request_id for p in read_predictions(any_workspace, "credit")] == written
    assert merges == [4]


@pytest.mark.postgres
def test_feedback_finds_its_request_when_a_compaction_commits_between_list_and_load(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL only: on SQLite the feedback's write transaction holds the file's write lock,
    so no compaction commits during it."""
    from shipyard.serve.predlog import record_feedback

    ws, _token, _secret = init_workspace(Settings.load(home=str(tmp_path / "ws"), db=pg_url))
    write_segments(ws.db, "credit", 4)
    real_segments = logsegments.segments
    merges: list[int] = []

    def listed_then_merged(*args: object, **kwargs: object) -> list[logsegments.SegmentInfo]:
        infos = real_segments(*args, **kwargs)  # type: ignore[arg-type]
        if not merges:
            merges.append(logsegments.compact(ws.db, "credit"))
        return infos

    monkeypatch.setattr(logsegments, "segments", listed_then_merged)
    try:
        result = record_feedback(ws, "credit", [{"request_id": "r3-1", "label": "yes"}])
    finally:
        ws.close()
    assert merges == [4]
    assert (result.matched, result.unknown) == (1, 0)
