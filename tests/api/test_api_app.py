"""The composed app: the serving app as it was (prediction lane first), the API after it."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_world import World
from starlette.routing import Route

from shipyard.api import create_app
from shipyard.api.openapi import operation_of
from shipyard.core.settings import Settings
from shipyard.serve.lane import LANES, ServingApp

pytestmark = pytest.mark.timeout(120)


def test_the_prediction_lane_stays_first_and_the_api_comes_after_serving(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path / "ws"))
    assert isinstance(app, ServingApp)
    paths = [r.path for r in app.routes if isinstance(r, Route)]
    assert paths[:2] == list(LANES.values())
    kinds = [operation_of(r) is not None for r in app.routes]
    first_api = kinds.index(True)
    assert all(kinds[first_api:]), "an API route before a serving route"
    keys = [(r.path, tuple(sorted(r.methods or ()))) for r in app.routes if isinstance(r, Route)]
    assert len(keys) == len(set(keys)), "a path and method served twice"


def test_predictions_still_work_in_the_composed_app(world: World) -> None:
    with world.client("predictor") as c:
        r = c.post(
            "/v1/endpoints/scoring/predict",
            json={"rows": [{"income": 40000.0, "debt": 20000.0}]},
        )
        refused = c.get("/api/v1/runs")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == world.versions["good"].ref
    assert refused.status_code == 403
