"""Staging directories for ingests in the workspace's scratch space, and the sweep that removes
those left behind by ingests that were killed.

An ingest stages its files in `<scratch>/ingest-<random>/` and holds an exclusive `flock` on
the `lock` file inside for as long as it runs. The kernel drops the lock when the process ends,
however it ends (SIGKILL, out of memory, a lost container), so the next ingest tells a dead
ingest's directory from a running one's without trusting process ids, which are reused and
differ between the containers that may share a workspace. The directory is made under a hidden
name and renamed once its lock is held, so a sweep never sees a live directory unlocked.
Directories without a lock (hidden ones whose ingest died before the rename, and those of older
Shipyard versions) are removed once they are older than `UNLOCKED_AFTER`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "ingest-"
LOCK = "lock"
UNLOCKED_AFTER = 3600.0  # seconds; an unlocked directory younger than this may be starting up


@contextmanager
def staging(scratch: Path) -> Iterator[Path]:
    """A fresh staging directory, removed with its files on the way out; stale ones of killed
    ingests are removed first."""
    sweep(scratch)
    name = PREFIX + secrets.token_hex(6)
    hidden = scratch / ("." + name)
    hidden.mkdir()
    fd = os.open(hidden / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        _lock(fd)
        directory = hidden.rename(scratch / name)
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        shutil.rmtree(hidden, ignore_errors=True)
        os.close(fd)  # the lock goes last, so a sweep never takes a directory still in use


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # no one else knows the directory yet: never waits
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # A filesystem without locks: the ingest runs, and no sweep can ever take its files.


def sweep(scratch: Path) -> list[str]:
    """Remove the staging directories of ingests that are no longer running; their names."""
    removed = []
    for directory in sorted(scratch.glob(f"{PREFIX}*")) + sorted(scratch.glob(f".{PREFIX}*")):
        if directory.is_dir() and _remove_if_abandoned(directory):
            removed.append(directory.name)
    return removed


def _remove_if_abandoned(directory: Path) -> bool:
    if directory.name.startswith("."):  # not yet locked, or its ingest died before the rename
        return _remove_if_old(directory)
    try:
        fd = os.open(directory / LOCK, os.O_RDWR)
    except FileNotFoundError:  # made by an older Shipyard, or already removed
        return _remove_if_old(directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its ingest is running (or locks do not work here: leave it)
        os.close(fd)
        return False
    try:
        shutil.rmtree(directory, ignore_errors=True)
    finally:
        os.close(fd)
    return True


def _remove_if_old(directory: Path) -> bool:
    try:
        age = time.time() - directory.stat().st_mtime
    except FileNotFoundError:
        return False
    if age <= UNLOCKED_AFTER:
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return True
