"""The endpoint service on SQLite and PostgreSQL: create, route, flags, canary, audit."""

from __future__ import annotations

import re
from typing import Any

import pytest
from serve_cases import add
from sklearn.pipeline import Pipeline

from shipyard.core.errors import Conflict, Invalid, NotFound
from shipyard.core.records import Endpoint
from shipyard.registry import get_version, set_alias, set_status
from shipyard.serve.endpoints import (
    advance_canary,
    create_endpoint,
    follow_aliases,
    get_endpoint,
    list_endpoints,
    move_alias,
    pause_loop,
    promote_canary,
    resume_loop,
    revisions,
    rollback_canary,
    set_champion,
    set_flags,
    set_route,
    stop_canary,
)
from shipyard.store import audit
from shipyard.store.workspace import Workspace


@pytest.fixture
def ws(any_workspace: Workspace, pipelines: dict[str, Pipeline]) -> Workspace:
    """credit-risk@1..3 usable, @4 rejected by its gate, narrow@1 takes other columns."""
    add(any_workspace, pipelines["a"])
    add(any_workspace, pipelines["b"])
    add(any_workspace, pipelines["a"])
    add(any_workspace, pipelines["b"], failed=True)
    add(any_workspace, pipelines["narrow"], name="narrow")
    set_alias(any_workspace, "credit-risk@1", "champion")
    return any_workspace


def events(ws: Workspace, action: str) -> list[Any]:
    with ws.db.read() as s:
        return list(reversed(audit.events(s, action=action, limit=None)))


def chain_ok(ws: Workspace) -> bool:
    with ws.db.read() as s:
        return audit.verify(s).ok


def ref_ids(ws: Workspace) -> dict[str, str]:
    from shipyard.registry import list_versions

    return {v.ref: v.id for v in list_versions(ws, "credit-risk")}


# -- creating -----------------------------------------------------------------------------------


def test_create_resolves_the_reference_and_remembers_the_alias(ws: Workspace) -> None:
    ids = ref_ids(ws)
    endpoint = create_endpoint(ws, "credit", "credit-risk@champion")
    assert (endpoint.champion_ref, endpoint.champion_id) == ("credit-risk@1", ids["credit-risk@1"])
    assert endpoint.champion_follows == "credit-risk@champion"
    assert endpoint.revision == 1
    assert endpoint.created_by == ws.actor
    assert endpoint.challengers == [] and endpoint.shadows == [] and endpoint.canary is None
    assert create_endpoint(ws, "pinned", "credit-risk@1").champion_follows is None

    set_alias(ws, "credit-risk@2", "champion")  # the registry alone does not touch endpoints
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@1"

    [event, _pinned] = events(ws, "endpoint.create")
    assert (event.object_id, event.before, event.after) == ("credit", None, "1")
    assert event.details["after"]["champion"]["ref"] == "credit-risk@1"
    assert chain_ok(ws)


def test_create_refuses_a_rejected_version_naming_the_gate(ws: Workspace) -> None:
    with pytest.raises(Conflict, match=r"credit-risk@4 .*rejected.*f1 >= 0\.9 \(got 0\.71\)"):
        create_endpoint(ws, "credit", "credit-risk@4")
    with pytest.raises(NotFound):
        get_endpoint(ws, "credit")
    assert events(ws, "endpoint.") == []


def test_create_refuses_an_archived_version(ws: Workspace) -> None:
    set_status(ws, "credit-risk@3", "archived")
    with pytest.raises(Conflict, match=r"credit-risk@3 .*archived"):
        create_endpoint(ws, "credit", "credit-risk@3")


def test_create_checks_the_name_and_refuses_a_second_one(ws: Workspace) -> None:
    with pytest.raises(Invalid, match=r"endpoint name '9 lives' is not allowed"):
        create_endpoint(ws, "9 lives", "credit-risk@1")
    create_endpoint(ws, "credit", "credit-risk@1")
    with pytest.raises(Conflict, match=r"endpoint 'credit' already exists"):
        create_endpoint(ws, "credit", "credit-risk@2")
    with pytest.raises(NotFound, match=r"model 'nope' does not exist"):
        create_endpoint(ws, "other", "nope@1")


