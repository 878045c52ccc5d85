"""A full disk under either store is `StorageFull` (exit 9), never "cannot connect" or an
unexpected OSError: for real, on a tiny tmpfs and with SQLite's `max_page_count`."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from shipyard.core.errors import StorageFull
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.db import Database
from shipyard.store.diskfull import is_disk_full
from tiny_disk import fill, tiny_disk


def test_artifacts_on_a_full_disk_are_storage_full_and_leave_no_temporary_file(
    tmp_path: Path,
) -> None:
    with tiny_disk(tmp_path / "disk", "512k") as disk:
        store = ArtifactStore(str(disk / "artifacts"))
        source = tmp_path / "model.bin"
        source.write_bytes(os.urandom(1 << 20))

        with pytest.raises(StorageFull, match=r"the artifact store .* is out of space"):
            store.put_file(source)
        with pytest.raises(StorageFull, match=r"No space left on device"):
            store.put_bytes(os.urandom(1 << 20))

        assert [p for p in (disk / "artifacts").rglob("*") if p.is_file()] == []
        small = store.put_bytes(b"fits")  # the failed writes gave their space back
        assert store.get_bytes(small) == b"fits"


def test_a_full_sqlite_database_is_storage_full_and_keeps_what_was_stored(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'full.db'}")
    db.upgrade()
    with db.write() as s:
        s.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, blob BLOB)"))
        s.execute(text("INSERT INTO filler (blob) VALUES (:b)"), {"b": b"kept"})
    with db.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)
    db.engine.dispose()

    @event.listens_for(db.engine, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:  # SQLite's own "disk": no page past this
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    full = r"metadata database .* out of space \(database or disk"
    with pytest.raises(StorageFull, match=full), db.write() as s:
        for _ in range(20):
            s.execute(text("INSERT INTO filler (blob) VALUES (:b)"), {"b": os.urandom(8192)})

    with db.read() as s:
        assert s.execute(text("SELECT blob FROM filler")).scalars().all() == [b"kept"]
    db.dispose()


def test_sqlite_on_a_full_disk_is_storage_full_not_unreachable(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "1m") as disk:
        url = f"sqlite:///{disk / 'shipyard.db'}"
        first = Database(url)
        first.upgrade()
        first.dispose()
        fill(disk)

        db = Database(url)
        with pytest.raises(StorageFull, match="out of space") as caught:
            db.upgrade()
            with db.write() as s:
                s.execute(text("CREATE TABLE t (x BLOB)"))
                s.execute(text("INSERT INTO t VALUES (:b)"), {"b": os.urandom(1 << 16)})
        assert "server is running" not in caught.value.message
        db.dispose()


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (RuntimeError("database or disk is full"), True),
        (RuntimeError("disk I/O error"), False),
    ],
)
def test_is_disk_full(exc: BaseException, full: bool) -> None:
    assert is_disk_full(exc) is full
    wrapped = RuntimeError("while writing")
    wrapped.__cause__ = exc
    assert is_disk_full(wrapped) is full


def test_postgres_disk_full_is_recognised() -> None:
    errors = pytest.importorskip("psycopg.errors")
    full = errors.DiskFull('could not extend file "base/16384/2619": No space left on device')

    assert is_disk_full(full)
    assert not is_disk_full(errors.UndefinedTable('relation "runs" does not exist'))
