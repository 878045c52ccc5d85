"""The serving app over real HTTP: uvicorn on loopback, a real workspace, real trained models.

One server (module scope) serves endpoints that the tests create and change while it runs, as
an operator would; tests that need other limits or a shutdown start servers of their own.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from app_harness import Running, records, running, start, tokens_for, wait_for, workspace_settings
from lightgbm import LGBMClassifier
from serve_cases import FEATURES, add, fit, frame, prep, signature
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from starlette.routing import Route

from shipyard.core.records import ModelVersion, Role
from shipyard.core.settings import Settings
from shipyard.registry import register
from shipyard.security import create_token, init_workspace, revoke_token
from shipyard.serve import create_app
from shipyard.serve.app import OPEN_PATHS
from shipyard.serve.batcher import MicroBatcher
from shipyard.serve.endpoints import (
    create_endpoint,
    get_endpoint,
    set_champion,
    set_flags,
    set_route,
)
from shipyard.serve.predlog import read_predictions
from shipyard.store import audit
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(180)


@dataclass
class World:
    ws: Workspace
    settings: Settings
    server: Running
    pipelines: dict[str, Pipeline]
    versions: dict[str, ModelVersion]

    def client(self, role: str | None = "predictor") -> httpx.Client:
        return self.server.client(role)

    def endpoint(self, name: str, model: str = "a") -> str:
        """A fresh endpoint, served once the server has picked it up."""
        create_endpoint(self.ws, name, self.versions[model].ref)
        self.wait_revision(name, 1)
        return name

    def wait_revision(self, name: str, revision: int) -> None:
        with self.client("viewer") as c:

            def served() -> bool:
                r = c.get(f"/v1/endpoints/{name}")
                return r.status_code == 200 and r.json()["serving"].get("revision") == revision

            wait_for(served, what=f"endpoint {name} revision {revision} to be served")


def fit_lightgbm() -> Pipeline:
    X, y = frame(2_000, 2)
    model = LGBMClassifier(n_estimators=25, num_leaves=15, random_state=0, verbosity=-1)
    return Pipeline([("prep", prep()), ("model", model)]).fit(X[FEATURES], y)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = workspace_settings(tmp_path_factory.mktemp("serve") / "ws")
    ws, _token, _secret = init_workspace(settings)
    pipelines = {"a": fit(1.0), "b": fit(0.01, seed=1), "lgbm": fit_lightgbm()}
    versions = {"a": add(ws, pipelines["a"]), "b": add(ws, pipelines["b"])}
    versions["lgbm"] = register(
        ws, "credit-lgbm", pipelines["lgbm"], task="classification", signature=signature()
    )
    create_endpoint(ws, "credit", versions["a"].ref)
    create_endpoint(ws, "boosted", versions["lgbm"].ref)
    with running(settings, tokens_for(ws)) as server:
        yield World(ws, settings, server, pipelines, versions)
    ws.close()


def rows(n: int = 20, seed: int = 5) -> pd.DataFrame:
    X, _ = frame(n, seed)
    X.loc[X.index[0], "income"] = np.nan  # a missing value the model imputes
    return X


# -- predictions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "model"), [("credit", "a"), ("boosted", "lgbm")])
def test_predict_records_match_the_models_own_predict_proba(
    world: World, endpoint: str, model: str
) -> None:
    X = rows()
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{endpoint}/predict", json={"rows": records(X)})
    assert r.status_code == 200, r.text
    body = r.json()
    pipeline = world.pipelines[model]
    assert body["model"] == world.versions[model].ref
    assert body["endpoint"] == endpoint
    assert body["classes"] == ["no", "yes"]
    np.testing.assert_allclose(body["probabilities"], pipeline.predict_proba(X), rtol=1e-9)
    assert body["predictions"] == pipeline.predict(X).tolist()
    assert r.headers["x-request-id"] == body["request_id"]
    assert len(body["request_id"]) >= 16


def test_predict_columns_form_gives_the_same_answer(world: World) -> None:
    X = rows(7, seed=9)
    columns = {k: [r[k] for r in records(X)] for k in FEATURES}
    with world.client() as c:
        by_rows = c.post("/v1/endpoints/credit/predict", json={"rows": records(X)}).json()
        by_columns = c.post("/v1/endpoints/credit/predict", json={"columns": columns}).json()
    assert by_columns["predictions"] == by_rows["predictions"]
    np.testing.assert_allclose(by_columns["probabilities"], by_rows["probabilities"])
    assert by_columns["request_id"] != by_rows["request_id"]


BAD_BODIES = [
    pytest.param(b"", "empty", id="empty body"),
    pytest.param(b'{"rows": [{"income": 1', "json", id="malformed JSON"),
    pytest.param(
        b'{"rows": [{"income": NaN, "debt": 1, "age": 30, "score": 600, "grade": "A"}]}',
        "json",
        id="NaN literal",
    ),
    pytest.param(
        json.dumps(
            {"rows": [{"income": "a lot", "debt": 1, "age": 30, "score": 600, "grade": "A"}]}
        ).encode(),
        "type",
        id="string for a number",
    ),
    pytest.param(
        json.dumps({"rows": [{"income": 1.0, "debt": 1, "age": 30, "score": 600}]}).encode(),
        "missing_column",
        id="missing column",
    ),
    pytest.param(
        json.dumps(
            {"rows": [{"income": 1.0, "debt": 1, "age": 30, "score": 600, "grade": "A", "x": 1}]}
        ).encode(),
        "extra_column",
        id="unknown column",
    ),
    pytest.param(b"[1, 2]", "shape", id="not an object"),
]


@pytest.mark.parametrize(("body", "rule"), BAD_BODIES)
def test_bad_input_is_422_naming_the_rule(world: World, body: bytes, rule: str) -> None:
    with world.client() as c:
        r = c.post(
            "/v1/endpoints/credit/predict",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error"] == "InputError"
    assert error["details"]["errors"][0]["rule"] == rule
    assert error["message"]


def test_string_for_number_names_the_column(world: World) -> None:
    row = {"income": "a lot", "debt": 1, "age": 30, "score": 600, "grade": "A"}
    with world.client() as c:
        r = c.post("/v1/endpoints/credit/predict", json={"rows": [row]})
    assert r.status_code == 422
    assert r.json()["details"]["errors"][0]["column"] == "income"
    assert "income" in r.json()["message"]


def test_too_many_rows_is_422(world: World) -> None:
    row = records(rows(1))[0]
    with world.client() as c:
        r = c.post("/v1/endpoints/credit/predict", json={"rows": [row] * 10_001})
    assert r.status_code == 422
    assert r.json()["details"]["errors"][0]["rule"] == "too_many_rows"


def test_unknown_endpoint_is_404(world: World) -> None:
    with world.client() as c:
        predict = c.post("/v1/endpoints/nope/predict", json={"rows": records(rows(1))})
        infer = c.post("/v2/models/nope/infer", json={"inputs": []})
    with world.client("viewer") as c:
        show = c.get("/v1/endpoints/nope")
    assert predict.status_code == infer.status_code == show.status_code == 404
    assert "'nope'" in predict.json()["message"]
    assert "credit" not in predict.text and "boosted" not in predict.text  # others' names
    assert "credit" in show.json()["message"]  # a viewer may list the endpoints
    assert "nope" in infer.json()["error"]  # OIP error shape: {"error": "<message>"}


def test_unknown_route_and_method(world: World) -> None:
    with world.client() as c:
        missing = c.get("/v1/nothing")
        wrong = c.get("/v1/endpoints/credit/predict")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert wrong.status_code == 405 and wrong.json()["error"] == "MethodNotAllowed"


def test_the_prediction_lane_serves_the_routes_own_endpoints(world: World) -> None:
    from shipyard.serve.lane import LANES

    app = create_app(world.settings)
    by_path = {r.path: r.endpoint for r in app.routes if isinstance(r, Route)}
    lanes = {
        path: endpoint for (_, _, endpoint), path in zip(app._lanes, LANES.values(), strict=True)
    }
    assert lanes == {path: by_path[path] for path in LANES.values()}  # the token check too
    body = {"rows": records(rows(2))}
    with world.client() as c:
        # Paths the lane does not take exactly go through Starlette's router, unchanged.
        nested = c.post("/v1/endpoints/a/b/predict", json=body)
        empty = c.post("/v1/endpoints//predict", json=body)
        lane = c.post("/v1/endpoints/credit/predict", json=body)
    assert nested.status_code == empty.status_code == 404
    assert nested.json()["error"] == "NotFound"
    assert lane.status_code == 200 and len(lane.json()["predictions"]) == 2
    with world.server.client(None) as c:
        assert c.post("/v1/endpoints/credit/predict", json=body).status_code == 401


@pytest.mark.parametrize(("endpoint", "model"), [("credit", "a"), ("boosted", "lgbm")])
def test_explain_true_gives_each_row_its_shap_values(
    world: World, endpoint: str, model: str
) -> None:
    X = rows(6)
    X.loc[X.index[3], "score"] = 250.0  # an extreme score: the reason for row 3's answer
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{endpoint}/predict?explain=true", json={"rows": records(X)})
        plain = c.post(f"/v1/endpoints/{endpoint}/predict", json={"rows": records(X)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["explanations"]) == len(X)
    for row in body["explanations"]:
        assert [set(item) for item in row] == [{"feature", "value", "contribution"}] * 5
        assert sorted(item["feature"] for item in row) == sorted(FEATURES)  # grade, not grade_B
    assert body["explanations"][3][0]["feature"] == "score"
    assert {i["feature"]: i["value"] for i in body["explanations"][0]}["income"] is None
    # Five columns, top five: the contributions and base_value add up to the raw output.
    pipeline = world.pipelines[model]
    raw = pipeline.predict(X, raw_score=True) if model == "lgbm" else pipeline.decision_function(X)
    sums = [sum(item["contribution"] for item in row) for row in body["explanations"]]
    np.testing.assert_allclose(np.array(sums) + body["base_value"], raw, atol=1e-6)
    assert body["explained_output"].startswith("log-odds of class 'yes'")
    np.testing.assert_allclose(body["probabilities"], pipeline.predict_proba(X), rtol=1e-9)
    assert plain.status_code == 200 and "explanations" not in plain.json()


def _unexplainable(world: World, name: str) -> str:
    """An endpoint serving a KNN pipeline: compiled, but without a per-row explainer."""
    X, y = frame(300, 8)
    pipeline = Pipeline([("prep", prep()), ("model", KNeighborsClassifier())]).fit(X, y)
    version = register(
        world.ws, f"{name}-model", pipeline, task="classification", signature=signature()
    )
    create_endpoint(world.ws, name, version.ref)
    world.wait_revision(name, 1)
    return name


def test_explain_true_on_a_model_without_explanations_is_501_with_the_reason(
    world: World,
) -> None:
    name = _unexplainable(world, "neighbours")
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{name}/predict?explain=true", json={"rows": records(rows(2))})
        bad = c.post(f"/v1/endpoints/{name}/predict?explain=maybe", json={"rows": []})
    assert r.status_code == 501
    assert r.json()["error"] == "NotSupported"
    assert "final estimator is a KNeighborsClassifier" in r.json()["message"]
    assert "skops model" in r.json()["message"]
    assert bad.status_code == 422 and "explain='maybe' is not understood" in bad.json()["message"]


def test_the_explain_flag_explains_and_says_why_when_it_cannot(world: World) -> None:
    explained = world.endpoint("explained")
    set_flags(world.ws, explained, {"explain": "on"})
    world.wait_revision(explained, 2)
    unexplained = _unexplainable(world, "neighbours-flagged")
    set_flags(world.ws, unexplained, {"explain": "on"})
    world.wait_revision(unexplained, 2)
    with world.client() as c:
        on = c.post(f"/v1/endpoints/{explained}/predict", json={"rows": records(rows(2))})
        off = c.post(
            f"/v1/endpoints/{explained}/predict?explain=false", json={"rows": records(rows(2))}
        )
        knn = c.post(f"/v1/endpoints/{unexplained}/predict", json={"rows": records(rows(2))})
    assert on.status_code == 200 and len(on.json()["explanations"]) == 2
    assert isinstance(on.json()["base_value"], float)
    assert off.status_code == 200 and "explanations" not in off.json()
    assert knn.status_code == 200 and knn.json()["explanations"] is None
    assert len(knn.json()["predictions"]) == 2
    assert "KNeighborsClassifier" in knn.json()["explanations_unavailable"]


def test_oip_infer_refuses_explain_with_501_pointing_to_v1(world: World) -> None:
    tensors = [
        {
            "name": k,
            "shape": [1],
            "datatype": "BYTES" if k == "grade" else "FP64",
            "data": ["A" if k == "grade" else 1.0],
        }
        for k in FEATURES
    ]
    with world.client() as c:
        query = c.post("/v2/models/credit/infer?explain=true", json={"inputs": tensors})
        parameter = c.post(
            "/v2/models/credit/infer",
            json={"inputs": tensors, "parameters": {"explain": True}},
        )
    for r in (query, parameter):
        assert r.status_code == 501 and r.json()["type"] == "NotSupported"
        assert "/v1/endpoints/credit/predict?explain=true" in r.json()["error"]


# -- auth ---------------------------------------------------------------------------------------


def _call(c: httpx.Client, route: Route, method: str) -> httpx.Response:
    path = route.path.replace("{name}", "credit")
    return c.request(method, path, json={"rows": []} if method == "POST" else None)


def test_every_route_but_the_open_ones_needs_a_token(world: World) -> None:
    app = create_app(world.settings)
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) >= 13
    checked = 0
    with world.server.client(None) as c:
        for route in routes:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                response = _call(c, route, method)
                if route.path in OPEN_PATHS:
                    assert response.status_code == 200, route.path
                    continue
                assert response.status_code == 401, (method, route.path, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
                bad = c.request(
                    method,
                    route.path.replace("{name}", "credit"),
                    headers={"authorization": "Bearer shp_not-a-real-token"},
                )
                assert bad.status_code == 401, (method, route.path)
    assert checked == len(routes) - len(OPEN_PATHS)


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        (None, "no API token"),
        ("Basic dXNlcjpwYXNz", "scheme 'Basic'"),
        ("Bearer", "no token after 'Bearer'"),
        ("Bearer shp_unknown", "not known"),
    ],
)
def test_401_says_what_was_wrong(world: World, header: str | None, pattern: str) -> None:
    headers = {"authorization": header} if header is not None else {}
    with world.server.client(None) as c:
        r = c.get("/v1/endpoints", headers=headers)
    assert r.status_code == 401
    assert pattern in r.json()["message"]


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("predictor", "POST", "/v1/endpoints/credit/predict", 200),
        ("deployer", "POST", "/v1/endpoints/credit/predict", 200),
        ("admin", "POST", "/v2/models/credit/infer", 200),
        ("viewer", "POST", "/v1/endpoints/credit/predict", 403),
        ("scientist", "POST", "/v1/endpoints/credit/predict", 403),
        ("viewer", "POST", "/v2/models/credit/infer", 403),
        ("viewer", "POST", "/v1/endpoints/credit/feedback", 403),
        ("predictor", "GET", "/metrics", 403),
        ("predictor", "GET", "/v1/endpoints", 403),
        ("predictor", "GET", "/v1/endpoints/credit", 403),
        ("viewer", "GET", "/metrics", 200),
        ("scientist", "GET", "/v1/endpoints", 200),
        ("viewer", "GET", "/ready", 200),
        ("predictor", "GET", "/ready", 200),
        ("predictor", "GET", "/v2/models/credit", 200),
        ("viewer", "GET", "/v2/models/credit/ready", 200),
    ],
)
def test_roles(world: World, role: str, method: str, path: str, status: int) -> None:
    body: dict[str, Any] | None = None
    if path.endswith("/predict"):
        body = {"rows": records(rows(1))}
    elif path.endswith("/infer"):
        row = records(rows(1))[0]
        body = {
            "inputs": [
                {
                    "name": k,
                    "shape": [1],
                    "datatype": "BYTES" if k == "grade" else "FP64",
                    "data": [row[k]],
                }
                for k in FEATURES
            ]
        }
    elif path.endswith("/feedback"):
        body = {"items": []}
    with world.client(role) as c:
        r = c.request(method, path, json=body)
    assert r.status_code == status, r.text
    if status == 403:
        error = r.json()
        assert role in (error["error"] if path.startswith("/v2") else error["message"])


def test_a_revoked_token_stops_working(world: World) -> None:
    token, secret = create_token(world.ws, "soon-revoked", Role.predictor)
    body = {"rows": records(rows(1))}
    with httpx.Client(
        base_url=world.server.url, headers={"authorization": f"Bearer {secret}"}, timeout=30
    ) as c:
        assert c.post("/v1/endpoints/credit/predict", json=body).status_code == 200
        revoke_token(world.ws, token.id)
        revoked_at = time.monotonic()
        last = wait_for(
            lambda: (
                (r := c.post("/v1/endpoints/credit/predict", json=body)).status_code == 401 and r
            ),
            timeout=10,
            what="the revoked token to be refused",
        )
    assert "revoked" in last.json()["message"]
    # The cache trusts a look-up for 1 s; polling adds little (bounded, not asserted tightly).
    print(f"revoked token refused after {time.monotonic() - revoked_at:.2f} s")


# -- limits -------------------------------------------------------------------------------------


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_100_mb_streamed_body_is_refused_fast_with_flat_memory(world: World) -> None:
    chunk = b"x" * (1 << 20)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += len(chunk)
            yield chunk

    before = _rss()
    started = time.monotonic()
    with world.client() as c:
        r = c.post("/v1/endpoints/credit/predict", content=body())
    elapsed = time.monotonic() - started
    grown = _rss() - before
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "TooLarge"
    assert "limit" in r.json()["message"]
    assert elapsed < 2.0, f"413 took {elapsed:.2f} s"
    assert grown < 40 * (1 << 20), f"resident memory grew by {grown / (1 << 20):.0f} MiB"


def _raw_request(url: str, head: bytes, body_parts: list[bytes]) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        for part in body_parts:
            s.sendall(part)
        return s.recv(65536)


def test_413_comes_before_the_body_is_read(world: World) -> None:
    auth = f"Authorization: Bearer {world.server.tokens['predictor']}\r\n".encode()
    declared = _raw_request(
        world.server.url,
        b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n",
        [],  # not one byte of the declared 100 MB is sent
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 48  # 3 MiB, then nothing more
    streamed = _raw_request(
        world.server.url,
        b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Transfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]


def test_rate_limit_per_token_is_429_with_retry_after(world: World) -> None:
    body = {"rows": records(rows(1))}
    with running(world.settings, world.server.tokens, rate=1.0, burst=3) as limited:
        with limited.client("predictor") as c:
            statuses = [c.post("/v1/endpoints/credit/predict", json=body) for _ in range(4)]
        with limited.client("admin") as other:  # another token has its own bucket
            assert other.post("/v1/endpoints/credit/predict", json=body).status_code == 200
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    refused = statuses[3]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "RateLimited"
    assert refused.json()["details"]["retry_after"] > 0


# -- feedback, reads, health, metrics ------------------------------------------------------------


def test_feedback_joins_labels_to_request_ids(world: World) -> None:
    with world.client() as c:
        first = c.post("/v1/endpoints/credit/predict", json={"rows": records(rows(2))}).json()
        second = c.post("/v1/endpoints/credit/predict", json={"rows": records(rows(1))}).json()
        r = c.post(
            "/v1/endpoints/credit/feedback",
            json={
                "items": [
                    {"request_id": first["request_id"], "label": "yes"},
                    {"request_id": first["request_id"], "row": 1, "label": "no"},
                    {"request_id": "never-seen", "label": "no"},
                ]
            },
        )
        pairs = c.post(
            "/v1/endpoints/credit/feedback",
            json={"request_ids": [second["request_id"]], "labels": ["no"]},
        )
        bad = c.post("/v1/endpoints/credit/feedback", json={"request_ids": ["x"], "labels": []})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 2, "unknown": 1, "unknown_ids": ["never-seen"]}
    assert pairs.json()["matched"] == 1
    assert bad.status_code == 422 and "one label per request id" in bad.json()["message"]


def test_endpoints_list_and_show(world: World) -> None:
    with world.client("viewer") as c:
        listed = c.get("/v1/endpoints").json()["endpoints"]
        one = c.get("/v1/endpoints/credit").json()
    names = [e["name"] for e in listed]
    assert {"credit", "boosted"} <= set(names)
    assert one["champion_ref"] == world.versions["a"].ref
    assert one["serving"]["ready"] is True
    assert one["serving"]["shares"] == {world.versions["a"].id: 100.0}


def test_health_ready_and_metrics(world: World) -> None:
    with world.server.client(None) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/v2/health/live").status_code == 200
    with world.client() as c:
        c.post("/v1/endpoints/credit/predict", json={"rows": records(rows(3))})
        c.post("/v1/endpoints/credit/predict", content=b"{")
    with world.client("viewer") as c:
        ready = c.get("/ready")
        v2ready = c.get("/v2/health/ready")
        metrics = c.get("/metrics")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["endpoints"]["credit"]["ready"] is True
    assert v2ready.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    ref = world.versions["a"].ref
    assert f'shipyard_requests_total{{code="200",endpoint="credit",model="{ref}"}}' in text
    assert 'code="422",endpoint="credit"' in text
    assert (
        f'shipyard_request_latency_seconds_bucket{{endpoint="credit",le="0.005",model="{ref}"}}'
        in text
    )
    assert f'shipyard_batch_rows_count{{model="{ref}"}}' in text
    assert 'shipyard_errors_total{endpoint="credit",error="InputError"' in text
    assert "shipyard_models_loaded " in text
    found = {
        name: float(value)
        for name, value in re.findall(r"^(shipyard_prediction_log_\w+) (\S+)$", text, re.M)
    }
    logged = found["shipyard_prediction_log_pending_rows"]
    logged += found["shipyard_prediction_log_written_rows_total"]
    assert logged >= 3  # the three rows answered above, written or on their way
    assert found["shipyard_prediction_log_dropped_rows_total"] == 0
    assert found["shipyard_prediction_log_failing"] == 0


# -- routing changes, shadows, flags, canary -----------------------------------------------------


def test_a_champion_switch_is_applied_live_without_errors(world: World) -> None:
    name = world.endpoint("switch")
    body = {"rows": records(rows(2))}
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def loop() -> None:
        with world.client() as c:
            while not stop.is_set() and len(seen) < 20_000:
                r = c.post(f"/v1/endpoints/{name}/predict", json=body)
                seen.append((r.status_code, r.json().get("model")))

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) > 30, what="traffic before the switch")
        set_champion(world.ws, name, world.versions["b"].ref)
        wait_for(
            lambda: any(m == world.versions["b"].ref for _, m in seen[-10:]),
            what="the new champion to answer",
        )
        count = len(seen)
        wait_for(lambda: len(seen) > count + 30, what="traffic after the switch")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert {s for s, _ in seen} == {200}, [x for x in seen if x[0] != 200][:5]
    models = [m for _, m in seen]
    first_b = models.index(world.versions["b"].ref)
    assert set(models[:first_b]) == {world.versions["a"].ref}
    assert models[-1] == world.versions["b"].ref


def test_an_endpoint_follows_an_alias_moved_in_the_registry_live(world: World) -> None:
    from shipyard.registry import set_alias

    set_alias(world.ws, world.versions["a"].ref, "live")
    create_endpoint(world.ws, "following", "credit-risk@live")
    world.wait_revision("following", 1)
    set_alias(world.ws, world.versions["b"].ref, "live")  # the registry only, as the SDK does
    world.wait_revision("following", 2)  # the server moved the endpoint and serves the move
    with world.client() as c:
        r = c.post("/v1/endpoints/following/predict", json={"rows": records(rows(2))})
    assert r.status_code == 200 and r.json()["model"] == world.versions["b"].ref
    with world.ws.db.read() as s:
        [event] = audit.events(s, action="endpoint.champion.follow", limit=None)
    assert (event.object_id, event.details["to"]) == ("following", world.versions["b"].ref)
    assert event.actor.startswith("serve:")


def test_a_revision_that_cannot_load_leaves_the_previous_one_serving(world: World) -> None:
    name = world.endpoint("sturdy")
    broken = add(world.ws, fit(0.3, seed=2))
    blob = Path(world.ws.artifacts.local_path(broken.artifact))
    blob.chmod(0o644)
    blob.write_bytes(b"not a model bundle")
    set_champion(world.ws, name, broken.ref)

    def problem() -> dict[str, Any] | None:
        with world.client("viewer") as c:
            state = c.get("/ready").json()["endpoints"][name]
        return state if "problem" in state else None

    state = wait_for(problem, what="the failed revision to be reported")
    assert state["ready"] is True and state["revision"] == 1
    assert "revision 2 is not served" in state["problem"]
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(rows(2))})
        ready = c.get("/ready")
    assert r.status_code == 200 and r.json()["model"] == world.versions["a"].ref
    assert ready.status_code == 200


def logged(ws: Workspace, endpoint: str, request_id: str) -> list[Any]:
    return [p for p in read_predictions(ws, endpoint) if p.request_id == request_id]


def test_shadows_are_logged_and_never_in_the_response(world: World) -> None:
    name = world.endpoint("shadowed")
    set_route(world.ws, name, shadows=[world.versions["b"].ref])
    world.wait_revision(name, 2)
    X = rows(3)
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(X)})
    body = r.json()
    assert body["model"] == world.versions["a"].ref
    assert set(body) == {
        "request_id",
        "endpoint",
        "model",
        "predictions",
        "probabilities",
        "classes",
    }
    found = wait_for(
        lambda: (got := logged(world.ws, name, body["request_id"])) and len(got) == 6 and got,
        what="primary and shadow rows in the prediction log",
    )
    shadow = sorted((p for p in found if p.shadow), key=lambda p: p.row)
    primary = sorted((p for p in found if not p.shadow), key=lambda p: p.row)
    assert {p.version_id for p in shadow} == {world.versions["b"].id}
    assert {p.version_id for p in primary} == {world.versions["a"].id}
    expected = world.pipelines["b"].predict_proba(X)[:, 1]
    got = [p.outputs["probabilities"]["yes"] for p in shadow]
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert primary[1].inputs is not None and primary[1].inputs["grade"] == X["grade"].iloc[1]


def test_flag_log_inputs_off_keeps_inputs_out_of_the_log(world: World) -> None:
    name = world.endpoint("private")
    set_flags(world.ws, name, {"log_inputs": "off"})
    world.wait_revision(name, 2)
    with world.client() as c:
        rid = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(rows(1))}).json()[
            "request_id"
        ]
    found = wait_for(lambda: logged(world.ws, name, rid), what="the logged prediction")
    assert found[0].inputs is None
    assert found[0].outputs["label"] in ("yes", "no")


def test_a_model_failure_is_a_500_and_an_error_row_in_the_log(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = world.endpoint("failing")

    async def broken(self: Any, batch: Any, *, alone: bool = False) -> Any:
        raise RuntimeError("the model's native library crashed")

    monkeypatch.setattr(MicroBatcher, "predict", broken)
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(rows(1))})
    monkeypatch.undo()
    assert r.status_code == 500
    found = wait_for(
        lambda: [p for p in read_predictions(world.ws, name) if "error" in p.outputs],
        what="the logged failure",
    )
    assert found[0].outputs["error"] == 500
    assert found[0].version_id == world.versions["a"].id and found[0].inputs is None


def test_flags_pin_a_version_and_enforce_ranges_without_a_restart(world: World) -> None:
    name = world.endpoint("flagged")
    row = {**records(rows(1))[0], "grade": "Z"}  # a category the model never saw
    with world.client() as c:
        r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": [row]})
        assert r.status_code == 200, r.text  # served by default, with a warning
        assert r.json()["model"] == world.versions["a"].ref
        assert r.json()["warnings"][0]["column"] == "grade"
        assert r.json()["warnings"][0]["rule"] == "category"
        set_flags(world.ws, name, {"pin": world.versions["b"].ref, "strict_ranges": "on"})
        world.wait_revision(name, 2)
        refused = c.post(f"/v1/endpoints/{name}/predict", json={"rows": [row]})
        r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(rows(1))})
    assert refused.status_code == 422, refused.text
    assert refused.json()["details"]["errors"][0]["rule"] == "category"
    assert r.status_code == 200 and r.json()["model"] == world.versions["b"].ref


def test_an_a_b_split_is_sticky_by_the_request_key_header(world: World) -> None:
    name = world.endpoint("split")
    set_route(world.ws, name, challengers=[(world.versions["b"].ref, 50)])
    world.wait_revision(name, 2)
    body = {"rows": records(rows(1))}
    with world.client() as c:

        def model(key: str | None) -> str:
            headers = {} if key is None else {"X-Shipyard-Key": key}
            r = c.post(f"/v1/endpoints/{name}/predict", json=body, headers=headers)
            assert r.status_code == 200, r.text
            return str(r.json()["model"])

        by_key = {key: model(key) for key in (f"customer-{i}" for i in range(16))}
        again = {key: model(key) for key in by_key}
        keyless = {model(None) for _ in range(24)}
    assert again == by_key  # the same key, the same version
    both = {world.versions["a"].ref, world.versions["b"].ref}
    assert set(by_key.values()) == both and keyless == both  # and the split is a split


def test_a_failing_canary_is_rolled_back_automatically_and_audited(world: World) -> None:
    name = world.endpoint("canaried")
    set_route(
        world.ws,
        name,
        canary=world.versions["b"].ref,
        steps=[100],
        guard={"p99_ms": 0.0001, "min_requests": 5},  # no model answers that fast
    )
    world.wait_revision(name, 2)
    body = {"rows": records(rows(1))}
    with world.client() as c:
        answered = [c.post(f"/v1/endpoints/{name}/predict", json=body).json() for _ in range(8)]
        assert {a["model"] for a in answered} == {world.versions["b"].ref}
        endpoint = wait_for(
            lambda: (
                (e := get_endpoint(world.ws, name)).canary is not None
                and e.canary.state == "rolled_back"
                and e
            ),
            what="the automatic rollback",
        )
        world.wait_revision(name, endpoint.revision)
        after = c.post(f"/v1/endpoints/{name}/predict", json=body).json()
    assert endpoint.canary is not None and "p99" in (endpoint.canary.reason or "")
    assert after["model"] == world.versions["a"].ref
    with world.ws.db.read() as s:
        events = [e for e in audit.events(s) if e.action == "endpoint.canary.rollback"]
    assert any(e.object_id == name and "automatic" in e.details["reason"] for e in events)


# -- Open Inference Protocol v2 ------------------------------------------------------------------


def test_oip_metadata_and_ready(world: World) -> None:
    with world.client() as c:
        meta = c.get("/v2/models/credit").json()
        ready = c.get("/v2/models/credit/ready")
        server = c.get("/v2").json()
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types == {
        "income": "FP64",
        "debt": "FP64",
        "age": "FP64",
        "score": "FP64",
        "grade": "BYTES",
    }
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert meta["outputs"][1]["shape"] == [-1, 2]
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert "binary_tensor_data" in server["extensions"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_oip_infer_with_the_triton_client(world: World, binary: bool) -> None:
    import tritonclient.http as triton

    X = rows(6, seed=11) if binary else frame(6, 11)[0]  # NaN is not JSON; binary carries it
    client = triton.InferenceServerClient(url=world.server.url.removeprefix("http://"))
    headers = {"Authorization": f"Bearer {world.server.tokens['predictor']}"}
    try:
        assert client.is_server_live()
        assert client.is_model_ready("credit", headers=headers)
        inputs = []
        for name in FEATURES:
            if name == "grade":
                data = np.array(X[name].tolist(), dtype=object)
                tensor = triton.InferInput(name, [len(X)], "BYTES")
            else:
                data = X[name].to_numpy(dtype=np.float64)
                tensor = triton.InferInput(name, [len(X)], "FP64")
            tensor.set_data_from_numpy(data, binary_data=binary)
            inputs.append(tensor)
        outputs = (
            None
            if binary
            else [
                triton.InferRequestedOutput(n, binary_data=False)
                for n in ("label", "probabilities")
            ]
        )
        result = client.infer("credit", inputs, outputs=outputs, headers=headers, request_id="r-1")
        probabilities = result.as_numpy("probabilities")
        labels = result.as_numpy("label")
        response = result.get_response()
    finally:
        client.close()
    pipeline = world.pipelines["a"]
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), rtol=1e-9)
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == pipeline.predict(
        X
    ).tolist()
    assert response["model_version"] == world.versions["a"].ref
    assert response["id"] == "r-1"
    assert response["parameters"]["request_id"]


def test_oip_errors_use_the_protocol_shape(world: World) -> None:
    with world.client() as c:
        r = c.post(
            "/v2/models/credit/infer",
            json={"inputs": [{"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        )
        wrong_output = c.post(
            "/v2/models/credit/infer",
            json={
                "inputs": [
                    {
                        "name": k,
                        "shape": [1],
                        "datatype": "BYTES" if k == "grade" else "FP64",
                        "data": ["A" if k == "grade" else 1.0],
                    }
                    for k in FEATURES
                ],
                "outputs": [{"name": "shap"}],
            },
        )
    assert r.status_code == 422
    assert isinstance(r.json()["error"], str) and r.json()["type"] == "InputError"
    assert wrong_output.status_code == 422 and "'shap'" in wrong_output.json()["error"]


# -- shutdown -----------------------------------------------------------------------------------


def test_graceful_shutdown_writes_the_prediction_log(world: World, tmp_path: Path) -> None:
    name = world.endpoint("drained")
    server = start(world.settings, world.server.tokens)
    ids: list[str] = []
    try:
        with server.client("predictor") as c:
            for _ in range(25):
                r = c.post(f"/v1/endpoints/{name}/predict", json={"rows": records(rows(2))})
                ids.append(r.json()["request_id"])
    finally:
        server.stop()  # at once: the prediction log's 1 s flush has not necessarily run
    stored = {p.request_id for p in read_predictions(world.ws, name)}
    assert set(ids) <= stored
