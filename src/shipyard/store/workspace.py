"""A workspace: settings, the metadata database, the artifact store and the acting identity.

Every service takes a `Workspace` as its first argument. `Workspace.open()` refuses a home
that was never initialised; `Workspace.create()` makes one (used by `shipyard init`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.errors import Conflict, NotInitialised
from shipyard.core.settings import CONFIG_FILE, Settings
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.db import Database
from shipyard.store.keys import KEY_FILE, Signer, create_key


@dataclass
class Workspace:
    settings: Settings
    db: Database
    artifacts: ArtifactStore
    actor: str
    _signer: Signer | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = Signer(self.home)
        return self._signer

    @property
    def scratch(self) -> Path:
        """Local scratch space for work in progress (same filesystem as local artifacts)."""
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @classmethod
    def open(cls, settings: Settings, *, actor: str | None = None) -> Workspace:
        if not (settings.home / CONFIG_FILE).exists():
            raise NotInitialised(
                f"no Shipyard workspace at {settings.home}; run `shipyard init` there first, "
                "or point SHIPYARD_HOME at an existing workspace."
            )
        db = Database(settings.db_url)
        db.upgrade()
        return cls(
            settings, db, ArtifactStore(settings.artifacts_url), actor or settings.actor_name
        )

    @classmethod
    def create(cls, settings: Settings) -> Workspace:
        """Make the directory, config file, signing key and database schema."""
        config = settings.home / CONFIG_FILE
        if config.exists():
            raise Conflict(
                f"a workspace already exists at {settings.home}; use it as it is, create more "
                "tokens with `shipyard tokens create`, or choose another SHIPYARD_HOME."
            )
        settings.home.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        db.upgrade()  # before anything is written, so a bad database URL leaves no half workspace
        if not (settings.home / KEY_FILE).exists():
            create_key(settings.home)
        lines = [f"{k} = {v!r}".replace("'", '"') for k, v in _explicit(settings).items()]
        config.write_text(
            "# Shipyard workspace settings (SHIPYARD_* variables override)\n"
            + "".join(f"{line}\n" for line in lines)
        )
        (settings.home / ".gitignore").write_text("*\n")
        return cls(settings, db, ArtifactStore(settings.artifacts_url), settings.actor_name)

    def close(self) -> None:
        self.db.dispose()


def _explicit(settings: Settings) -> dict[str, str]:
    return {k: v for k in ("db", "artifacts") if (v := getattr(settings, k))}
