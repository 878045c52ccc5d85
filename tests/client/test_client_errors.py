"""A non-2xx answer raises the `core.errors` class the server named, with its message, details,
HTTP status and request id; a server that cannot be reached raises Unavailable naming the URL."""

from __future__ import annotations

import pytest
from api_world import World

from shipyard.client import Client
from shipyard.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ShipyardError,
    Unauthorized,
)

pytestmark = pytest.mark.timeout(120)


def _carries_the_answer(exc: ShipyardError, status: int) -> None:
    assert exc.status == status == exc.details["status"]  # type: ignore[attr-defined]
    rid = exc.request_id  # type: ignore[attr-defined]
    assert rid.startswith("req_") and rid == exc.details["request_id"]
    assert f"HTTP {status}, request {rid}" in str(exc)


def test_no_token_is_unauthorized(world: World) -> None:
    with Client(world.url, token="", retries=0) as c, pytest.raises(Unauthorized) as caught:
        c.tokens.list().page()
    assert "token" in caught.value.message
    _carries_the_answer(caught.value, 401)
    assert caught.value.exit_code == 5


def test_a_revoked_token_is_unauthorized(world: World) -> None:
    client = Client(world.url, world.tokens["revoked"])
    with client, pytest.raises(Unauthorized, match="revoked") as caught:
        client.datasets.get("loans")
    _carries_the_answer(caught.value, 401)


def test_the_wrong_role_is_forbidden(world: World) -> None:
    with Client(world.url, world.tokens["viewer"]) as client:
        assert client.datasets.get("loans").name == "loans"  # reading is allowed
        with pytest.raises(Forbidden, match="viewer") as caught:
            client.tokens.create("sneaky", "admin")
    _carries_the_answer(caught.value, 403)


def test_not_found_names_what_is_missing(world: World) -> None:
    with Client(world.url, world.tokens["viewer"]) as client:
        with pytest.raises(NotFound, match="'nowhere'") as caught:
            client.datasets.show("nowhere", 1)
        _carries_the_answer(caught.value, 404)
        with pytest.raises(NotFound, match="run_nope"):
            client.runs.get("run_nope")


def test_a_stale_revision_is_a_conflict_naming_the_current_one(world: World) -> None:
    good, spare = world.versions["good"].ref, world.versions["spare"].ref
    with (
        Client(world.url, world.tokens["deployer"]) as one,
        Client(world.url, world.tokens["admin"]) as other,
    ):
        one.endpoints.create("client-stale", good)
        read = one.endpoints.get("client-stale").revision
        other.endpoints.set_flags("client-stale", {"explain": "on"}, revision=read)

        with pytest.raises(Conflict, match="is at revision 2, not 1") as caught:
            one.endpoints.set_champion("client-stale", spare, revision=read)
        _carries_the_answer(caught.value, 409)
        assert caught.value.details["revision"] == 2
        assert caught.value.exit_code == 4
        assert one.endpoints.get("client-stale").champion_ref == good  # nothing changed


def test_a_bad_field_is_invalid_naming_it(world: World) -> None:
    with Client(world.url, world.tokens["admin"]) as client:
        with pytest.raises(Invalid, match=r"body field 'role'.*'emperor'") as caught:
            client.tokens.create("x", "emperor")
        _carries_the_answer(caught.value, 422)
        assert [e["field"] for e in caught.value.details["errors"]] == ["role"]
        with pytest.raises(Invalid, match="query field 'limit'"):
            client.runs.search().page(limit=10_000)


def test_a_tampered_cursor_is_invalid(world: World) -> None:
    with Client(world.url, world.tokens["viewer"]) as client:
        runs = client.runs.search(experiment="credit")
        cursor = runs.page(limit=2).next_cursor
        assert cursor is not None
        with pytest.raises(Invalid, match="cursor"):
            runs.page(limit=2, cursor=cursor[:-4] + ("AAAA" if cursor[-4:] != "AAAA" else "BBBB"))


def test_an_unknown_route_is_not_found(world: World) -> None:
    """What a client newer than the server would get: the server's 404, as NotFound."""
    client = Client(world.url, world.tokens["viewer"])
    with client, pytest.raises(NotFound, match="no route GET /api/v1/nothing"):
        client.datasets._t.call("GET", "/api/v1/nothing")


def test_no_url_is_invalid_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Invalid, match="SHIPYARD_URL"):
        Client()
    with pytest.raises(Invalid, match="'localhost:8000' is not an http"):
        Client("localhost:8000")


def test_url_and_token_come_from_the_settings(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_URL", world.url + "/")
    monkeypatch.setenv("SHIPYARD_TOKEN", world.tokens["viewer"])
    with Client() as client:
        assert client.url == world.url
        assert client.datasets.get("loans").versions == 2
        with pytest.raises(Forbidden):
            client.tokens.list().page()


def test_a_negative_retry_count_is_invalid() -> None:
    with pytest.raises(Invalid, match="retries=-1: must be 0 or more"):
        Client("http://127.0.0.1:8000", "shp_x", retries=-1)
