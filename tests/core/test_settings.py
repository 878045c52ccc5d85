"""Settings: defaults, config.toml, environment precedence, and errors in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import SpecError
from shipyard.core.settings import Settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def test_defaults_live_under_dot_shipyard_in_the_cwd(tmp_path: Path) -> None:
    settings = Settings.load()  # conftest chdirs into tmp_path and clears SHIPYARD_*
    home = (tmp_path / ".shipyard").resolve()
    assert settings.home == home
    assert settings.home.is_absolute()
    assert settings.db_url == f"sqlite:///{home / 'shipyard.db'}"
    assert settings.artifacts_url == str(home / "artifacts")
    assert (settings.db, settings.artifacts, settings.redis, settings.token) == (None,) * 4


def test_relative_home_is_resolved(tmp_path: Path) -> None:
    settings = Settings.load(home="sub/../ws")
    assert settings.home == (tmp_path / "ws").resolve()
    assert settings.db_url == f"sqlite:///{settings.home / 'shipyard.db'}"


def test_home_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "elsewhere"))
    settings = Settings.load()
    assert settings.home == (tmp_path / "elsewhere").resolve()
    assert settings.artifacts_url == str(settings.home / "artifacts")


def test_config_toml_values_are_used(home: Path) -> None:
    (home / "config.toml").write_text(
        'db = "sqlite:////data/meta.db"\nartifacts = "s3://bucket/art"\n'
        'redis = "redis://127.0.0.1:6379/0"\nactor = "ci-bot"\n'
    )
    settings = Settings.load(home=str(home))
    assert settings.db_url == "sqlite:////data/meta.db"
    assert settings.artifacts_url == "s3://bucket/art"
    assert settings.redis == "redis://127.0.0.1:6379/0"
    assert settings.actor_name == "ci-bot"


def test_config_toml_of_the_env_home_is_read(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "config.toml").write_text('artifacts = "/srv/art"\n')
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    assert Settings.load().artifacts_url == "/srv/art"


def test_environment_overrides_config_toml(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "config.toml").write_text('db = "sqlite:////from/file.db"\nartifacts = "/from/file"\n')
    monkeypatch.setenv("SHIPYARD_DB", "postgresql://u@db.example:5432/meta")
    settings = Settings.load(home=str(home))
    assert settings.db_url == "postgresql://u@db.example:5432/meta"
    assert settings.artifacts_url == "/from/file"  # keys the environment does not set still apply


def test_arguments_override_environment_and_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('db = "sqlite:////from/file.db"\n')
    monkeypatch.setenv("SHIPYARD_DB", "sqlite:////from/env.db")
    settings = Settings.load(home=str(home), db="sqlite:////from/arg.db")
    assert settings.db_url == "sqlite:////from/arg.db"


def test_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", "shp_supersecret")
    settings = Settings.load()
    assert settings.token is not None
    assert settings.token.get_secret_value() == "shp_supersecret"
    assert "shp_supersecret" not in repr(settings)
    assert "shp_supersecret" not in str(settings.model_dump())


def test_actor_defaults_to_the_local_user() -> None:
    assert Settings.load().actor_name.startswith("local:")
    assert Settings.load(actor="api:ci").actor_name == "api:ci"


def test_settings_are_frozen() -> None:
    settings = Settings.load()
    with pytest.raises(ValueError, match="frozen"):
        settings.db = "sqlite:///x"  # type: ignore[misc]


@pytest.mark.parametrize("key", ["home", "token", "dbb", "require_services"])
def test_unknown_key_in_config_toml_is_named(home: Path, key: str) -> None:
    path = home / "config.toml"
    path.write_text(f'db = "sqlite:///x.db"\n{key} = "value"\n')
    with pytest.raises(
        SpecError,
        match=rf"^{path}: unknown key\(s\) {key}; expected only actor, artifacts, db, redis\.$",
    ):
        Settings.load(home=str(home))


def test_every_unknown_key_is_listed(home: Path) -> None:
    (home / "config.toml").write_text('zeta = 1\nalpha = 2\ndb = "x"\n')
    with pytest.raises(SpecError, match=r"unknown key\(s\) alpha, zeta; expected only"):
        Settings.load(home=str(home))


@pytest.mark.parametrize(
    "content", ['db = "unterminated\n', "db = sqlite:///x\n", "[db\n", 'db = "a"\ndb = "b"\n']
)
def test_invalid_toml_is_a_spec_error(home: Path, content: str) -> None:
    path = home / "config.toml"
    path.write_text(content)
    with pytest.raises(
        SpecError, match=rf"^{path}: not valid TOML \(.*\)\. Fix the file or delete it"
    ):
        Settings.load(home=str(home))


def test_unknown_environment_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # SHIPYARD_TEST_PG_URL and friends share the prefix; they must not break every command.
    monkeypatch.setenv("SHIPYARD_SOMETHING_ELSE", "1")
    assert Settings.load().db is None