def test_unknown_endpoint_lists_the_known_ones(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    with pytest.raises(
        NotFound, match=r"endpoint 'debit' does not exist \(known endpoints: credit\)"
    ):
        get_endpoint(ws, "debit")
    with pytest.raises(NotFound, match=r"'debit'"):
        set_flags(ws, "debit", {"explain": "on"})


def test_list_and_revisions(ws: Workspace) -> None:
    create_endpoint(ws, "b-side", "credit-risk@2")
    create_endpoint(ws, "a-side", "credit-risk@1")
    set_flags(ws, "a-side", {"explain": "on"})
    assert [e.name for e in list_endpoints(ws)] == ["a-side", "b-side"]
    assert revisions(ws) == {"a-side": 2, "b-side": 1}


# -- routing ------------------------------------------------------------------------------------


def test_route_sets_challengers_shadows_and_canary(ws: Workspace) -> None:
    ids = ref_ids(ws)
    create_endpoint(ws, "credit", "credit-risk@1")
    endpoint = set_route(
        ws,
        "credit",
        challengers=[("credit-risk@2", 20)],
        shadows=["credit-risk@3"],
        canary=None,
    )
    assert [(c.ref, c.version_id, c.weight) for c in endpoint.challengers] == [
        ("credit-risk@2", ids["credit-risk@2"], 20.0)
    ]
    assert [s.ref for s in endpoint.shadows] == ["credit-risk@3"]
    assert endpoint.revision == 2
    assert endpoint.targets() == {
        ids["credit-risk@1"]: "credit-risk@1",
        ids["credit-risk@2"]: "credit-risk@2",
        ids["credit-risk@3"]: "credit-risk@3",
    }

    endpoint = set_route(
        ws, "credit", canary="credit-risk@2", steps=[5, 25, 100], guard={"error_rate": 0.02}
    )
    assert endpoint.challengers == [] and endpoint.shadows == []  # the route is what is given
    assert endpoint.canary is not None
    assert (endpoint.canary.ref, endpoint.canary.steps, endpoint.canary.step) == (
        "credit-risk@2",
        [5, 25, 100],
        0,
    )
    assert endpoint.canary.percent == 5 and endpoint.canary.guard == {"error_rate": 0.02}

    first, second = events(ws, "endpoint.route")
    assert (first.before, first.after, second.before, second.after) == ("1", "2", "2", "3")
    assert first.details["before"]["challengers"] == []
    assert first.details["after"]["challengers"][0]["weight"] == 20
    assert second.details["after"]["canary"]["steps"] == [5, 25, 100]
    assert chain_ok(ws)


def test_route_to_a_rejected_version_changes_nothing(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    before = set_route(ws, "credit", challengers=[("credit-risk@2", 10)])
    for kwargs in (
        {"challengers": [("credit-risk@4", 10)]},
        {"shadows": ["credit-risk@4"]},
        {"canary": "credit-risk@4"},
    ):
        with pytest.raises(Conflict, match=r"credit-risk@4 .*rejected.*f1 >= 0\.9 \(got 0\.71\)"):
            set_route(ws, "credit", **kwargs)  # type: ignore[arg-type]
    after = get_endpoint(ws, "credit")
    assert after == before
    assert after.revision == 2
    assert len(events(ws, "endpoint.route")) == 1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"challengers": [("credit-risk@2", 60), ("credit-risk@3", 50)]},
            r"add up to 110%, more than 100%",
        ),
        ({"challengers": [("credit-risk@2", 0)]}, r"weight 0 must be a percent of traffic above 0"),
        ({"challengers": [("credit-risk@2", float("nan"))]}, r"weight nan"),
        ({"canary": "credit-risk@2", "steps": [50, 10]}, r"canary steps \[50, 10\] must be"),
        ({"canary": "credit-risk@2", "steps": [10, 150]}, r"from 1 to 100"),
        ({"canary": "credit-risk@2", "steps": []}, r"canary steps \[\]"),
        ({"canary": "credit-risk@2", "guard": {"latency": 3}}, r"guard 'latency' is not known"),
        ({"canary": "credit-risk@2", "guard": {"error_rate": 2}}, r"error_rate=2 is a fraction"),
        (
            {"challengers": [("credit-risk@2", 10)], "shadows": ["credit-risk@2"]},
            r"credit-risk@2 is given twice \(as challenger and as shadow\)",
        ),
        ({"shadows": ["credit-risk@1"]}, r"credit-risk@1 is the champion .* cannot also be"),
    ],
)
def test_route_refuses_bad_input(ws: Workspace, kwargs: dict[str, Any], pattern: str) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    with pytest.raises(Invalid, match=pattern):
        set_route(ws, "credit", **kwargs)
    assert get_endpoint(ws, "credit").revision == 1


