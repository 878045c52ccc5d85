"""The content-addressed artifact store: round trips, atomic writes, integrity, and key safety."""

from __future__ import annotations

import hashlib
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from shipyard.core.errors import Integrity, Invalid, NotFound
from shipyard.store.artifacts import ArtifactStore

CORRUPT = r"does not match its digest: the bytes were changed"


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _flip_one_byte(path: str | Path, offset: int = 0) -> None:
    with Path(path).open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


# -- round trips --------------------------------------------------------------------------------


def test_put_then_get_returns_the_same_bytes(store: ArtifactStore) -> None:
    data = b"model weights \x00\xff" * 1000
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(digest) == data
    with store.open_verified(digest) as fh:
        assert fh.read() == data


def test_same_bytes_give_the_same_digest_and_one_stored_file(store: ArtifactStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    other = store.put_bytes(b"different")
    assert first == second
    assert other != first
    assert len(_files(Path(store.root))) == 2


def test_put_file_stores_a_copy_and_leaves_the_source(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"abc" * 10_000)
    digest = store.put_file(source)
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert source.exists()
    assert Path(store.local_path(digest)).read_bytes() == source.read_bytes()


def test_exists_reports_stored_and_missing_digests(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"present")
    assert store.exists(digest)
    assert not store.exists(hashlib.sha256(b"absent").hexdigest())


def test_layout_is_sha256_prefix_directories(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"layout")
    expected = Path(store.root) / "sha256" / digest[:2] / digest[2:4] / digest
    assert expected.is_file()
    assert store.path_of(digest) == str(expected)


# -- atomic writes ------------------------------------------------------------------------------


def test_writes_leave_no_temporary_files(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "systemp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # put_bytes stages in the temp dir
    digests = {store.put_bytes(secrets.token_bytes(4096)) for _ in range(5)}
    source = tmp_path / "f.bin"
    source.write_bytes(b"from a file")
    digests.add(store.put_file(source))

    stored = _files(Path(store.root))
    assert {p.name for p in stored} == digests
    assert not [p for p in Path(store.root).rglob(".tmp-*")]
    assert list(scratch.iterdir()) == []


def test_a_failed_write_leaves_neither_temp_file_nor_blob(
    store: ArtifactStore, tmp_path: Path
) -> None:
    not_a_file = tmp_path / "a-directory"
    not_a_file.mkdir()
    digest = hashlib.sha256(b"never written").hexdigest()
    with pytest.raises(IsADirectoryError):
        store.put_file(not_a_file, digest=digest)
    assert not store.exists(digest)
    assert _files(Path(store.root)) == set()


# -- integrity ----------------------------------------------------------------------------------


@pytest.fixture
def corrupted(store: ArtifactStore) -> str:
    digest = store.put_bytes(b"precious bytes that must not change")
    _flip_one_byte(store.path_of(digest), offset=5)
    return digest


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda s, d: s.get_bytes(d), id="get_bytes"),
        pytest.param(lambda s, d: s.verify(d), id="verify"),
        pytest.param(lambda s, d: s.local_path(d), id="local_path"),
        pytest.param(lambda s, d: s.open_verified(d).__enter__(), id="open_verified"),
    ],
)
def test_one_flipped_byte_is_detected(
    store: ArtifactStore, corrupted: str, read: Callable[[ArtifactStore, str], object]
) -> None:
    with pytest.raises(Integrity, match=CORRUPT) as info:
        read(store, corrupted)
    assert corrupted[:12] in info.value.message


def test_untouched_blob_verifies(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"fine")
    store.verify(digest)
    assert Path(store.local_path(digest)).read_bytes() == b"fine"


