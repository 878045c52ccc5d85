"""Every list pages with `limit` and the opaque `next_cursor`: all items once, in order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_world import World

from shipyard.api.cursor import Cursors, page_after, scope_of
from shipyard.core.errors import Invalid

pytestmark = pytest.mark.timeout(120)


def _all_pages(c: httpx.Client, path: str, limit: int, **params: Any) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        r = c.get(path, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging does not end"


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("/api/v1/tokens", {"include_revoked": "true"}, "id"),
        ("/api/v1/audit", {}, "seq"),
        ("/api/v1/audit", {"action": "model"}, "seq"),
        ("/api/v1/datasets", {}, "name"),
        ("/api/v1/datasets/loans/versions", {}, "ref"),
        ("/api/v1/runs", {}, "id"),
        ("/api/v1/runs", {"order_by": "metrics.auc desc"}, "id"),
        ("/api/v1/runs", {"filter": "metrics.auc >= 0.6"}, "id"),
        ("/api/v1/models", {}, "ref"),
        ("/api/v1/models", {"status": "candidate"}, "ref"),
        ("/api/v1/endpoints", {}, "name"),
    ],
)
def test_pages_hold_every_item_once_in_the_unpaged_order(
    world: World, path: str, params: dict[str, Any], key: str
) -> None:
    with world.client("admin") as c:
        whole = c.get(path, params={**params, "limit": 500}).json()
        pages = _all_pages(c, path, 2, **params)
    assert whole["next_cursor"] is None
    expected = [item[key] for item in whole["items"]]
    assert len(expected) >= 2, "the world should have more than one page of these"
    assert all(1 <= len(p) <= 2 for p in pages)
    assert [item[key] for page in pages for item in page] == expected


def test_runs_filters_order_and_trials(world: World) -> None:
    with world.client("viewer") as c:
        best = c.get("/api/v1/runs", params={"order_by": "metrics.auc desc", "limit": 1}).json()
        some = c.get("/api/v1/runs", params={"filter": "params.C = '3'"}).json()
    assert best["items"][0]["id"] == world.runs[-1]  # auc grows with i
    assert [r["id"] for r in some["items"]] == [world.runs[3]]


def test_a_metric_history_pages_by_step(world: World) -> None:
    with world.client("viewer") as c:
        pages = _all_pages(c, f"/api/v1/runs/{world.runs[0]}/metrics/loss", 2)
    assert [p["step"] for page in pages for p in page] == [0, 1, 2]
    assert [len(p) for p in pages] == [2, 1]


def test_audit_pages_go_back_in_time(world: World) -> None:
    with world.client("viewer") as c:
        pages = _all_pages(c, "/api/v1/audit", 7)
    seqs = [e["seq"] for page in pages for e in page]
    assert seqs == sorted(seqs, reverse=True)
    assert seqs[-1] == 1


# -- the cursor itself ----------------------------------------------------------------------------


def test_a_cursor_round_trips_and_refuses_any_change() -> None:
    cursors = Cursors(b"k" * 32)
    scope = scope_of("runs", experiment="x", filter=None)
    text = cursors.make(scope, [3, "a"])
    assert cursors.read(scope, text) == [3, "a"]
    assert cursors.read(scope, None) is None
    body, mac = text.split(".")
    for bad in (f"{body}.{mac[:-1]}", f"{body[:-1]}.{mac}", body, "", "..", "é.é"):
        with pytest.raises(Invalid, match="query parameter 'cursor' is not a cursor this server"):
            cursors.read(scope, bad)
    with pytest.raises(Invalid, match="not a cursor this server made"):
        Cursors(b"other key" * 4).read(scope, text)
    with pytest.raises(Invalid, match="another listing"):
        cursors.read(scope_of("runs", experiment="y"), text)


def test_page_after_is_keyset_paging() -> None:
    items = ["d", "a", "c", "b", "e"]
    first, after = page_after(items, lambda s: [s], None, 2)
    assert (first, after) == (["a", "b"], ["b"])
    second, after = page_after(items, lambda s: [s], after, 2)
    assert (second, after) == (["c", "d"], ["d"])
    assert page_after(items, lambda s: [s], after, 2) == (["e"], None)
