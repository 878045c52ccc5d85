"""Shipyard's one typed settings object.

Values come, highest first, from keyword arguments, `SHIPYARD_*` environment variables, and
`<home>/config.toml` (written by `shipyard init`, editable by hand). Nothing else in Shipyard
reads the environment: the settings object is built once at the edge and passed down.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.core.errors import SpecError

CONFIG_FILE = "config.toml"


class Settings(BaseSettings):
    """Where the workspace lives and which stores it uses."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", extra="forbid", frozen=True)

    home: Path = Field(
        default=Path(".shipyard"),
        description="Workspace directory: SQLite database, local artifacts, keys.",
    )
    db: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default sqlite:///<home>/shipyard.db.",
    )
    artifacts: str | None = Field(
        default=None,
        description="fsspec URL or path of the artifact store; default <home>/artifacts.",
    )
    redis: str | None = Field(default=None, description="Redis URL for streams and rate limits.")
    url: str | None = Field(
        default=None,
        description="URL of the Shipyard server `shipyard.Client` talks to, e.g. "
        "http://127.0.0.1:8000 (what `shipyard serve` prints).",
    )
    token: SecretStr | None = Field(
        default=None, description="API token the client sends to a Shipyard server."
    )
    actor: str | None = Field(
        default=None,
        description="Name recorded in the audit log for local actions; default local:<os user>.",
    )
    max_upload_mb: int = Field(
        default=4096,
        ge=1,
        description="Largest file the server takes in one upload (dataset ingest and validate), "
        "in MiB; a bigger one is refused with 413 and nothing is stored.",
    )
    require_services: bool = Field(
        default=False,
        description="Tests only: fail instead of skipping when PostgreSQL or Redis is missing.",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from overrides, then the environment, then `<home>/config.toml`."""
        env_home = os.environ.get("SHIPYARD_HOME")
        home = Path(overrides.get("home") or env_home or ".shipyard").expanduser().resolve()
        file_values = _read_config(home / CONFIG_FILE)
        # Environment variables win over the file: drop file keys the environment also sets.
        file_values = {
            k: v for k, v in file_values.items() if f"SHIPYARD_{k.upper()}" not in os.environ
        }
        return cls(**{**file_values, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'shipyard.db'}"

    @property
    def artifacts_url(self) -> str:
        return self.artifacts or str(self.home / "artifacts")

    @property
    def actor_name(self) -> str:
        if self.actor:
            return self.actor
        try:
            user = os.getlogin()
        except OSError:
            user = os.environ.get("USER", "owner")
        return f"local:{user}"


_FILE_KEYS = {"db", "artifacts", "redis", "actor"}


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            f"{path}: not valid TOML ({exc}). Fix the file or delete it to use the defaults."
        ) from exc
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise SpecError(
            f"{path}: unknown key(s) {', '.join(unknown)}; expected only "
            f"{', '.join(sorted(_FILE_KEYS))}."
        )
    return data
