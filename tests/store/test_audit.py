"""The hash-chained audit log on SQLite and PostgreSQL: tampering is detected, writers queue."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from shipyard.store import audit
from shipyard.store.tables import AuditRow
from shipyard.store.workspace import Workspace


def _append(ws: Workspace, n: int, *, actor: str = "alice") -> None:
    for i in range(n):
        with ws.db.write() as s:
            audit.append(
                s,
                actor=actor,
                action="dataset.ingest",
                object_type="dataset",
                object_id=f"loans@{i + 1}",
                before=f"v{i}" if i else None,
                after=f"v{i + 1}",
                details={"rows": 100 + i, "nested": {"ok": True, "score": 0.5}},
            )


def _verify(ws: Workspace, **kwargs: str) -> audit.ChainReport:
    with ws.db.read() as s:
        return audit.verify(s, **kwargs)


def _seqs(ws: Workspace) -> list[int]:
    with ws.db.read() as s:
        return list(s.scalars(select(AuditRow.seq).order_by(AuditRow.seq)))


def test_appended_events_form_a_valid_chain(any_workspace: Workspace) -> None:
    ws = any_workspace
    start = _verify(ws)
    assert start.ok, start.problems
    _append(ws, 5)
    report = _verify(ws)
    assert report.ok, report.problems
    assert report.events == start.events + 5
    with ws.db.read() as s:
        rows = list(s.scalars(select(AuditRow).order_by(AuditRow.seq)))
        newest = audit.events(s, limit=1)[0]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert report.head == rows[-1].hash == newest.hash
    assert newest.details == {"rows": 104, "nested": {"ok": True, "score": 0.5}}
    assert _verify(ws, expect_head=start.head).ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("details", {"rows": 1_000_000}), ("actor", "mallory"), ("after", "v99")],
)
def test_editing_an_event_is_detected_by_seq(
    any_workspace: Workspace, column: str, value: object
) -> None:
    ws = any_workspace
    _append(ws, 4)
    target = _seqs(ws)[-2]
    with ws.db.write() as s:
        s.execute(update(AuditRow).where(AuditRow.seq == target).values({column: value}))

    report = _verify(ws)
    assert not report.ok
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"event #{target} (dataset.ingest on loans@")
    assert "was edited" in report.problems[0]


def test_editing_an_event_and_its_hash_breaks_the_next_link(any_workspace: Workspace) -> None:
    ws = any_workspace
    _append(ws, 3)
    seqs = _seqs(ws)
    with ws.db.write() as s:
        row = s.get(AuditRow, seqs[-2])
        assert row is not None
        row.actor = "mallory"
        row.hash = audit._hash(row)  # a careful forger re-hashes the edited event

    report = _verify(ws)
    assert not report.ok
    assert any(
        p.startswith(f"event #{seqs[-1]} (dataset.ingest) links to") for p in report.problems
    )


def test_deleting_a_middle_event_is_detected(any_workspace: Workspace) -> None:
    ws = any_workspace
    _append(ws, 5)
    seqs = _seqs(ws)
    victim, successor = seqs[-3], seqs[-2]
    with ws.db.write() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == victim))

    report = _verify(ws)
    assert not report.ok
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"event #{successor} (dataset.ingest) links to")
    assert "an event before it was deleted or changed" in report.problems[0]


def test_deleting_the_first_event_is_detected(any_workspace: Workspace) -> None:
    ws = any_workspace
    _append(ws, 2)
    first, second = _seqs(ws)[:2]
    with ws.db.write() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == first))
    report = _verify(ws)
    assert not report.ok
    assert report.problems[0].startswith(f"event #{second} ")


def test_deleting_the_last_event_needs_the_expected_head(any_workspace: Workspace) -> None:
    ws = any_workspace
    _append(ws, 3)
    head = _verify(ws).head
    with ws.db.write() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == _seqs(ws)[-1]))

    assert _verify(ws).ok  # a truncated tail is invisible without an outside reference
    report = _verify(ws, expect_head=head)
    assert not report.ok
    assert report.problems == [
        f"the expected head {head} is not in the chain: events at the end were deleted."
    ]


def test_unknown_expected_head_is_reported(any_workspace: Workspace) -> None:
    report = _verify(any_workspace, expect_head="f" * 64)
    assert not report.ok
    assert "f" * 64 in report.problems[0]


def test_prev_hash_is_unique_so_the_chain_cannot_fork(any_workspace: Workspace) -> None:
    ws = any_workspace
    _append(ws, 1)
    with ws.db.read() as s:
        last = s.scalars(select(AuditRow).order_by(AuditRow.seq.desc())).first()
        assert last is not None
        forked_from = last.prev_hash
    with pytest.raises(IntegrityError), ws.db.write() as s:
        s.add(
            AuditRow(
                id="evt_fork",
                at=last.at,
                actor="x",
                action="fork",
                object_type="x",
                object_id="x",
                details={},
                prev_hash=forked_from,
                hash="0" * 64,
            )
        )


def test_concurrent_appends_keep_one_unbroken_chain(any_workspace: Workspace) -> None:
    ws = any_workspace
    threads_n, per_thread = 6, 8
    before = _verify(ws).events
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            _append(ws, per_thread, actor=f"thread-{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors

    report = _verify(ws)
    assert report.ok, report.problems
    assert report.events == before + threads_n * per_thread
    with ws.db.read() as s:
        actors = s.execute(
            select(AuditRow.actor, func.count())
            .where(AuditRow.actor.startswith("thread-"))
            .group_by(AuditRow.actor)
        ).all()
        distinct_prev = s.scalar(select(func.count(func.distinct(AuditRow.prev_hash))))
    assert dict(actors) == {f"thread-{n}": per_thread for n in range(threads_n)}
    assert distinct_prev == report.events
