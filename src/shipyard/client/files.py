"""Files both ways without holding them whole in memory: an upload's body read from a path or
an open binary file as httpx sends it, a download written chunk by chunk to a temporary file
beside the destination, its sha256 checked against the ETag before it takes the final name.

    client.datasets.upload("loans.csv", "loans", target="default", id="loan_id")
    got = client.models.download("credit@champion", "bundles/")   # bundles/credit-3.zip
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from shipyard.core.errors import Integrity, Invalid, NotFound

Source = str | os.PathLike[str] | IO[bytes]
_FILENAME = re.compile(r'filename="([^"/\\]+)"')


@contextlib.contextmanager
def opened(source: Source) -> Iterator[tuple[IO[bytes], str | None]]:
    """`source` as a binary file to stream, and its base name (None for a nameless file)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise NotFound(
                f"cannot upload {str(path)!r}: no such file (pass a path to a CSV, Parquet or "
                "JSON-lines file, or an open binary file).",
                details={"field": "source", "value": str(path)},
            )
        with path.open("rb") as fh:
            yield fh, path.name
        return
    if isinstance(source.read(0), str):
        raise Invalid(
            "the file to upload is open in text mode; open it with mode 'rb'.",
            details={"field": "source"},
        )
    name = getattr(source, "name", None)
    yield source, Path(name).name if isinstance(name, str) else None


@dataclass(frozen=True)
class Downloaded:
    path: Path  # where it was written
    sha256: str  # checked against the server's ETag
    size: int  # bytes


def receiver(dest: str | os.PathLike[str], what: str) -> _Receiver:
    return _Receiver(Path(dest), what)


class _Receiver:
    """Writes one streamed answer to `dest` (a file, or a directory for the server's file
    name), replacing it only once the whole body arrived and matched its ETag."""

    def __init__(self, dest: Path, what: str) -> None:
        self.dest, self.what = dest, what

    def __call__(self, response: httpx.Response) -> Downloaded:
        expected = response.headers.get("etag", "").strip('"')
        if not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise Integrity(
                f"the server sent {self.what} without a sha256 ETag ({expected!r}), so it "
                "cannot be checked; nothing was written.",
                details={"etag": expected},
            )
        dest = self.dest
        if dest.is_dir():
            found = _FILENAME.search(response.headers.get("content-disposition", ""))
            dest = dest / (found.group(1) if found else expected)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        h, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in response.iter_bytes():
                    h.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            got = h.hexdigest()
            if got != expected:
                raise Integrity(
                    f"{self.what} arrived with sha256 {got[:12]}… but the server's ETag says "
                    f"{expected[:12]}… ({size:,} bytes received); nothing was written to "
                    f"{dest}. Download it again; if it persists, the store or a proxy is "
                    "altering it.",
                    details={"expected": expected, "got": got, "size": size},
                )
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Downloaded(dest, got, size)
