"""Bad input over real HTTP: each gets its status, an error body naming what was wrong, and
changes nothing."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from api_world import World, error_of

from shipyard.serve.endpoints import create_endpoint, get_endpoint
from shipyard.store import audit

pytestmark = pytest.mark.timeout(120)


def _events(world: World) -> int:
    with world.ws.db.read() as s:
        return len(audit.events(s, limit=None))


def test_no_token_is_401_saying_how_to_send_one(world: World) -> None:
    with world.client(None) as c:
        r = c.get("/api/v1/runs")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="shipyard"'
    assert "Authorization: Bearer <token>" in error_of(r)["message"]


def test_a_revoked_token_is_401_saying_so(world: World) -> None:
    with world.client("revoked") as c:
        r = c.get("/api/v1/runs")
    assert r.status_code == 401
    assert "was revoked" in error_of(r)["message"]


def test_the_wrong_role_is_403_and_changes_nothing(world: World) -> None:
    before = _events(world)
    with world.client("viewer") as c:
        r = c.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"})
    assert r.status_code == 403
    assert "has role 'viewer'" in error_of(r)["message"]
    assert _events(world) == before


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "role": "boss"}, "role", "Input should be 'viewer'"),
        ({"role": "viewer"}, "name", "Field required"),
        ({"name": "", "role": "viewer"}, "name", "at least 1 character"),
        ({"name": "x", "role": "viewer", "rol": 1}, "rol", "Extra inputs are not permitted"),
    ],
)
def test_a_body_failing_its_schema_is_422_naming_the_field(
    world: World, body: dict[str, Any], field: str, words: str
) -> None:
    before = _events(world)
    with world.client("admin") as c:
        r = c.post("/api/v1/tokens", json=body)
    assert r.status_code == 422
    error = error_of(r)
    assert error["error"] == "Invalid"
    assert f"body field {field!r}" in error["message"]
    assert words in error["message"]
    assert [e["field"] for e in error["details"]["errors"]] == [field]
    assert _events(world) == before


def test_a_nested_field_is_named_by_its_path(world: World) -> None:
    with world.client("deployer") as c:
        r = c.put(
            "/api/v1/endpoints/scoring/route",
            json={"revision": 1, "challengers": [{"model": "credit@2", "weight": 250}]},
        )
    assert r.status_code == 422
    assert "body field 'challengers.0.weight'" in error_of(r)["message"]


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"{not json", "is not JSON"), (b"[1, 2]", "is a JSON list; send a JSON object")],
)
def test_a_body_that_is_not_a_json_object_is_422(world: World, content: bytes, words: str) -> None:
    with world.client("admin") as c:
        r = c.post("/api/v1/tokens", content=content)
    assert r.status_code == 422
    assert words in error_of(r)["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=many", "limit"), ("trails=true", "trails")],
)
def test_a_bad_query_parameter_is_422_naming_it(world: World, query: str, field: str) -> None:
    with world.client("viewer") as c:
        r = c.get(f"/api/v1/runs?{query}")
    assert r.status_code == 422
    assert f"query field {field!r}" in error_of(r)["message"]


def test_a_bad_run_filter_is_422_with_the_example(world: World) -> None:
    with world.client("viewer") as c:
        r = c.get("/api/v1/runs", params={"filter": "metrics.auc >> 1"})
    assert r.status_code == 422
    assert "does not parse" in error_of(r)["message"]


def _first_cursor(c: httpx.Client, path: str) -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    cursor: str = r.json()["next_cursor"]
    assert cursor
    return cursor


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_a_tampered_cursor_is_422_naming_the_cursor(world: World) -> None:
    with world.client("viewer") as c:
        cursor = _first_cursor(c, "/api/v1/runs?limit=2")
        body = cursor.split(".")[0]
        for bad in [_flip(cursor, 3), _flip(cursor, len(cursor) - 2), body, "x.y.z", "%%%"]:
            r = c.get("/api/v1/runs", params={"limit": 2, "cursor": bad})
            assert r.status_code == 422, (bad, r.text)
            error = error_of(r)
            assert "query parameter 'cursor'" in error["message"]
            assert error["details"]["field"] == "cursor"


def test_a_cursor_of_other_filters_is_422(world: World) -> None:
    with world.client("viewer") as c:
        cursor = _first_cursor(c, "/api/v1/runs?limit=2")
        r = c.get("/api/v1/runs", params={"limit": 2, "cursor": cursor, "experiment": "credit"})
        assert r.status_code == 422
        assert "another listing (other filters)" in error_of(r)["message"]
        # and a cursor of one resource is refused by another
        r = c.get("/api/v1/audit", params={"cursor": cursor})
        assert r.status_code == 422


def test_a_stale_revision_is_409_naming_the_current_one_and_changes_nothing(world: World) -> None:
    create_endpoint(world.ws, "stale", world.versions["good"].ref)
    spare = world.versions["spare"].ref
    with world.client("deployer") as c:
        first = c.put("/api/v1/endpoints/stale/route", json={"revision": 1, "shadows": [spare]})
        assert first.status_code == 200, first.text
        assert first.json()["revision"] == 2
        before = _events(world)
        r = c.patch("/api/v1/endpoints/stale/flags", json={"revision": 1, "flags": {"pin": spare}})
    assert r.status_code == 409
    error = error_of(r)
    assert "is at revision 2, not 1" in error["message"]
    assert error["details"]["revision"] == 2
    assert get_endpoint(world.ws, "stale").flags == {}
    assert _events(world) == before


def test_two_deployers_changing_one_endpoint_at_once_one_wins(world: World) -> None:
    create_endpoint(world.ws, "race", world.versions["good"].ref)
    answers: list[httpx.Response] = []
    start = threading.Barrier(2)

    def change(flag: str) -> None:
        with world.client("deployer") as c:
            start.wait()
            answers.append(
                c.patch("/api/v1/endpoints/race/flags", json={"revision": 1, "flags": {flag: "on"}})
            )

    threads = [threading.Thread(target=change, args=(f,)) for f in ("explain", "log_inputs")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert get_endpoint(world.ws, "race").revision == 2
    loser = next(a for a in answers if a.status_code == 409)
    assert error_of(loser)["details"]["revision"] == 2


def test_an_unknown_name_is_404_without_server_paths(world: World) -> None:
    with world.client("viewer") as c:
        r = c.get("/api/v1/datasets/nope/versions/1")
    assert r.status_code == 404
    error = error_of(r)
    assert "nope" in error["message"]
    assert str(world.settings.home) not in r.text


def test_an_unknown_api_route_is_404_pointing_to_the_document(world: World) -> None:
    with world.client("viewer") as c:
        r = c.get("/api/v1/experiments")
    assert r.status_code == 404
    assert "GET /openapi.json" in error_of(r)["message"]


def test_a_runs_filter_of_2000_clauses_is_a_clean_422(world: World) -> None:
    huge = " and ".join(f"metrics.m{i} > 0.5" for i in range(2000))
    with world.client("viewer") as c:
        r = c.delete("/api/v1/runs")  # wrong method: 405, answered in the API's shape
        assert r.status_code == 405
        r = c.get("/api/v1/runs", params={"filter": huge})
    assert r.status_code == 422, r.text[:300]
    assert "query field 'filter'" in error_of(r)["message"]
