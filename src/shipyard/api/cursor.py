"""Opaque page cursors, signed so that a client can hold one but not forge or edit one.

A cursor says where the next page of one listing starts: the listing (`scope`: the resource and
its filters) and a position (the sort key of the last item sent, or an offset). It travels as
`base64url(json) "." base64url(HMAC-SHA256[:16])`. The key is derived from the workspace's
signing key (an Ed25519 signature is deterministic, so every replica of a workspace derives the
same key and a cursor from one works on another), and never leaves the server.

A cursor that does not verify, or that was made for another listing (other filters), is
refused with `Invalid` (422) naming the parameter, never a crash or a silently wrong page.

    >>> cursors = Cursors(key)
    >>> text = cursors.make("runs?experiment=x", 40)
    >>> cursors.read("runs?experiment=x", text)
    40
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shipyard.core.errors import Invalid

T = TypeVar("T")
_KEY_MESSAGE = b"shipyard.api page cursor key, v1"
_MAC_BYTES = 16


def derive_key(sign: Callable[[bytes], bytes]) -> bytes:
    """The cursor key from the workspace signer's `sign` (deterministic Ed25519)."""
    return hashlib.sha256(sign(_KEY_MESSAGE)).digest()


def scope_of(resource: str, **filters: Any) -> str:
    """The listing a cursor belongs to: the resource and its filters, canonically."""
    given = {k: v for k, v in sorted(filters.items()) if v is not None}
    return resource + "?" + json.dumps(given, sort_keys=True, separators=(",", ":"), default=str)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refused(why: str) -> Invalid:
    return Invalid(
        f"query parameter 'cursor' {why}; send the `next_cursor` of the previous page unchanged, "
        "with the same filters, or leave `cursor` out to start from the first page.",
        details={"field": "cursor"},
    )


class Cursors:
    """Makes and reads the cursors of one server (one key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def make(self, scope: str, position: Any) -> str:
        payload = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, scope: str, cursor: str | None) -> Any:
        """The position a cursor holds (None without a cursor), or `Invalid`."""
        if cursor is None:
            return None
        body, dot, mac = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise _refused("is not a cursor this server made") from None
        if not dot or not hmac.compare_digest(given, self._mac(payload)):
            raise _refused("is not a cursor this server made (or it was changed)")
        data = json.loads(payload)  # ours (the MAC verified): well-formed
        if data["s"] != scope:
            raise _refused("was made for another listing (other filters)")
        return data["p"]


def page_after(
    items: Sequence[T], key: Callable[[T], list[Any]], after: list[Any] | None, limit: int
) -> tuple[list[T], list[Any] | None]:
    """Up to `limit` items whose `key` comes after `after` (keyset paging over a small list),
    and the key to continue after (None on the last page)."""
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [item for item in ordered if key(item) > after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, (key(chosen[-1]) if more and chosen else None)
