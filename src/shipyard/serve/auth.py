"""Who may call a route: bearer tokens, looked up at most once a second, and the roles it needs.

`security.authenticate` is a database query, too slow to run on every request. `TokenCache`
keeps its answer for `ttl` seconds, keyed by the SHA-256 of the secret (the secret itself is
never kept), for known tokens and unknown ones alike, so a revoked token stops working within
`ttl` and a flood of bad tokens costs one query a second each. Concurrent misses for the same
secret share one look-up. A token in use is looked up again in the background once half its
`ttl` has passed, so a busy client never waits for the database: requests go on with the
answer still trusted while the new one is fetched (measured: waiting for the look-up, a
one-connection client saw a stall of tens of milliseconds every second whenever the
prediction log was writing).

What each route needs is an `Access`: one or more roles in `security.require_role` terms, any of
which will do (so `PREDICT` admits predictor, deployer and admin tokens).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from shipyard.core.errors import Forbidden, Unauthorized, Unavailable
from shipyard.core.records import Role, Token
from shipyard.security import authenticate, require_role
from shipyard.store.workspace import Workspace


@dataclass(frozen=True)
class Access:
    """The roles a route accepts: a token passes if `require_role` passes for any of them."""

    needs: tuple[Role, ...]
    what: str

    @property
    def roles(self) -> list[str]:
        """Every role whose tokens pass, such as ['predictor', 'deployer', 'admin']."""
        return _holders(self.needs)

    def check(self, token: Token) -> None:
        for role in self.needs:
            try:
                require_role(token, role)
            except Forbidden:
                continue
            return
        raise Forbidden(
            f"token {token.prefix}… has role {token.role.value!r}; {self.what} needs one of "
            f"{', '.join(_holders(self.needs))}. Use a token with one of those roles."
        )


def _holders(needs: tuple[Role, ...]) -> list[str]:
    out: list[str] = []
    for role in Role:
        probe = Token.model_construct(role=role, prefix="")
        for need in needs:
            try:
                require_role(probe, need)
            except Forbidden:
                continue
            out.append(role.value)
            break
    return out


READ = Access((Role.viewer,), "reading endpoints and metrics")
PREDICT = Access((Role.predictor, Role.deployer), "predicting and sending feedback")
ANY = Access((Role.viewer, Role.predictor), "this route")  # every role: readiness, metadata


def bearer_secret(header: str | None) -> str:
    """The secret of an `Authorization: Bearer <token>` header, or `Unauthorized`."""
    if not header:
        raise Unauthorized("no API token given; send the header 'Authorization: Bearer <token>'.")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(
            f"the Authorization header uses scheme {scheme[:20]!r}; expected 'Bearer <token>'."
        )
    secret = secret.strip()
    if not secret:
        raise Unauthorized(
            "the Authorization header has no token after 'Bearer'; send 'Bearer <token>'."
        )
    return secret


class TokenCache:
    """Token look-ups remembered for `ttl` seconds, by the hash of the secret.

    >>> cache = TokenCache(ws, ttl=1.0)
    >>> token = await cache.token(request.headers.get("authorization"))
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        ttl: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ws = ws
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        # digest → (expiry, token, or the message of the Unauthorized it raised)
        self._entries: dict[str, tuple[float, Token | str]] = {}
        self._pending: dict[str, asyncio.Task[Token | str]] = {}

    async def token(self, header: str | None) -> Token:
        """The active token behind an Authorization header, or `Unauthorized`."""
        secret, key = _secret_and_key(header)
        known = self._fresh(key, secret)
        if known is not None:
            return known
        task = self._pending.get(key) or self._start(key, secret)
        return _unwrap(await asyncio.shield(task))

    def cached(self, header: str | None) -> Token | None:
        """`token(header)` where it is remembered and fresh (`Unauthorized` if it was refused),
        without a coroutine: None where it must be looked up."""
        secret, key = _secret_and_key(header)
        return self._fresh(key, secret)

    def _fresh(self, key: str, secret: str) -> Token | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        left = hit[0] - self._clock()
        if left <= 0:
            return None
        if left < self._ttl / 2 and key not in self._pending:
            self._start(key, secret)  # refreshed ahead; this request does not wait
        return _unwrap(hit[1])

    def _start(self, key: str, secret: str) -> asyncio.Task[Token | str]:
        # A task of its own, so a client that hangs up does not cancel the others' look-up.
        task = asyncio.create_task(self._resolve(key, secret))
        task.add_done_callback(_retrieved)  # a refresh nobody awaits may fail: kept quiet
        self._pending[key] = task
        return task

    async def _resolve(self, key: str, secret: str) -> Token | str:
        try:
            result = await self._lookup(secret)
            self._remember(key, result)
            return result
        finally:
            self._pending.pop(key, None)

    async def _lookup(self, secret: str) -> Token | str:
        try:
            return await anyio.to_thread.run_sync(authenticate, self._ws, secret)
        except Unauthorized as exc:
            return exc.message
        except SQLAlchemyError as exc:
            raise Unavailable(
                "the token database cannot be reached, so no request can be authorised; "
                f"check the server's SHIPYARD_DB ({type(exc).__name__})."
            ) from exc

    def _remember(self, key: str, result: Token | str) -> None:
        now = self._clock()
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key] = (now + self._ttl, result)


def _secret_and_key(header: str | None) -> tuple[str, str]:
    """The bearer secret and the key it is remembered by (its SHA-256, never the secret)."""
    secret = bearer_secret(header)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def _retrieved(task: asyncio.Task[Token | str]) -> None:
    """Mark a look-up's failure as seen: the entry it refreshed expires as usual, and the
    next request's own look-up reports the failure."""
    if not task.cancelled():
        task.exception()


def _unwrap(result: Token | str) -> Token:
    if isinstance(result, str):
        raise Unauthorized(result)
    return result
