"""Shared fixtures: an isolated workspace per test, on SQLite and (marked) on PostgreSQL.

PostgreSQL and Redis are real services on loopback. Without them a test that needs one skips
with the reason, except under SHIPYARD_REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shipyard.core.settings import Settings
from shipyard.security import init_workspace
from shipyard.store.workspace import Workspace

PG_URL = os.environ.get("SHIPYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE = os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1"


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if REQUIRE:
        pytest.fail(message + " and SHIPYARD_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's SHIPYARD_* variables or writes to the real working dir."""
    for key in list(os.environ):
        if key.startswith("SHIPYARD_") and key not in (
            "SHIPYARD_REQUIRE_SERVICES",
            "SHIPYARD_TEST_PG_URL",
        ):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; dropped afterwards."""
    schema = "t_" + secrets.token_hex(6)
    try:
        engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        _unavailable(f"PostgreSQL at {PG_URL}", exc)
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(home=str(tmp_path / "ws"))


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    """An initialised SQLite workspace."""
    ws, _token, _secret = init_workspace(settings)
    yield ws
    ws.close()


@pytest.fixture
def any_workspace(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    """An initialised workspace on SQLite and on PostgreSQL."""
    ws, _token, _secret = init_workspace(Settings.load(home=str(tmp_path / "ws"), db=db_url))
    yield ws
    ws.close()
