"""Optimistic concurrency of endpoint changes (`expect_revision`), checked under the row lock,
on SQLite and PostgreSQL: a stale revision changes nothing; of two changes based on the same
revision exactly one is applied."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from api_world import register_versions

from shipyard.core.errors import Conflict
from shipyard.serve.endpoints import (
    create_endpoint,
    get_endpoint,
    set_champion,
    set_flags,
    set_route,
    stop_canary,
)
from shipyard.store import audit
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(120)


def test_a_stale_revision_is_refused_for_every_kind_of_change(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    ws = any_workspace
    v = register_versions(ws, tmp_path)
    create_endpoint(ws, "e", v["good"].ref)
    set_route(ws, "e", canary=v["spare"].ref, expect_revision=1)
    with ws.db.read() as s:
        events = len(audit.events(s, limit=None))
    changes = [
        lambda: set_route(ws, "e", shadows=[v["spare"].ref], expect_revision=1),
        lambda: set_champion(ws, "e", v["spare"].ref, expect_revision=1),
        lambda: set_flags(ws, "e", {"explain": "on"}, expect_revision=1),
        lambda: stop_canary(ws, "e", "enough", expect_revision=1),
    ]
    for change in changes:
        with pytest.raises(Conflict, match="endpoint 'e' is at revision 2, not 1") as caught:
            change()
        assert caught.value.details["revision"] == 2
    assert get_endpoint(ws, "e").revision == 2
    with ws.db.read() as s:
        assert len(audit.events(s, limit=None)) == events
    assert set_flags(ws, "e", {"explain": "on"}, expect_revision=2).revision == 3


def test_of_two_changes_on_one_revision_exactly_one_applies(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    ws = any_workspace
    v = register_versions(ws, tmp_path)
    create_endpoint(ws, "e", v["good"].ref)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def change(flag: str) -> None:
        start.wait()
        try:
            set_flags(ws, "e", {flag: "on"}, expect_revision=1)
            outcomes.append("applied")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=change, args=(f,)) for f in ("explain", "log_inputs")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["applied", "conflict"]
    endpoint = get_endpoint(ws, "e")
    assert endpoint.revision == 2
    assert len(endpoint.flags) == 1
