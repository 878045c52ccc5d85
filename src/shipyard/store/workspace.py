"""A workspace: settings, the metadata database, the artifact store and the acting identity.

Every service takes a `Workspace` as its first argument. `Workspace.open()` refuses a home
that was never initialised; `Workspace.create()` makes one (used by `shipyard init`).
"""

from __future__ import annotations

import shutil
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.errors import Conflict, NotInitialised
from shipyard.core.settings import CONFIG_FILE, Settings
from shipyard.store.artifacts import ArtifactStore, filesystem
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
        """Make the directory, config file, signing key and database schema.

        The stores are checked first: the artifact store's fsspec protocol must import and a
        probe object must write, the database must connect and migrate. Whatever fails, what
        this call made is removed again, so a failed `shipyard init` can simply be re-run.
        """
        config = settings.home / CONFIG_FILE
        if config.exists():
            raise Conflict(
                f"a workspace already exists at {settings.home}; use it as it is, create more "
                "tokens with `shipyard tokens create`, or choose another SHIPYARD_HOME."
            )
        filesystem(settings.artifacts_url)  # a missing s3fs/gcsfs/adlfs, before anything exists
        undo = _Undo(settings)
        db: Database | None = None
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
            artifacts = ArtifactStore(settings.artifacts_url)
            artifacts.check_writable()
            db = Database(settings.db_url)
            db.upgrade()
            if not (settings.home / KEY_FILE).exists():
                create_key(settings.home)
            lines = [f"{k} = {v!r}".replace("'", '"') for k, v in _explicit(settings).items()]
            (settings.home / ".gitignore").write_text("*\n")
            config.write_text(  # last: its presence is what makes the directory a workspace
                "# Shipyard workspace settings (SHIPYARD_* variables override)\n"
                + "".join(f"{line}\n" for line in lines)
            )
        except BaseException:
            if db is not None:
                db.dispose()
            undo()
            raise
        return cls(settings, db, artifacts, settings.actor_name)

    def close(self) -> None:
        self.db.dispose()


def _explicit(settings: Settings) -> dict[str, str]:
    return {k: v for k in ("db", "artifacts") if (v := getattr(settings, k))}


class _Undo:
    """Removes what `Workspace.create` made if it fails: the home directory if it did not
    exist, else the files and directories of a workspace that were not there before."""

    def __init__(self, settings: Settings) -> None:
        home = settings.home
        self.home = home
        self.home_existed = home.exists()
        url = settings.db_url
        sqlite = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
        candidates = [home / CONFIG_FILE, home / ".gitignore", home / KEY_FILE, home / "keys"]
        if sqlite:
            db_file = Path(url.removeprefix("sqlite:///"))
            candidates += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
        artifacts = settings.artifacts_url
        if "://" not in artifacts or artifacts.startswith("file://"):
            candidates.append(Path(artifacts.removeprefix("file://")))
        self.new = [p for p in candidates if not p.exists()]

    def __call__(self) -> None:
        if not self.home_existed:
            shutil.rmtree(self.home, ignore_errors=True)
            return
        for path in self.new:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(OSError):  # never hide the error that made init fail
                    path.unlink()
