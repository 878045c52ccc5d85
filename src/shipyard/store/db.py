"""The metadata database: engine set-up, migrations and sessions.

SQLite (WAL mode) is the embedded default; PostgreSQL is chosen by URL. Write transactions on
SQLite start with `BEGIN IMMEDIATE`, so concurrent writers queue on the busy timeout instead
of failing half-way; on PostgreSQL the audit chain takes a transaction-scoped advisory lock.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shipyard.core.errors import Invalid, Unavailable
from shipyard.store.diskfull import full_error, is_disk_full, storage_errors

MIGRATIONS = Path(__file__).parent / "migrations"
_NEARLY_FULL = 1 << 20  # bytes free under which a SQLite I/O error is taken for a full disk


def normalise_url(url: str) -> str:
    """Pick an installed driver for a bare `postgresql://` URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise Invalid(
            f"database URL {url!r} does not parse; expected e.g. sqlite:///path/shipyard.db "
            "or postgresql://user@host:5432/db."
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None:
            raise Unavailable(
                "PostgreSQL needs a driver: pip install 'shipyard[postgres]' (installs psycopg)."
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine, two session factories (read and write), and the migration runner."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except ArgumentError as exc:  # includes NoSuchModuleError: an unknown scheme
            raise Invalid(
                f"database URL {self.safe_url} is not usable ({exc}); expected e.g. "
                "sqlite:///path/shipyard.db or postgresql://user@host:5432/db."
            ) from exc
        except ImportError as exc:
            raise Unavailable(
                f"database URL {self.safe_url} needs a driver that is not installed ({exc}); "
                "install it, or use sqlite:/// or postgresql://."
            ) from exc
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception.

        A full disk (or SQLite's `max_page_count`) is `StorageFull`, whatever the statement."""
        with self._full_disk(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def _full_disk(self) -> Iterator[None]:
        with storage_errors(self.what):
            try:
                yield
            except OperationalError as exc:
                if self._out_of_space():
                    raise full_error(self.what, exc) from exc
                raise

    def _out_of_space(self) -> bool:
        """SQLite on a full disk often says only "disk I/O error" (it could not grow its WAL or
        shared-memory file), so its directory's free space decides."""
        if not self.is_sqlite:
            return False
        database = make_url(self.url).database
        if not database or database == ":memory:":
            return False
        try:
            return shutil.disk_usage(Path(database).parent).free < _NEARLY_FULL
        except OSError:
            return False

    @property
    def what(self) -> str:
        return f"the metadata database {self.safe_url}"

    # -- migrations -----------------------------------------------------------------------------

    def _alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def head(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def current(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            if is_disk_full(exc) or self._out_of_space():  # not "unreachable"
                raise full_error(self.what, exc) from exc
            raise Unavailable(
                f"cannot connect to the metadata database {self.safe_url}: {exc.orig}. "
                "Check SHIPYARD_DB and that the server is running."
            ) from exc

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is current)."""
        if self.current() == self.head():
            return
        cfg = self._alembic_config()
        with self._full_disk(), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
