"""API tokens: creation, hashing at rest, revocation, roles; workspace init and open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from shipyard.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    NotInitialised,
    Unauthorized,
)
from shipyard.core.records import Role, Token
from shipyard.core.settings import Settings
from shipyard.security import (
    authenticate,
    create_token,
    init_workspace,
    list_tokens,
    require_role,
    revoke_token,
)
from shipyard.store import audit
from shipyard.store.tables import AuditRow, TokenRow
from shipyard.store.workspace import Workspace


@pytest.fixture
def initialised(settings: Settings) -> Iterator[tuple[Workspace, Token, str]]:
    ws, token, secret = init_workspace(settings)
    yield ws, token, secret
    ws.close()


def _all_stored_text(ws: Workspace) -> str:
    """Every value in every column of every table, as one string."""
    chunks: list[str] = []
    with ws.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                chunks.extend(str(v) for v in row)
    return "\n".join(chunks)


# -- init and authenticate ----------------------------------------------------------------------


def test_init_gives_an_admin_token_whose_secret_authenticates(
    initialised: tuple[Workspace, Token, str],
) -> None:
    ws, token, secret = initialised
    assert token.role is Role.admin
    assert token.active
    assert secret.startswith("shp_") and len(secret) > 40
    assert token.prefix == secret[:10]
    found = authenticate(ws, secret)
    assert found.id == token.id
    assert found.role is Role.admin
    assert found.last_used_at is not None
    assert [t.id for t in list_tokens(ws)] == [token.id]


def test_authenticating_does_not_wait_for_a_writer(
    initialised: tuple[Workspace, Token, str],
) -> None:
    ws, token, secret = initialised
    first = authenticate(ws, secret)  # stamps last_used_at
    with ws.db.write() as s:  # another writer holds the lock (the prediction log, say)
        s.execute(text("UPDATE tokens SET name = name"))
        again = authenticate(ws, secret)  # a read: answered while the lock is held
    assert again.id == token.id
    assert again.last_used_at == first.last_used_at  # stamped at most once a minute


def test_secrets_are_never_stored(initialised: tuple[Workspace, Token, str]) -> None:
    ws, _admin, admin_secret = initialised
    _token, other_secret = create_token(ws, "ci", Role.deployer)
    authenticate(ws, other_secret)  # a login writes last_used_at; still no secret
    stored = _all_stored_text(ws)
    assert "tokens" in inspect(ws.db.engine).get_table_names()
    for secret in (admin_secret, other_secret):
        assert secret not in stored
        assert secret[4:] not in stored  # nor without its prefix
    with ws.db.read() as s:
        hashes = set(s.scalars(select(TokenRow.secret_hash)))
    assert len(hashes) == 2
    assert all(len(h) == 64 for h in hashes)


def test_secrets_are_not_in_any_workspace_file(initialised: tuple[Workspace, Token, str]) -> None:
    ws, _admin, admin_secret = initialised
    _token, secret = create_token(ws, "ci", Role.scientist)
    files = [f for f in ws.home.rglob("*") if f.is_file()]
    assert {"shipyard.db", "shipyard.db-wal"} <= {f.name for f in files}  # WAL pages too
    for f in files:
        raw = f.read_bytes()
        assert admin_secret.encode() not in raw, f
        assert secret.encode() not in raw, f


@pytest.mark.parametrize("role", list(Role))
def test_create_with_each_role(workspace: Workspace, role: Role) -> None:
    token, secret = create_token(workspace, f"tok-{role.value}", role.value)
    assert token.role is role
    assert token.name == f"tok-{role.value}"
    assert authenticate(workspace, secret).role is role


def test_create_accepts_the_enum_as_well(workspace: Workspace) -> None:
    token, _ = create_token(workspace, "enum", Role.predictor)
    assert token.role is Role.predictor


@pytest.mark.parametrize("role", ["root", "Admin", "", "viewer "])
def test_invalid_role_names_the_roles(workspace: Workspace, role: str) -> None:
    before = list_tokens(workspace, include_revoked=True)
    with pytest.raises(
        Invalid,
        match=rf"role {role!r} does not exist; choose one of "
        r"viewer, scientist, deployer, admin, predictor\.",
    ):
        create_token(workspace, "x", role)
    assert list_tokens(workspace, include_revoked=True) == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 129])
def test_invalid_token_name(workspace: Workspace, name: str) -> None:
    with pytest.raises(Invalid, match=r"token name .* must be 1-128 characters"):
        create_token(workspace, name, Role.viewer)


def test_revoked_token_is_refused(workspace: Workspace) -> None:
    token, secret = create_token(workspace, "ci", Role.deployer)
    revoked = revoke_token(workspace, token.id)
    assert revoked.revoked_at is not None
    assert not revoked.active
    with pytest.raises(Unauthorized, match=rf"the API token {token.prefix}… was revoked"):
        authenticate(workspace, secret)
    assert token.id not in [t.id for t in list_tokens(workspace)]
    assert token.id in [t.id for t in list_tokens(workspace, include_revoked=True)]


def test_revoking_twice_keeps_the_first_time_and_one_event(workspace: Workspace) -> None:
    token, _ = create_token(workspace, "ci", Role.viewer)
    first = revoke_token(workspace, token.id)
    second = revoke_token(workspace, token.id)
    assert second.revoked_at == first.revoked_at
    with workspace.db.read() as s:
        assert len(audit.events(s, action="token.revoke")) == 1


def test_revoking_an_unknown_token_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match=r"token 'tok_nope' does not exist; `shipyard tokens ls`"):
        revoke_token(workspace, "tok_nope")


def test_unknown_secret_is_unauthorized(workspace: Workspace) -> None:
    _token, secret = create_token(workspace, "ci", Role.viewer)
    for wrong in ("shp_" + "A" * 43, secret[:-1], secret + "x", secret.upper()):
        with pytest.raises(Unauthorized, match=r"the API token is not known; ask an admin"):
            authenticate(workspace, wrong)


@pytest.mark.parametrize("secret", ["", None])
def test_missing_secret_is_unauthorized(workspace: Workspace, secret: str | None) -> None:
    with pytest.raises(Unauthorized, match=r"no API token given; send 'Authorization: Bearer"):
        authenticate(workspace, secret)


# -- roles --------------------------------------------------------------------------------------

V, S, D, A, P = Role.viewer, Role.scientist, Role.deployer, Role.admin, Role.predictor
# held role -> the roles it may act as
MAY_ACT_AS: dict[Role, set[Role]] = {
    A: {V, S, D, A, P},
    V: {V},
    S: {V, S},
    D: {V, D},
    P: {P},
}


def _token(role: Role) -> Token:
    return Token(
        id="tok_x",
        name="x",
        role=role,
        prefix="shp_abcdef",
        created_at=datetime(2024, 1, 1),
        created_by="test",
    )


@pytest.mark.parametrize("held", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_require_role_matrix(held: Role, needed: Role) -> None:
    token = _token(held)
    if needed in MAY_ACT_AS[held]:
        require_role(token, needed)
    else:
        with pytest.raises(
            Forbidden,
            match=rf"token shp_abcdef… has role '{held.value}'; this action needs "
            rf"'{needed.value}' \(or admin\)",
        ):
            require_role(token, needed)


def test_require_role_on_a_real_token(workspace: Workspace) -> None:
    _token_rec, secret = create_token(workspace, "pred", Role.predictor)
    token = authenticate(workspace, secret)
    require_role(token, Role.predictor)
    with pytest.raises(Forbidden):
        require_role(token, Role.deployer)
    with pytest.raises(Forbidden):
        require_role(token, Role.viewer)


# -- audit --------------------------------------------------------------------------------------


def test_every_token_create_and_revoke_is_audited(
    initialised: tuple[Workspace, Token, str],
) -> None:
    ws, admin, _ = initialised
    a, _ = create_token(ws, "a", Role.viewer)
    b, _ = create_token(ws, "b", Role.deployer)
    revoke_token(ws, a.id)
    with ws.db.read() as s:
        rows = list(s.scalars(select(AuditRow).order_by(AuditRow.seq)))
        report = audit.verify(s)
    assert report.ok, report.problems
    got = [(r.action, r.object_id, r.details.get("name"), r.details.get("role")) for r in rows]
    assert got == [
        ("workspace.init", str(ws.home), None, None),
        ("token.create", admin.id, "admin", "admin"),
        ("token.create", a.id, "a", "viewer"),
        ("token.create", b.id, "b", "deployer"),
        ("token.revoke", a.id, "a", "viewer"),
    ]
    assert all(r.actor == ws.actor for r in rows)


def test_a_refused_create_writes_no_audit_event(workspace: Workspace) -> None:
    with workspace.db.read() as s:
        before = audit.verify(s).events
    with pytest.raises(Invalid):
        create_token(workspace, "x", "root")
    with workspace.db.read() as s:
        assert audit.verify(s).events == before


# -- workspace ----------------------------------------------------------------------------------


def test_init_twice_on_the_same_home_conflicts(settings: Settings) -> None:
    ws, _, _ = init_workspace(settings)
    ws.close()
    config = (settings.home / "config.toml").read_text()
    with pytest.raises(Conflict, match=rf"a workspace already exists at {settings.home}"):
        init_workspace(settings)
    assert (settings.home / "config.toml").read_text() == config
    reopened = Workspace.open(settings)
    try:
        assert len(list_tokens(reopened)) == 1
    finally:
        reopened.close()


def test_open_on_an_empty_dir_is_not_initialised(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotInitialised, match=r"no Shipyard workspace at .*run `shipyard init`"):
        Workspace.open(Settings.load(home=str(empty)))
    assert list(empty.iterdir()) == []


def test_open_finds_what_init_made(settings: Settings) -> None:
    ws, token, secret = init_workspace(settings)
    ws.close()
    reopened = Workspace.open(settings, actor="api:ci")
    try:
        assert reopened.actor == "api:ci"
        assert authenticate(reopened, secret).id == token.id
    finally:
        reopened.close()


def test_init_and_authenticate_on_both_backends(tmp_path: Path, db_url: str) -> None:
    ws, token, secret = init_workspace(Settings.load(home=str(tmp_path / "ws"), db=db_url))
    try:
        assert authenticate(ws, secret).id == token.id
        assert secret not in _all_stored_text(ws)
        with ws.db.read() as s:
            assert audit.verify(s).ok
    finally:
        ws.close()