def test_missing_digest_is_not_found(store: ArtifactStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    for read in (store.get_bytes, store.verify, store.local_path):
        with pytest.raises(NotFound, match=r"is not in the artifact store at .*SHIPYARD_ARTIFACTS"):
            read(digest)


# -- keys from user input -----------------------------------------------------------------------

HEX = "ab" * 32

TRAVERSAL = [
    "../",
    "..",
    "../../etc/passwd",
    "..\\..\\x",
    "%2e%2e/%2e%2e/x",
    "%2e%2e%2f" * 8,
    "/etc/passwd",
    "/tmp/" + HEX,
    "C:\\Windows\\system32",
    "a\x00b",
    HEX[:10] + "\x00" + HEX[11:],
    "",
    " ",
    HEX.upper(),
    "AB" + HEX[2:],
    HEX[:63],
    HEX + "a",
    HEX + "\n",
    "\n" + HEX,
    " " + HEX,
    "sha256/../x",
    "sha256/" + HEX,
    HEX[:32] + "/" + HEX[33:],
    "..\u2215..\u2215x",  # division slash
    "\u2025/x",  # two dot leader
    "\uff0e\uff0e/\uff0e\uff0e/x",  # fullwidth full stops
    "\u2024\u2024/etc/passwd",  # one dot leader
    "\uff41" * 64,  # fullwidth 'a'
    "\u0661" * 64,  # Arabic-Indic digit one
    "file:///etc/passwd",
    "memory://x",
]


@pytest.fixture
def fenced(tmp_path: Path) -> Iterator[tuple[ArtifactStore, Path]]:
    """A store with a bait file beside its root; the test checks the tree outside is untouched."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_bytes(b"secret outside the store")
    (tmp_path / "x").write_bytes(b"secret next to the store")
    yield ArtifactStore(str(tmp_path / "nest" / "artifacts")), tmp_path


@pytest.mark.parametrize("key", TRAVERSAL, ids=repr)
def test_anything_but_a_digest_is_invalid(key: str, fenced: tuple[ArtifactStore, Path]) -> None:
    store, tmp_path = fenced
    before = {p: p.read_bytes() for p in _files(tmp_path)}

    for call in (store.path_of, store.exists, store.get_bytes, store.verify, store.local_path):
        with pytest.raises(Invalid, match=r"is not a SHA-256 digest \(64 lowercase hex"):
            call(key)

    after = {p: p.read_bytes() for p in _files(tmp_path)}
    assert after == before
    assert not any(Path(store.root).iterdir())


@pytest.mark.parametrize("key", [None, b"ab" * 32, 123], ids=repr)
def test_non_string_keys_are_invalid(key: object, store: ArtifactStore) -> None:
    with pytest.raises(Invalid, match="is not a SHA-256 digest"):
        store.path_of(key)  # type: ignore[arg-type]


def test_a_symlink_inside_the_store_cannot_lead_outside(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (Path(store.root) / "sha256").mkdir()
    (Path(store.root) / "sha256" / "ab").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Invalid, match="resolves outside the artifact store"):
        store.path_of("ab" * 32)
    with pytest.raises(Invalid, match="resolves outside the artifact store"):
        store.exists("ab" * 32)
    # Bytes whose digest falls under the hijacked prefix must not be written through the link.
    data = next(d for i in range(100_000) if (d := str(i).encode()) and _sha(d).startswith("ab"))
    with pytest.raises(Invalid, match="resolves outside the artifact store"):
        store.put_bytes(data)
    assert list(outside.iterdir()) == []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- object stores (non-local fsspec) -----------------------------------------------------------


@pytest.fixture
def memory_store() -> Iterator[ArtifactStore]:
    url = f"memory://shipyard-test-{secrets.token_hex(6)}/artifacts"
    store = ArtifactStore(url)
    yield store
    store.fs.rm(store.root, recursive=True)


def test_memory_url_round_trip(memory_store: ArtifactStore, tmp_path: Path) -> None:
    assert not memory_store.local
    data = secrets.token_bytes(10_000)
    digest = memory_store.put_bytes(data)
    assert memory_store.exists(digest)
    assert memory_store.get_bytes(digest) == data
    memory_store.verify(digest)
    with memory_store.open_verified(digest) as fh:
        assert fh.read() == data

    source = tmp_path / "f.bin"
    source.write_bytes(b"file bytes")
    file_digest = memory_store.put_file(source)
    assert memory_store.get_bytes(file_digest) == b"file bytes"

    fs = fsspec.filesystem("memory")
    assert fs.exists(f"{memory_store.root}/sha256/{digest[:2]}/{digest[2:4]}/{digest}")
    assert not ArtifactStore(memory_store.url).exists(hashlib.sha256(b"nope").hexdigest())


def test_memory_store_detects_corruption_and_has_no_local_path(
    memory_store: ArtifactStore,
) -> None:
    digest = memory_store.put_bytes(b"remote bytes")
    path = memory_store.path_of(digest)
    with memory_store.fs.open(path, "wb") as fh:
        fh.write(b"remote bytez")
    with pytest.raises(Integrity, match=CORRUPT):
        memory_store.get_bytes(digest)
    with pytest.raises(Integrity, match=CORRUPT):
        memory_store.verify(digest)
    with pytest.raises(Invalid, match=r"needs a local artifact store; use open_verified"):
        memory_store.local_path(digest)


@pytest.mark.parametrize("key", ["../x", "%2e%2e/x", HEX.upper(), HEX + "\n", ""], ids=repr)
def test_memory_store_rejects_non_digest_keys(memory_store: ArtifactStore, key: str) -> None:
    for call in (memory_store.path_of, memory_store.exists, memory_store.get_bytes):
        with pytest.raises(Invalid, match="is not a SHA-256 digest"):
            call(key)
