"""Every client method against a real server (uvicorn on loopback, a real workspace)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_world import World

from shipyard.client import Client, Pages
from shipyard.client.results import (
    DiffView,
    EndpointState,
    MetricPointView,
    ModelVersionView,
    RunView,
    TokenCreated,
)
from shipyard.core.records import ModelStatus, Role

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def admin(world: World) -> Iterator[Client]:
    with Client(world.url, world.tokens["admin"]) as client:
        yield client


def test_tokens_list_create_revoke(admin: Client) -> None:
    created = admin.tokens.create("ci-deployer", "deployer")

    assert isinstance(created, TokenCreated)
    assert created.secret.startswith("shp_") and created.token.role is Role.deployer
    listed = {t.id: t for t in admin.tokens.list()}
    assert created.token.id in listed and "test-admin" in {t.name for t in listed.values()}
    revoked = admin.tokens.revoke(created.token.id)
    assert not revoked.active and revoked.revoked_at is not None
    assert created.token.id not in {t.id for t in admin.tokens.list()}
    assert created.token.id in {t.id for t in admin.tokens.list(include_revoked=True)}


def test_audit_log_names_the_token_and_the_chain_verifies(world: World, admin: Client) -> None:
    made = admin.tokens.create("audited", "viewer")

    events = list(admin.audit.log(action="token.", object_id=made.token.id))
    assert [e.action for e in events] == ["token.create"]
    assert events[0].actor == world.token_ids["admin"]
    chain = admin.audit.verify()
    assert chain.ok and chain.problems == [] and chain.events > 0
    assert admin.audit.verify(head=chain.head).ok


def test_datasets(admin: Client) -> None:
    assert [d.name for d in admin.datasets.list()] == ["loans", "other"]
    loans = admin.datasets.get("loans")
    assert loans.versions == 2 and loans.latest is not None and loans.latest.ref == "loans@2"
    assert [v.rows for v in admin.datasets.versions("loans")] == [300, 400]
    first = admin.datasets.show("loans", 1)
    assert (first.ref, first.rows) == ("loans@1", 300)
    assert "income" in {c.name for c in first.schema_.columns}
    assert admin.datasets.show("loans").ref == "loans@2"
    profile = admin.datasets.profile("loans", 2)
    assert profile.ref == "loans@2" and profile.profile.rows == 400
    diff = admin.datasets.diff("loans", 1)
    assert isinstance(diff, DiffView)
    assert (diff.before, diff.after, diff.rows_before, diff.rows_after) == (
        "loans@1",
        "loans@2",
        300,
        400,
    )
    assert {s.column for s in diff.shifts} >= {"income", "debt"}


def test_runs_search_get_and_metric_history(world: World, admin: Client) -> None:
    found = list(admin.runs.search(experiment="credit", filter="metrics.auc > 0.85"))

    assert [r.name for r in found] == ["trial-4"]
    assert isinstance(found[0], RunView) and found[0].params == {"C": 4}
    best = list(admin.runs.search(order_by="metrics.auc desc"))
    assert [r.name for r in best] == [f"trial-{i}" for i in (4, 3, 2, 1, 0)]
    detail = admin.runs.get(world.runs[0])
    assert detail.run.id == world.runs[0] and detail.children == []
    history = list(admin.runs.metric_history(world.runs[0], "loss"))
    assert all(isinstance(p, MetricPointView) for p in history)
    assert [(p.step, p.value) for p in history] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_models_list_get_alias_status(world: World, admin: Client) -> None:
    versions = list(admin.models.list(name="credit"))
    assert [v.ref for v in versions] == ["credit@1", "credit@2", "credit@3", "credit@4"]
    assert [v.ref for v in admin.models.list(status="rejected")] == ["credit@2"]

    got = admin.models.get("credit", 1)
    assert isinstance(got, ModelVersionView) and got.signature.inputs
    staged = admin.models.alias("credit", "staging", 3)
    assert "staging" in staged.aliases
    assert admin.models.get("credit", "staging").ref == "credit@3"
    assert [v.ref for v in admin.models.list(alias="staging")] == ["credit@3"]
    assert admin.models.remove_alias("credit", "staging").ref == "credit@3"
    assert "staging" not in admin.models.get("credit", 3).aliases
    approved = admin.models.set_status("credit", 3, "approved")
    assert approved.status is ModelStatus.approved
    assert admin.models.set_status("credit", 3, "candidate").status is ModelStatus.candidate


def test_endpoints_create_route_champion_flags(world: World, admin: Client) -> None:
    good, spare = world.versions["good"].ref, world.versions["spare"].ref
    spare2 = world.versions["spare2"].ref
    created = admin.endpoints.create("client-routes", good)
    assert isinstance(created, EndpointState)
    assert (created.champion_ref, created.revision) == (good, 1)
    assert "client-routes" in {e.name for e in admin.endpoints.list()}

    routed = admin.endpoints.route(
        "client-routes", revision=1, challengers=[(spare, 10)], shadows=[spare2]
    )
    assert [(c.ref, c.weight) for c in routed.challengers] == [(spare, 10)]
    assert [s.ref for s in routed.shadows] == [spare2] and routed.revision == 2
    crowned = admin.endpoints.set_champion("client-routes", spare, revision=2)
    assert crowned.champion_ref == spare and crowned.revision == 3
    flagged = admin.endpoints.set_flags("client-routes", {"explain": "on"}, revision=3)
    assert flagged.flags == {"explain": "on"}
    cleared = admin.endpoints.set_flags("client-routes", {"explain": None}, revision=4)
    assert cleared.flags == {} and admin.endpoints.get("client-routes").revision == 5


@pytest.mark.parametrize("action", ["promote", "rollback", "stop"])
def test_endpoint_canary_actions(world: World, admin: Client, action: str) -> None:
    good, spare = world.versions["good"].ref, world.versions["spare"].ref
    name = f"client-canary-{action}"
    admin.endpoints.create(name, good)
    started = admin.endpoints.route(name, revision=1, canary={"model": spare, "steps": [20, 100]})
    assert started.canary is not None and started.canary.ref == spare

    if action == "promote":
        done = admin.endpoints.promote_canary(name, revision=started.revision)
        assert done.canary is not None and done.canary.state == "promoted"
        assert done.champion_ref == spare
    elif action == "rollback":
        done = admin.endpoints.rollback_canary(name, "p99 too high", revision=started.revision)
        assert done.canary is not None and done.canary.state == "rolled_back"
        assert done.champion_ref == good
    else:
        done = admin.endpoints.stop_canary(name, "enough", revision=started.revision)
        assert done.canary is not None and done.canary.state == "stopped"
        assert done.champion_ref == good
    assert done.revision == started.revision + 1


def test_pages_follow_the_cursor(admin: Client) -> None:
    runs: Pages[RunView] = admin.runs.search(experiment="credit")
    pages = list(runs.pages(limit=2))

    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.next_cursor is None for p in pages] == [False, False, True]
    paged = [r.id for p in pages for r in p.items]
    assert paged == [r.id for r in runs] == [r.id for r in runs.page(limit=10).items]
    assert len(set(paged)) == 5
    second = runs.page(limit=2, cursor=pages[0].next_cursor)
    assert [r.id for r in second.items] == paged[2:4]


def test_pages_of_keyset_and_sequence_cursors(admin: Client) -> None:
    """Tokens page by key, the audit log by sequence number: the same walk in both."""
    for pages in (admin.tokens.list(include_revoked=True), admin.audit.log()):
        walked = [item.id for page in pages.pages(limit=2) for item in page.items]
        whole = [item.id for item in pages.page(limit=500).items]
        assert len(whole) > 4 and walked == whole == [item.id for item in pages]
