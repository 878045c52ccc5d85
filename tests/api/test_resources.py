"""What each resource answers, compared with the service functions the CLI calls."""

from __future__ import annotations

import pytest
from api_world import World, error_of, wait_for_status

from shipyard.api.cursor import derive_key
from shipyard.data import diff_versions, get_version
from shipyard.registry import get_version as get_model_version
from shipyard.serve.endpoints import create_endpoint, get_endpoint
from shipyard.store.keys import Signer
from shipyard.train import get_run, metric_history

pytestmark = pytest.mark.timeout(120)


def test_a_created_token_works_and_a_revoked_one_stops(world: World) -> None:
    with world.client("admin") as c:
        created = c.post("/api/v1/tokens", json={"name": "temp", "role": "viewer"}).json()
    secret, token_id = created["secret"], created["token"]["id"]
    assert secret.startswith(created["token"]["prefix"])
    headers = {"authorization": f"Bearer {secret}"}
    with world.client(None) as c:
        assert c.get("/api/v1/runs", headers=headers).status_code == 200
    with world.client("admin") as c:
        revoked = c.delete(f"/api/v1/tokens/{token_id}")
        listed = c.get("/api/v1/tokens").json()["items"]
    assert revoked.json()["active"] is False
    assert token_id not in [t["id"] for t in listed]
    # the server trusts a token look-up for token_ttl (1 s): the next look-up refuses it
    wait_for_status(world, "/api/v1/runs", headers, 401)


def test_a_dataset_version_profile_and_diff_are_the_services_answers(world: World) -> None:
    with world.client("viewer") as c:
        version = c.get("/api/v1/datasets/loans/versions/latest").json()
        profile = c.get("/api/v1/datasets/loans/versions/1/profile").json()
        diff = c.get("/api/v1/datasets/loans/diff", params={"before": "1"}).json()
        across = c.get("/api/v1/datasets/loans/diff", params={"before": "other@1"}).json()
    stored = get_version(world.ws, "loans@latest")
    assert version["ref"] == stored.ref == "loans@2"
    assert version["schema"] == stored.schema_.model_dump(mode="json")
    assert profile["profile"] == get_version(world.ws, "loans@1").profile.model_dump(mode="json")
    expected = diff_versions(world.ws, "loans@1", "loans@2")
    assert [s["column"] for s in diff["shifts"]] == [s.column for s in expected.shifts]
    assert (diff["rows_before"], diff["rows_after"]) == (300, 400)
    assert (across["before"], across["after"]) == ("other@1", "loans@2")


def test_a_run_and_its_metric_history(world: World) -> None:
    run_id = world.runs[2]
    with world.client("viewer") as c:
        shown = c.get(f"/api/v1/runs/{run_id}").json()
        history = c.get(f"/api/v1/runs/{run_id}/metrics/loss").json()
        missing = c.get("/api/v1/runs/run_nope/metrics/loss")
    run = get_run(world.ws, run_id)
    assert shown["run"]["metrics"] == run.metrics
    assert shown["run"]["params"] == {"C": 2}
    assert shown["children"] == []
    assert [p["value"] for p in history["items"]] == [
        p.value for p in metric_history(world.ws, run_id, "loss")
    ]
    assert missing.status_code == 404
    assert "run_nope" in error_of(missing)["message"]


def test_aliases_and_status_through_the_registry_rules(world: World) -> None:
    rejected = world.versions["rejected"]
    with world.client("scientist") as c:
        refused = c.put(
            "/api/v1/models/credit/aliases/champion", json={"version": rejected.version}
        )
        moved = c.put("/api/v1/models/credit/aliases/staging", json={"version": 1})
        by_alias = c.get("/api/v1/models/credit/versions/staging")
        listed = c.get("/api/v1/models", params={"alias": "staging"}).json()
        gone = c.delete("/api/v1/models/credit/aliases/staging")
    assert refused.status_code == 409, refused.text
    assert "rejected" in error_of(refused)["message"]
    assert moved.status_code == 200
    assert "staging" in moved.json()["aliases"]
    assert by_alias.json()["ref"] == "credit@1"
    assert [v["ref"] for v in listed["items"]] == ["credit@1"]
    assert gone.status_code == 200
    assert "staging" not in get_model_version(world.ws, "credit@1").aliases


def test_route_changes_apply_through_serve_endpoints(world: World) -> None:
    create_endpoint(world.ws, "routed", world.versions["good"].ref)
    spare = world.versions["spare"].ref
    with world.client("deployer") as c:
        routed = c.put(
            "/api/v1/endpoints/routed/route",
            json={"revision": 1, "challengers": [{"model": spare, "weight": 20}]},
        )
        assert routed.status_code == 200, routed.text
        refused = c.put(
            "/api/v1/endpoints/routed/route",
            json={"revision": 2, "challengers": [{"model": world.versions["rejected"].ref,
                                                  "weight": 10}]},
        )  # fmt: skip
        promoted = c.put("/api/v1/endpoints/routed/champion", json={"revision": 2, "model": spare})
    assert [ch["weight"] for ch in routed.json()["challengers"]] == [20.0]
    assert refused.status_code == 409
    assert "failed its gates" in error_of(refused)["message"]
    assert promoted.status_code == 200
    stored = get_endpoint(world.ws, "routed")
    assert (stored.champion_ref, stored.revision, stored.challengers) == (spare, 3, [])
    assert stored.updated_by == world.token_ids["deployer"]


def test_every_replica_of_a_workspace_derives_the_same_cursor_key(world: World) -> None:
    one, two = Signer(world.settings.home), Signer(world.settings.home)
    assert derive_key(one.sign) == derive_key(two.sign)
    assert len(derive_key(one.sign)) == 32
