"""Content-addressed artifact store over fsspec.

A blob's key is the SHA-256 of its bytes, laid out as `sha256/ab/cd/<digest>`. Writes are
atomic (temporary file, fsync, rename on local disk; single-object puts on object stores);
reads verify the digest. Keys are validated before they touch a path, so nothing a user types
can name a file outside the store's root.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from shipyard.core.errors import (
    Integrity,
    Invalid,
    NotFound,
    NotSupported,
    ShipyardError,
    Unavailable,
)
from shipyard.store.diskfull import storage_errors

CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def check_digest(digest: str) -> str:
    """Accept only a lowercase hex SHA-256; anything else could be a path trick."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise Invalid(
            f"artifact key {digest!r} is not a SHA-256 digest (64 lowercase hex characters)."
        )
    return digest


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# fsspec protocol → (the package that implements it, Shipyard's extra that installs it)
_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "adl": ("adlfs", "azure"),
}


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and root path of a store URL, creating nothing.

    A protocol whose package is missing is `NotSupported` naming the package and the extra
    (`pip install 'shipyard[s3]'`); an unknown protocol is `Invalid`.
    """
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        protocol = url.split("://", 1)[0].lower()
        package, extra = _EXTRAS.get(protocol, (None, None))
        fix = (
            f"pip install 'shipyard[{extra}]' (installs {package})"
            if extra
            else f"install the fsspec implementation of {protocol}:// ({exc})"
        )
        raise NotSupported(
            f"the artifact store {url} needs a package that is not installed: {fix}; "
            "or give a local path."
        ) from exc
    except ValueError as exc:  # fsspec: "Protocol not known: foo"
        raise Invalid(
            f"artifact store URL {url!r} is not usable ({exc}); expected a path or an fsspec "
            "URL such as s3://bucket/prefix, gs://bucket/prefix or az://container/prefix."
        ) from exc
    return fs, root


class ArtifactStore:
    """Blobs by digest. `url` is a local path or any fsspec URL (s3://, gs://, memory://)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, root = filesystem(url)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.local else root.rstrip("/")
        try:
            with storage_errors(self.what):
                self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission: not Shipyard's bug
            raise Unavailable(
                f"cannot create the artifact store at {url}: {exc.strerror or exc}. Choose "
                "another path (--artifacts, SHIPYARD_ARTIFACTS) or fix its permissions."
            ) from exc

    def check_writable(self) -> None:
        """Write and remove a small object, so that a store that cannot take writes (no
        permission, no such bucket, no credentials) is refused before anything relies on it."""
        probe = f"{self.root}/.shipyard-probe-{secrets.token_hex(8)}"
        try:
            with storage_errors(self.what):
                self.fs.pipe_file(probe, b"shipyard")
                self.fs.rm_file(probe)
        except ShipyardError:
            raise
        except Exception as exc:  # permissions, a missing bucket, credentials: all fsspec's own
            raise Unavailable(
                f"cannot write to the artifact store {self.url}: {type(exc).__name__}: {exc}. "
                "Check the path or bucket, its permissions and the credentials."
            ) from exc

    # -- keys -----------------------------------------------------------------------------------

    def path_of(self, digest: str) -> str:
        """The store path of a digest; raises `Invalid` for anything but a digest."""
        d = check_digest(digest)
        path = f"{self.root}/sha256/{d[:2]}/{d[2:4]}/{d}"
        if self.local:
            resolved = os.path.realpath(path)
            if os.path.commonpath([resolved, self.root]) != self.root:
                raise Invalid(f"artifact key {digest!r} resolves outside the artifact store.")
        return path

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self.path_of(digest)))

    # -- writes ---------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with storage_errors(self.what):
            if not self.exists(digest):
                self._put_bytes(data, digest)
        return digest

    def _put_bytes(self, data: bytes, digest: str) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            self._place(Path(tmp.name), digest)
        finally:
            Path(tmp.name).unlink(missing_ok=True)

    def put_file(self, path: str | Path, digest: str | None = None, *, move: bool = False) -> str:
        """Store a local file's bytes; returns the digest. With `move=True` a file on the same
        local filesystem is renamed into place (no copy); otherwise it is left where it is."""
        with storage_errors(self.what):
            return self._put_file(Path(path), digest, move=move)

    @property
    def what(self) -> str:
        return f"the artifact store {self.url}"

    def _put_file(self, source: Path, digest: str | None, *, move: bool) -> str:
        digest = digest or sha256_file(source)
        if self.exists(digest):
            return digest
        if move and self.local:
            target = self.path_of(digest)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with source.open("rb") as fh:
                os.fsync(fh.fileno())
            try:
                os.replace(source, target)
                return digest
            except OSError:  # another filesystem: fall back to the copying write
                pass
        self._place(source, digest)
        return digest

    def _place(self, source: Path, digest: str) -> None:
        target = self.path_of(digest)
        if not self.local:
            self.fs.put_file(str(source), target)
            return
        target_dir = os.path.dirname(target)
        os.makedirs(target_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def discard(self, digest: str) -> None:
        """Remove a blob that nothing records (a write whose transaction failed); no-op if gone.

        Only for blobs the caller itself just added: a blob is shared by everything with the
        same bytes, so removing one that a record points at would break that record.
        """
        path = self.path_of(digest)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    # -- reads ----------------------------------------------------------------------------------

    def get_bytes(self, digest: str) -> bytes:
        path = self._existing(digest)
        with self.fs.open(path, "rb") as fh:
            data: bytes = fh.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise _corrupt(digest, path)
        return data

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob; raises `Integrity` if its bytes changed."""
        path = self._existing(digest)
        h = hashlib.sha256()
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        if h.hexdigest() != digest:
            raise _corrupt(digest, path)

    @contextmanager
    def open_verified(self, digest: str) -> Iterator[IO[bytes]]:
        """Open a blob for reading after checking its digest."""
        self.verify(digest)
        with self.fs.open(self._existing(digest), "rb") as fh:
            yield fh

    def local_path(self, digest: str) -> str:
        """A verified local path to the blob (local stores only; others use `open_verified`)."""
        if not self.local:
            raise Invalid("local_path() needs a local artifact store; use open_verified().")
        self.verify(digest)
        return self._existing(digest)

    def _existing(self, digest: str) -> str:
        path = self.path_of(digest)
        if not self.fs.exists(path):
            raise NotFound(
                f"artifact {digest[:12]}… is not in the artifact store at {self.url}; "
                "the store may have been moved or pruned (check SHIPYARD_ARTIFACTS)."
            )
        return path


def _corrupt(digest: str, path: str) -> Integrity:
    return Integrity(
        f"artifact {digest[:12]}… at {path} does not match its digest: the bytes were changed "
        "after they were written. Restore it from a backup or re-create the object."
    )
