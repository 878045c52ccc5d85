"""Who may call what: every API operation by every role, a missing token and a revoked one, over
real HTTP. Allowed calls are made harmless (names that do not exist, bodies that fail their
schema), so they answer 200/404/422 but never 401 or 403; refused ones answer 403 naming the
roles; no token or a revoked one answers 401. Mutating calls are audited under the token's id.
"""

from __future__ import annotations

import re

import pytest
from api_world import ROLES, World, error_of

from shipyard.api.operation import Operation
from shipyard.api.routes import OPERATIONS
from shipyard.store import audit

pytestmark = pytest.mark.timeout(120)
CALLERS = [*ROLES, None, "revoked"]


def _harmless_path(op: Operation) -> str:
    return re.sub(r"{\w+}", "no-such-thing", op.path)


@pytest.mark.parametrize("op", OPERATIONS, ids=[f"{o.method} {o.path}" for o in OPERATIONS])
def test_every_operation_checks_every_role(world: World, op: Operation) -> None:
    allowed = set(op.access.roles)
    assert "predictor" not in allowed  # predictor tokens predict and send feedback, nothing more
    assert "admin" in allowed
    for caller in CALLERS:
        with world.client(caller) as c:
            r = c.request(op.method, _harmless_path(op), json={} if op.body else None)
        who = f"{caller} on {op.method} {op.path}: {r.status_code} {r.text[:200]}"
        if caller is None or caller == "revoked":
            assert r.status_code == 401, who
            assert r.headers["www-authenticate"].startswith("Bearer")
        elif caller in allowed:
            assert r.status_code not in (401, 403), who
        else:
            assert r.status_code == 403, who
            body = error_of(r)
            assert body["error"] == "Forbidden"
            assert f"role {caller!r}" in body["message"]
            assert ", ".join(op.access.roles) in body["message"]


def test_the_role_table_reads_as_the_issue_says() -> None:
    roles = {(op.method, op.path): set(op.access.roles) for op in OPERATIONS}
    read = {"viewer", "scientist", "deployer", "admin"}
    for (method, path), who in roles.items():
        if path.startswith("/api/v1/tokens"):
            assert who == {"admin"}, path
        elif method == "GET":
            assert who == read, path
        elif path.startswith("/api/v1/models"):
            assert who == {"scientist", "admin"}, path
        elif path.startswith("/api/v1/endpoints"):
            assert who == {"deployer", "admin"}, path
        elif path == "/api/v1/datasets/validate":  # checks a file, stores nothing: a read
            assert who == read, path
        elif path.startswith("/api/v1/datasets") or path.startswith("/api/v1/runs"):
            assert who == {"scientist", "admin"}, path
        elif path.startswith(("/api/v1/loop", "/api/v1/alerts")):
            assert who == {"deployer", "admin"}, path
        else:
            raise AssertionError(f"{method} {path} is not in the role table")


def test_mutations_are_audited_under_the_token_id(world: World) -> None:
    with world.client("admin") as c:
        created = c.post("/api/v1/tokens", json={"name": "audited", "role": "viewer"})
    assert created.status_code == 201
    token_id = created.json()["token"]["id"]
    assert created.json()["token"]["created_by"] == world.token_ids["admin"]
    with world.client("deployer") as c:
        r = c.post(
            "/api/v1/endpoints",
            json={"name": "audited-e", "model": world.versions["good"].ref},
        )
    assert r.status_code == 201, r.text
    with world.ws.db.read() as s:
        token_event = audit.events(s, action="token.create", object_id=token_id)
        endpoint_event = audit.events(s, action="endpoint.create", object_id="audited-e")
    assert [e.actor for e in token_event] == [world.token_ids["admin"]]
    assert [e.actor for e in endpoint_event] == [world.token_ids["deployer"]]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/openapi.json", {"viewer", "scientist", "deployer", "admin"}),
        ("/docs", {*ROLES, None}),  # open; what it describes still needs a token
    ],
)
def test_the_document_routes(world: World, path: str, allowed: set[str | None]) -> None:
    for caller in [*ROLES, None]:
        with world.client(caller) as c:
            status = c.get(path).status_code
        expected = 200 if caller in allowed else 401 if caller is None else 403
        assert status == expected, (caller, path, status)
