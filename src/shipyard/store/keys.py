"""The workspace's Ed25519 signing key: created at `shipyard init`, used to sign artifacts."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shipyard.core.errors import Integrity, NotFound

KEY_FILE = "keys/signing.ed25519.pem"


def create_key(home: Path) -> Path:
    path = home / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path


class Signer:
    """Signs and verifies digests with the workspace key."""

    def __init__(self, home: Path) -> None:
        path = home / KEY_FILE
        if not path.exists():
            raise NotFound(
                f"signing key {path} is missing; restore it from a backup (artifacts signed with "
                "it cannot be verified without it) or re-run `shipyard init` in a new workspace."
            )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise Integrity(f"{path} is not an Ed25519 private key.")
        self._key = key
        self.public: Ed25519PublicKey = key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verify(self, message: bytes, signature: bytes, *, what: str) -> None:
        try:
            self.public.verify(signature, message)
        except InvalidSignature as exc:
            raise Integrity(
                f"{what}: the signature does not verify with this workspace's key, so it was "
                "not loaded. It was changed after signing or signed by another workspace."
            ) from exc
