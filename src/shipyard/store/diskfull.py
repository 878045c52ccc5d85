"""A full disk, recognised where the stores meet the operating system.

`ENOSPC` (an `OSError` with errno 28; `EDQUOT` too: a quota is a full disk to its user),
SQLite's "database or disk is full" (SQLITE_FULL: the disk, or the database's
`max_page_count`) and PostgreSQL's disk_full (SQLSTATE 53100) become `StorageFull`, which names
the store and says to free space. Without this, a full disk surfaced as "cannot connect to the
metadata database … check that the server is running" or as an unexpected OSError.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from shipyard.core.errors import StorageFull

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = "database or disk is full"
_PG_DISK_FULL = "53100"  # PostgreSQL's disk_full: "could not extend file … No space left"


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it wraps, says the storage is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if _SQLITE_FULL in str(exc) or getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
            return True
        if getattr(exc, "sqlstate", None) == _PG_DISK_FULL:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def full_error(what: str, exc: BaseException) -> StorageFull:
    return StorageFull(
        f"{what} is out of space ({_reason(exc)}). Free space on the disk "
        "it is on (or raise the quota), then run the command again.",
        details={"store": what},
    )


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Translate a full disk inside the block into `StorageFull` naming `what`."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise full_error(what, exc) from exc
        raise


def _reason(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return current.strerror or "no space left on device"
        if _SQLITE_FULL in str(current):
            return _SQLITE_FULL
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return str(getattr(exc, "orig", None) or exc)  # SQLAlchemy's wrapper adds a URL to its docs