def test_every_version_must_take_the_same_request(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    with pytest.raises(Conflict, match=r"narrow@1 cannot be the shadow .* lacks columns .*grade"):
        set_route(ws, "credit", shadows=["narrow@1"])
    with pytest.raises(Conflict, match=r"narrow@1 cannot be the pinned version"):
        set_flags(ws, "credit", {"pin": "narrow@1"})
    set_route(ws, "credit", challengers=[("credit-risk@2", 10)])
    with pytest.raises(Conflict, match=r"narrow@1 cannot be the champion .* beside credit-risk@2"):
        set_champion(ws, "credit", "narrow@1")
    assert get_endpoint(ws, "credit").revision == 2


def test_the_same_route_again_changes_nothing(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    first = set_route(ws, "credit", challengers=[("credit-risk@2", 10)], shadows=["credit-risk@3"])
    again = set_route(ws, "credit", challengers=[("credit-risk@2", 10)], shadows=["credit-risk@3"])
    assert again.revision == first.revision == 2
    assert len(events(ws, "endpoint.route")) == 1


# -- following an alias (issue 17 #13) ----------------------------------------------------------


def test_an_endpoint_made_from_an_alias_follows_it_and_one_made_from_a_version_stays(
    ws: Workspace,
) -> None:
    create_endpoint(ws, "credit", "credit-risk@champion")
    create_endpoint(ws, "pinned", "credit-risk@1")

    version, followed = move_alias(ws, "credit-risk@2", "champion")
    assert version.ref == "credit-risk@2"
    assert [(e.name, e.champion_ref, e.revision) for e in followed.moved] == [
        ("credit", "credit-risk@2", 2)
    ]
    assert followed.problems == []
    assert get_endpoint(ws, "credit").champion_follows == "credit-risk@champion"
    assert get_endpoint(ws, "pinned").champion_ref == "credit-risk@1"  # an explicit version
    [event] = events(ws, "endpoint.champion.follow")
    assert (event.object_id, event.before, event.after) == ("credit", "1", "2")
    assert event.details["alias"] == "credit-risk@champion"
    assert event.details["before"]["champion"]["ref"] == "credit-risk@1"
    assert event.details["to"] == "credit-risk@2"

    set_alias(ws, "credit-risk@3", "champion")  # moved in the registry (SDK, another process)
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@2"
    assert [e.champion_ref for e in follow_aliases(ws).moved] == ["credit-risk@3"]
    assert follow_aliases(ws).moved == []  # idempotent: several servers call it
    assert revisions(ws)["credit"] == 3

    set_champion(ws, "credit", "credit-risk@1")  # a version number pins it again
    move_alias(ws, "credit-risk@2", "champion")
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@1"
    assert get_endpoint(ws, "credit").champion_follows is None
    assert chain_ok(ws)


def test_an_alias_moved_to_a_version_that_cannot_serve_leaves_the_champion(
    ws: Workspace,
) -> None:
    set_alias(ws, "credit-risk@2", "stable")
    create_endpoint(ws, "credit", "credit-risk@stable")
    set_status(ws, "credit-risk@3", "archived")
    _version, followed = move_alias(ws, "credit-risk@3", "stable")
    assert followed.moved == []
    [problem] = followed.problems
    assert re.search(
        r"endpoint 'credit' follows credit-risk@stable but stays on credit-risk@2: "
        r"credit-risk@3 cannot be the champion .* it is archived",
        problem,
    )
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@2"


def test_promoting_the_canary_of_a_following_endpoint_moves_the_alias(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@champion")
    create_endpoint(ws, "also", "credit-risk@champion")
    set_route(ws, "credit", canary="credit-risk@3", steps=[100])
    promoted = advance_canary(ws, "credit")  # from the last step: promoted
    assert (promoted.champion_ref, promoted.champion_follows) == (
        "credit-risk@3",
        "credit-risk@champion",
    )
    assert get_version(ws, "credit-risk@champion").ref == "credit-risk@3"
    assert get_endpoint(ws, "also").champion_ref == "credit-risk@3"  # it follows the alias too
    assert follow_aliases(ws).moved == []  # and nothing moves back


# -- statuses tell the truth (issue 17 #15) -----------------------------------------------------


def statuses(ws: Workspace) -> dict[str, str]:
    from shipyard.registry import list_versions

    return {v.ref: v.status.value for v in list_versions(ws, "credit-risk")}


def test_a_champion_is_deployed_and_a_replaced_one_approved_again(ws: Workspace) -> None:
    assert statuses(ws)["credit-risk@1"] == "candidate"
    create_endpoint(ws, "credit", "credit-risk@1")
    create_endpoint(ws, "other", "credit-risk@1")
    assert statuses(ws)["credit-risk@1"] == "deployed"

    set_champion(ws, "credit", "credit-risk@2")
    assert statuses(ws)["credit-risk@1"] == "deployed"  # still the champion of "other"
    set_route(ws, "other", canary="credit-risk@2")
    promote_canary(ws, "other")
    assert statuses(ws) == {
        "credit-risk@1": "approved",
        "credit-risk@2": "deployed",
        "credit-risk@3": "candidate",
        "credit-risk@4": "rejected",
    }
    changes = [
        (e.details["ref"], e.before, e.after, e.details["reason"])
        for e in events(ws, "model.status")
    ]
    assert changes == [
        ("credit-risk@1", "candidate", "deployed", "champion of endpoint credit"),
        ("credit-risk@2", "candidate", "deployed", "champion of endpoint credit"),
        (
            "credit-risk@1",
            "deployed",
            "approved",
            "replaced by credit-risk@2 as champion of endpoint other",
        ),
    ]
    set_champion(ws, "credit", "credit-risk@1")  # a rollback needs no restore first
    assert statuses(ws)["credit-risk@1"] == "deployed"
    assert chain_ok(ws)


# -- the loop's switch (issue 17 #14) -----------------------------------------------------------


def test_the_loop_is_paused_and_resumed_per_endpoint(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    paused = pause_loop(ws, "credit", "quarter-end freeze")
    assert (paused.loop_paused, paused.revision) == ("quarter-end freeze", 2)
    assert pause_loop(ws, "credit").loop_paused == "quarter-end freeze"  # kept, nothing written
    assert resume_loop(ws, "credit").loop_paused is None
    assert [e.details.get("reason") for e in events(ws, "endpoint.loop.pause")] == [
        "quarter-end freeze"
    ]
    assert len(events(ws, "endpoint.loop.resume")) == 1
    with pytest.raises(NotFound, match=r"endpoint 'nope' does not exist"):
        pause_loop(ws, "nope")


def test_set_champion_takes_the_version_off_other_roles(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", challengers=[("credit-risk@2", 10)], shadows=["credit-risk@3"])
    endpoint = set_champion(ws, "credit", "credit-risk@2")
    assert endpoint.champion_ref == "credit-risk@2"
    assert endpoint.challengers == []
    assert [s.ref for s in endpoint.shadows] == ["credit-risk@3"]
    [event] = events(ws, "endpoint.champion")
    assert event.details["before"]["champion"]["ref"] == "credit-risk@1"
    assert event.details["after"]["champion"]["ref"] == "credit-risk@2"
    with pytest.raises(Conflict, match=r"credit-risk@4 .*rejected"):
        set_champion(ws, "credit", "credit-risk@4")
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@2"


# -- flags --------------------------------------------------------------------------------------


def test_flags(ws: Workspace) -> None:
    ids = ref_ids(ws)
    create_endpoint(ws, "credit", "credit-risk@1")
    set_alias(ws, "credit-risk@3", "stable")
    endpoint = set_flags(ws, "credit", {"explain": "ON", "pin": "credit-risk@stable"})
    assert endpoint.flags == {"explain": "on", "pin": "credit-risk@3"}
    assert endpoint.pinned is not None and endpoint.pinned.version_id == ids["credit-risk@3"]
    assert ids["credit-risk@3"] in endpoint.targets()
    assert endpoint.revision == 2

    endpoint = set_flags(ws, "credit", {"pin": None, "log_inputs": "off"})
    assert endpoint.flags == {"explain": "on", "log_inputs": "off"}
    assert endpoint.pinned is None

    with pytest.raises(Invalid, match=r"flag 'colour' is not known; the flags are explain, "):
        set_flags(ws, "credit", {"colour": "red"})
    with pytest.raises(Invalid, match=r"flag explain='maybe': expected one of on, off"):
        set_flags(ws, "credit", {"explain": "maybe"})
    with pytest.raises(Conflict, match=r"credit-risk@4 cannot be the pinned version .*rejected"):
        set_flags(ws, "credit", {"pin": "credit-risk@4"})
    assert get_endpoint(ws, "credit").revision == 3

    [first, second] = events(ws, "endpoint.flags")
    assert first.details["after"]["flags"] == {"explain": "on", "pin": "credit-risk@3"}
    assert second.details["before"]["flags"] == {"explain": "on", "pin": "credit-risk@3"}
    assert chain_ok(ws)


# -- the canary ---------------------------------------------------------------------------------


def canary_state(endpoint: Endpoint) -> tuple[str, int, int]:
    assert endpoint.canary is not None
    return endpoint.canary.state, endpoint.canary.step, endpoint.canary.percent


def test_canary_advances_step_by_step_then_is_promoted(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", challengers=[("credit-risk@3", 10)], canary="credit-risk@2")
    assert canary_state(advance_canary(ws, "credit")) == ("running", 1, 50)
    assert canary_state(advance_canary(ws, "credit")) == ("running", 2, 100)
    promoted = advance_canary(ws, "credit")  # from the last step: promoted
    assert canary_state(promoted) == ("promoted", 2, 0)
    assert promoted.champion_ref == "credit-risk@2"
    assert [c.ref for c in promoted.challengers] == ["credit-risk@3"]

    steps = events(ws, "endpoint.canary.step")
    assert [
        (e.details["before"]["canary"]["step"], e.details["after"]["canary"]["step"]) for e in steps
    ] == [(0, 1), (1, 2)]
    [promote] = events(ws, "endpoint.canary.promote")
    assert promote.details["before"]["champion"]["ref"] == "credit-risk@1"
    assert promote.details["after"]["champion"]["ref"] == "credit-risk@2"
    with pytest.raises(Conflict, match=r"canary credit-risk@2 of endpoint 'credit' is promoted"):
        advance_canary(ws, "credit")
    assert chain_ok(ws)


def test_advance_with_an_expected_step_is_idempotent(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", canary="credit-risk@2")
    assert canary_state(advance_canary(ws, "credit", expect_step=0)) == ("running", 1, 50)
    again = advance_canary(ws, "credit", expect_step=0)  # a second server saw the same step
    assert canary_state(again) == ("running", 1, 50)
    assert again.revision == 3
    rollback_canary(ws, "credit", "guard failed")
    late = advance_canary(ws, "credit", expect_step=1)  # rolled back by another server meanwhile
    assert canary_state(late) == ("rolled_back", 1, 0)
    assert late.revision == 4


def test_resending_the_running_canary_keeps_its_step(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", canary="credit-risk@2")
    advance_canary(ws, "credit")
    kept = set_route(ws, "credit", canary="credit-risk@2", shadows=["credit-risk@3"])
    assert canary_state(kept) == ("running", 1, 50)
    restarted = set_route(ws, "credit", canary="credit-risk@2", steps=[20, 100])
    assert canary_state(restarted) == ("running", 0, 20)


def test_rollback_keeps_the_reason_and_is_idempotent(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", canary="credit-risk@2")
    endpoint = rollback_canary(ws, "credit", "error rate 5% above 1%")
    assert endpoint.canary is not None
    assert (endpoint.canary.state, endpoint.canary.reason) == (
        "rolled_back",
        "error rate 5% above 1%",
    )
    assert endpoint.canary.percent == 0
    assert endpoint.champion_ref == "credit-risk@1"
    assert rollback_canary(ws, "credit", "again").revision == endpoint.revision
    [event] = events(ws, "endpoint.canary.rollback")
    assert event.details["reason"] == "error rate 5% above 1%"
    with pytest.raises(
        Conflict, match=r"is rolled_back: error rate 5% above 1%; it is not running"
    ):
        promote_canary(ws, "credit")
    set_route(ws, "credit", canary="credit-risk@3")
    with pytest.raises(Invalid, match=r"give a reason"):
        rollback_canary(ws, "credit", " ")
    assert chain_ok(ws)


def test_promote_and_stop(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    with pytest.raises(Conflict, match=r"endpoint 'credit' has no canary; start one"):
        promote_canary(ws, "credit")
    set_route(ws, "credit", canary="credit-risk@2")
    endpoint = promote_canary(ws, "credit")
    assert endpoint.champion_ref == "credit-risk@2"
    assert canary_state(endpoint)[0] == "promoted"

    set_route(ws, "credit", canary="credit-risk@3")
    stopped = stop_canary(ws, "credit")
    assert canary_state(stopped) == ("stopped", 0, 0)
    assert stopped.canary is not None and stopped.canary.reason == f"stopped by {ws.actor}"
    assert len(events(ws, "endpoint.canary.stop")) == 1


def test_a_canary_archived_since_it_started_is_not_promoted(ws: Workspace) -> None:
    create_endpoint(ws, "credit", "credit-risk@1")
    set_route(ws, "credit", canary="credit-risk@2")
    set_status(ws, "credit-risk@2", "archived")
    with pytest.raises(Conflict, match=r"credit-risk@2 cannot be the champion .*archived"):
        promote_canary(ws, "credit")
    assert get_endpoint(ws, "credit").champion_ref == "credit-risk@1"
