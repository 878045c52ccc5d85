"""A real, tiny, full-able disk for the full-disk tests: a tmpfs of a few hundred KiB.

Mounting needs root (CI containers run as root); elsewhere the tests that need it skip, saying
why. Importable from every suite because the root conftest puts tests/ on sys.path.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tiny_disk(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the length of the block."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(disk: Path) -> None:
    """Write zeros to `disk` until it has no space left."""
    chunk = b"\0" * 65536
    with (disk / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
