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


def test_logged_predictions_move_into_segments_and_back(db: Database) -> None:
    """Migration 0005: the row-per-prediction table's rows become Parquet segments (read back
    as they were), and a downgrade puts them back as rows."""
    from alembic import command

    from shipyard.store import logsegments

    def migrate(step: str, target: str) -> None:
        cfg = db._alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, target)

    migrate("upgrade", "0004")
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    old = [
        {
            "request_id": f"r{i}",
            "endpoint": "credit" if i < 3 else "other",
            "version_id": "mv_1",
            "at": at,
            "latency_ms": 1.5 + i,
            "shadow": i == 1,
            "row": 0,
            "inputs": None if i == 2 else {"income": 1000.0 + i, "grade": "A"},
            "outputs": {"label": "yes", "probabilities": {"no": 0.2, "yes": 0.8}},
        }
        for i in range(4)
    ]
    predictions = text(
        "INSERT INTO predictions (request_id, endpoint, version_id, at, latency_ms, shadow, "
        "row, inputs, outputs) VALUES (:request_id, :endpoint, :version_id, :at, :latency_ms, "
        ":shadow, :row, :inputs, :outputs)"
    )
    import json

    with db.engine.begin() as conn:
        conn.execute(
            predictions,
            [
                {**row, "inputs": json.dumps(row["inputs"]), "outputs": json.dumps(row["outputs"])}
                for row in old
            ],
        )

    migrate("upgrade", "head")
    assert "predictions" not in inspect(db.engine).get_table_names()
    with db.read() as s:
        infos = logsegments.segments(s, "credit")
        (rows,) = logsegments.scan_segments(s, infos)
        assert [i.rows for i in infos] == [3]
        assert [i.rows for i in logsegments.segments(s, "other")] == [1]
    assert rows.request_ids.tolist() == ["r0", "r1", "r2"]
    assert rows.shadow.tolist() == [False, True, False]
    assert [rows.input(i) for i in range(3)] == [
        {"income": 1000.0, "grade": "A"},
        {"income": 1001.0, "grade": "A"},
        None,
    ]
    assert rows.output(0) == old[0]["outputs"]

    migrate("downgrade", "0004")
    with db.engine.connect() as conn:
        back = conn.execute(
            text("SELECT request_id, endpoint, shadow, inputs FROM predictions ORDER BY id")
        ).all()
    assert [(r[0], r[1], bool(r[2])) for r in back] == [
        (row["request_id"], row["endpoint"], row["shadow"]) for row in old
    ]
    parsed = [
        json.loads(r[3]) if isinstance(r[3], str) else r[3] for r in back
    ]  # PostgreSQL: parsed
    assert parsed[:3] == [
        old[0]["inputs"],
        old[1]["inputs"],
        None,
    ]
    migrate("upgrade", "head")
