"""The metadata database on SQLite and PostgreSQL: migrations, transactions, connection errors."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from shipyard.core.errors import Invalid, Unavailable
from shipyard.store.db import Database
from shipyard.store.tables import TokenRow

TABLES = {"alembic_version", "audit_events", "datasets", "dataset_versions", "tokens"}


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def _token_row(token_id: str = "tok_1") -> TokenRow:
    return TokenRow(
        id=token_id,
        name="t",
        role="viewer",
        secret_hash=token_id.ljust(64, "0"),
        prefix="shp_x",
        created_at=datetime.now(UTC),
        created_by="test",
    )


def test_upgrade_creates_the_schema(db: Database) -> None:
    assert db.current() is None
    assert not TABLES & set(inspect(db.engine).get_table_names())
    db.upgrade()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    assert db.head() is not None
    assert db.current() == db.head()


def test_upgrade_is_idempotent(db: Database) -> None:
    db.upgrade()
    with db.write() as s:
        s.add(_token_row())
    db.upgrade()
    db.upgrade()
    assert db.current() == db.head()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(TokenRow)) == 1


def test_upgrade_from_a_second_engine_sees_the_current_schema(db: Database, db_url: str) -> None:
    db.upgrade()
    other = Database(db_url)
    try:
        assert other.current() == other.head()
        other.upgrade()
        assert other.current() == db.head()
    finally:
        other.dispose()


def test_write_commits_on_success(db: Database) -> None:
    db.upgrade()
    with db.write() as s:
        s.add(_token_row("tok_ok"))
    with db.read() as s:
        assert s.get(TokenRow, "tok_ok") is not None


def test_write_rolls_back_on_exception(db: Database) -> None:
    db.upgrade()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.write() as s:
        s.add(_token_row("tok_a"))
        s.flush()  # the row reached the database inside the transaction
        assert s.get(TokenRow, "tok_a") is not None
        raise Boom

    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(TokenRow)) == 0
    # The database is usable afterwards: the failed transaction left no lock behind.
    with db.write() as s:
        s.add(_token_row("tok_b"))
    with db.read() as s:
        assert s.scalars(select(TokenRow.id)).all() == ["tok_b"]


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (tmp_path / "meta.db-wal").exists()
    finally:
        db.dispose()


def test_unreachable_postgres_is_unavailable_without_the_password() -> None:
    db = Database("postgresql://shipyard:hunter2secret@127.0.0.1:1/shipyard")
    try:
        for call in (db.upgrade, db.current):
            with pytest.raises(
                Unavailable,
                match=r"(?s)cannot connect to the metadata database .*Check SHIPYARD_DB",
            ) as info:
                call()
            message = info.value.message
            assert "shipyard:***@127.0.0.1:1/shipyard" in message
            assert "hunter2secret" not in message
            assert "hunter2secret" not in str(info.value)
    finally:
        db.dispose()


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "meta.db"
    with pytest.raises(Unavailable, match=r"cannot connect to the metadata database sqlite:///"):
        Database(f"sqlite:///{path}").upgrade()


@pytest.mark.parametrize("url", ["garbage", "", "://nothing", "not a url at all"])
def test_garbage_url_is_invalid(url: str) -> None:
    with pytest.raises(Invalid, match=r"does not parse; expected e\.g\. sqlite:///"):
        Database(url)


def test_unknown_scheme_is_invalid_and_hides_the_password() -> None:
    with pytest.raises(Invalid, match=r"is not usable .*expected e\.g\. sqlite:///") as info:
        Database("nosuchdb://user:pw-do-not-show@host/db")
    assert "pw-do-not-show" not in info.value.message
    assert "nosuchdb://user:***@host/db" in info.value.message


def test_missing_driver_is_unavailable() -> None:
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("mysqlclient is installed here, so mysql:// has its driver")
    with pytest.raises(Unavailable, match=r"mysql://u@h/db needs a driver that is not installed"):
        Database("mysql://u@h/db")
