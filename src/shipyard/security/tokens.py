"""API tokens: created with a role, shown once, stored only as a SHA-256 hash.

Tokens are 256-bit random secrets, so a plain SHA-256 is a sound verifier (no password
stretching needed); lookups go by hash and the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from shipyard.core.errors import Forbidden, Invalid, NotFound, Unauthorized
from shipyard.core.records import Role, Token
from shipyard.core.settings import Settings
from shipyard.store import audit
from shipyard.store.tables import TokenRow
from shipyard.store.workspace import Workspace

SECRET_PREFIX = "shp_"  # noqa: S105 - a public marker, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is rewritten at most this often (see `authenticate`)."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: TokenRow) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(
            f"role {value!r} does not exist; choose one of {', '.join(r.value for r in Role)}."
        ) from None


def create_token(ws: Workspace, name: str, role: str | Role) -> tuple[Token, str]:
    """Create a token; returns the record and the secret, which is never stored or shown again."""
    role = _role(str(role.value if isinstance(role, Role) else role))
    if not name.strip() or len(name) > 128:
        raise Invalid(f"token name {name!r} must be 1-128 characters (e.g. 'ci-deployer').")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        id="tok_" + secrets.token_hex(8),
        name=name,
        role=role.value,
        secret_hash=_hash(secret),
        prefix=secret[:10],
        created_at=datetime.now(UTC),
        created_by=ws.actor,
    )
    with ws.db.write() as s:
        s.add(row)
        s.flush()
        audit.append(
            s,
            actor=ws.actor,
            action="token.create",
            object_type="token",
            object_id=row.id,
            details={"name": name, "role": role.value},
        )
        token = _record(row)
    return token, secret


def list_tokens(ws: Workspace, *, include_revoked: bool = False) -> list[Token]:
    with ws.db.read() as s:
        rows = s.scalars(select(TokenRow).order_by(TokenRow.created_at))
        tokens = [_record(r) for r in rows]
    return [t for t in tokens if include_revoked or t.active]


def revoke_token(ws: Workspace, token_id: str) -> Token:
    with ws.db.write() as s:
        row = s.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"token {token_id!r} does not exist; `shipyard tokens ls` lists them.")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            audit.append(
                s,
                actor=ws.actor,
                action="token.revoke",
                object_type="token",
                object_id=row.id,
                details={"name": row.name, "role": row.role},
            )
        return _record(row)


def authenticate(ws: Workspace, secret: str | None) -> Token:
    """The active token behind a secret, or `Unauthorized`.

    A read: the check never waits for a writer (a server's prediction log may hold SQLite's
    write lock for a while). `last_used_at` is stamped in a write of its own only when it is
    more than `LAST_USED_RESOLUTION` old, so it says when a token was last used to within a
    minute.
    """
    if not secret:
        raise Unauthorized("no API token given; send 'Authorization: Bearer <token>'.")
    digest = _hash(secret)
    with ws.db.read() as s:
        row = s.scalars(select(TokenRow).where(TokenRow.secret_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            raise Unauthorized("the API token is not known; ask an admin for a valid token.")
        if row.revoked_at is not None:
            raise Unauthorized(
                f"the API token {row.prefix}… was revoked; ask an admin for a new one."
            )
        token = _record(row)
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        with ws.db.write() as s:
            s.execute(update(TokenRow).where(TokenRow.id == token.id).values(last_used_at=now))
        token = token.model_copy(update={"last_used_at": now})
    return token


_ALLOWED: dict[Role, set[Role]] = {
    Role.viewer: {Role.viewer, Role.scientist, Role.deployer, Role.admin},
    Role.scientist: {Role.scientist, Role.admin},
    Role.deployer: {Role.deployer, Role.admin},
    Role.predictor: {Role.predictor, Role.admin},
    Role.admin: {Role.admin},
}


def require_role(token: Token, needed: Role) -> None:
    """Raise `Forbidden` unless the token's role may act as `needed`."""
    if token.role not in _ALLOWED[needed]:
        raise Forbidden(
            f"token {token.prefix}… has role {token.role.value!r}; this action needs "
            f"{needed.value!r} (or admin). Use a token with that role."
        )


def init_workspace(settings: Settings) -> tuple[Workspace, Token, str]:
    """`shipyard init`: create the workspace and its first admin token (secret shown once)."""
    ws = Workspace.create(settings)
    with ws.db.write() as s:
        audit.append(
            s,
            actor=ws.actor,
            action="workspace.init",
            object_type="workspace",
            object_id=str(settings.home),
            details={"db": ws.db.safe_url, "artifacts": ws.artifacts.url},
        )
    token, secret = create_token(ws, "admin", Role.admin)
    return ws, token, secret
