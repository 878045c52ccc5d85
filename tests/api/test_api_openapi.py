"""The generated document: valid OpenAPI 3.1, every API operation in it, and every operation's
real answers (success and error) valid against it, over HTTP against a real workspace."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest
from api_world import World
from openapi_spec_validator import validate

from shipyard.api.access import READ
from shipyard.api.openapi import document
from shipyard.api.operation import STREAM, Call, Operation, route
from shipyard.api.routes import OPERATIONS
from shipyard.api.schemas.common import WireResult
from shipyard.monitor import raise_alert
from shipyard.serve.app import routes as serving_routes
from shipyard.train import create_run

pytestmark = pytest.mark.timeout(120)


def _document(world: World) -> dict[str, Any]:
    with world.client("viewer") as c:
        r = c.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_the_merged_document_is_valid_openapi_3_1(world: World) -> None:
    doc = _document(world)
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    # the serving part is still there, with the served endpoint's own predict schema
    assert "/v1/endpoints/{name}/predict" in doc["paths"]
    assert "/v1/endpoints/scoring/predict" in doc["paths"]


def test_every_operation_is_described_with_its_roles(world: World) -> None:
    doc = _document(world)
    for op in OPERATIONS:
        described = doc["paths"][op.path][op.method.lower()]
        assert described["x-shipyard-roles"] == op.access.roles
        assert str(op.status) in described["responses"]
        assert {"401", "403", "422"} <= set(described["responses"])
        if isinstance(op.body, type):
            ref = described["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/" + op.body.__name__)
        elif op.body == STREAM:  # the file's bytes as the raw body
            assert "application/octet-stream" in described["requestBody"]["content"]
    assert not [p for p in doc["paths"] if p.startswith("/api/") and p not in
                {op.path for op in OPERATIONS}]  # fmt: skip


def test_docs_open_without_a_token_and_leave_out_the_served_endpoints(world: World) -> None:
    with world.client(None) as c:
        page = c.get("/docs")
        document = c.get("/openapi.json")
    assert page.status_code == 200
    assert "/api/v1/runs" in page.text
    assert "/v1/endpoints/{name}/predict" in page.text
    assert "scoring" not in page.text  # the served endpoint's name and columns need a token
    assert document.status_code == 401


# -- real answers against the document ------------------------------------------------------------


def _template(path: str) -> str:
    """The operation path a concrete /api/v1 path was made from."""
    for op in OPERATIONS:
        pattern = "^" + re.sub(r"{\w+}", "[^/]+", op.path) + "$"
        if re.match(pattern, path):
            return op.path
    raise AssertionError(f"no operation for {path}")


def _check(doc: dict[str, Any], method: str, r: httpx.Response) -> None:
    path = _template(r.request.url.path)
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(r.status_code) in responses, (method, path, r.status_code, r.text)
    content = responses[str(r.status_code)]["content"]
    media_type = r.headers["content-type"].split(";")[0]
    if media_type != "application/json":  # a file, streamed
        assert media_type in content, (method, path, media_type)
        return
    schema = content["application/json"]["schema"]
    jsonschema.Draft202012Validator({**doc, **schema}).validate(r.json())


def test_every_operation_answers_as_the_document_says(world: World) -> None:
    doc = _document(world)
    good, spare, run = world.versions["good"], world.versions["spare"], world.runs[0]
    live = create_run(world.ws, experiment="doc", heartbeat=False)
    alert = raise_alert(world.ws, "scoring", "slo", "scoring: p99 too high", key="doc:slo")
    assert alert is not None
    upload = "/api/v1/datasets/doc-up/versions?format=csv"
    csv = b"loan_id,income,debt,default\n1,100.0,10.0,no\n2,200.0,30.0,yes\n"
    calls: list[tuple[str, str, str, dict[str, Any] | bytes | None, int]] = [
        # (role, method, path, body, expected status)
        ("admin", "GET", "/api/v1/tokens?include_revoked=true&limit=2", None, 200),
        ("admin", "POST", "/api/v1/tokens", {"name": "ci", "role": "deployer"}, 201),
        ("admin", "DELETE", f"/api/v1/tokens/{world.token_ids['revoked']}", None, 200),
        ("admin", "DELETE", "/api/v1/tokens/tok_nope", None, 404),
        ("viewer", "GET", "/api/v1/audit?limit=3&action=token", None, 200),
        ("viewer", "GET", "/api/v1/audit/verify", None, 200),
        ("viewer", "GET", "/api/v1/datasets?limit=1", None, 200),
        ("viewer", "GET", "/api/v1/datasets/loans", None, 200),
        ("viewer", "GET", "/api/v1/datasets/nope", None, 404),
        ("viewer", "GET", "/api/v1/datasets/loans/versions", None, 200),
        ("viewer", "GET", "/api/v1/datasets/loans/versions/1", None, 200),
        ("viewer", "GET", "/api/v1/datasets/loans/versions/latest/profile", None, 200),
        ("viewer", "GET", "/api/v1/datasets/loans/diff?before=1&after=2", None, 200),
        ("viewer", "GET", "/api/v1/runs?limit=2&filter=metrics.auc > 0.6", None, 200),
        ("viewer", "GET", f"/api/v1/runs/{run}", None, 200),
        ("viewer", "GET", f"/api/v1/runs/{run}/metrics/loss", None, 200),
        ("viewer", "GET", "/api/v1/runs?filter=metrics.auc >", None, 422),
        ("viewer", "GET", "/api/v1/models?name=credit&limit=2", None, 200),
        ("viewer", "GET", f"/api/v1/models/credit/versions/{good.version}", None, 200),
        ("scientist", "PUT", "/api/v1/models/credit/aliases/champion", {"version": 1}, 200),
        ("scientist", "DELETE", "/api/v1/models/credit/aliases/champion", None, 200),
        (
            "scientist",
            "PUT",
            f"/api/v1/models/credit/versions/{spare.version}/status",
            {"status": "approved"},
            200,
        ),
        ("viewer", "GET", "/api/v1/endpoints", None, 200),
        ("viewer", "GET", "/api/v1/endpoints/scoring", None, 200),
        ("deployer", "POST", "/api/v1/endpoints", {"name": "doc-e", "model": good.ref}, 201),
        ("deployer", "PUT", "/api/v1/endpoints/doc-e/route",
         {"revision": 1, "canary": {"model": spare.ref, "steps": [10, 100]}}, 200),
        ("deployer", "PUT", "/api/v1/endpoints/doc-e/champion",
         {"revision": 1, "model": spare.ref}, 409),
        ("deployer", "PATCH", "/api/v1/endpoints/doc-e/flags",
         {"revision": 2, "flags": {"explain": "on"}}, 200),
        ("deployer", "POST", "/api/v1/endpoints/doc-e/canary",
         {"revision": 3, "action": "stop", "reason": "enough"}, 200),
        ("deployer", "PUT", "/api/v1/endpoints/doc-e/champion",
         {"revision": 4, "model": spare.ref}, 200),
        ("scientist", "POST", "/api/v1/runs", {"experiment": "doc", "params": {"a": 1}}, 201),
        ("scientist", "POST", f"/api/v1/runs/{live}/log",
         {"metrics": [{"key": "l", "value": "NaN"}, {"key": "l", "value": 1.5, "step": 3}]}, 200),
        ("viewer", "GET", f"/api/v1/runs/{live}/metrics/l", None, 200),
        ("scientist", "POST", f"/api/v1/runs/{live}/log", {"metrics": [{"key": "l"}]}, 422),
        ("scientist", "POST", f"/api/v1/runs/{live}/end", {"status": "killed"}, 200),
        ("scientist", "POST", f"/api/v1/runs/{run}/log", {}, 409),
        ("scientist", "POST", f"/api/v1/runs/{run}/end", {}, 409),
        ("scientist", "POST", "/api/v1/runs/run_nope/log", {}, 404),
        ("viewer", "GET", "/api/v1/endpoints/scoring/report?window=1h", None, 404),  # no profile
        ("viewer", "GET", "/api/v1/endpoints/scoring/report?window=1x", None, 422),
        ("viewer", "GET", "/api/v1/alerts?endpoint=scoring&limit=1", None, 200),
        ("deployer", "POST", f"/api/v1/alerts/{alert.id}/ack", None, 200),
        ("deployer", "POST", "/api/v1/alerts/alr_nope/ack", None, 404),
        ("deployer", "POST", "/api/v1/loop/run-once", {}, 501),  # this server has no spec
        ("viewer", "GET", "/api/v1/loop/scoring", None, 200),
        ("deployer", "POST", "/api/v1/loop/scoring/pause", {"reason": "doc"}, 200),
        ("deployer", "POST", "/api/v1/loop/scoring/resume", None, 200),
        ("deployer", "POST", "/api/v1/loop/scoring/stop", {}, 200),
        ("deployer", "POST", "/api/v1/loop/scoring/resume", None, 200),
        ("viewer", "GET", "/api/v1/nothing-here", None, 404),
        ("viewer", "POST", "/api/v1/endpoints", {"name": "x"}, 403),
        ("scientist", "POST", f"{upload}&target=default", csv, 201),
        ("scientist", "POST", f"{upload}&target=default", csv, 200),
        ("scientist", "POST", upload, b"x,y\n1,2\n", 422),
        ("viewer", "POST", "/api/v1/datasets/validate?against=loans&filename=new.csv", csv, 200),
        ("viewer", "GET", "/api/v1/datasets/loans@1/download", None, 200),
        ("viewer", "GET", f"/api/v1/models/{good.ref}/bundle", None, 200),
    ]  # fmt: skip
    covered: set[tuple[str, str]] = set()
    for role, method, path, body, status in calls:
        with world.client(role) as c:
            if isinstance(body, bytes):  # an upload: the file's bytes
                r = c.request(method, path, content=body)
            else:
                r = c.request(method, path, json=body)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        if path == "/api/v1/nothing-here":
            assert r.json()["request_id"] == r.headers["x-request-id"]
            continue
        _check(doc, method, r)
        covered.add((method, _template(r.request.url.path)))
    assert covered == {(op.method, op.path) for op in OPERATIONS}


def test_a_schema_named_like_another_one_is_refused() -> None:
    class EndpointView(WireResult):  # the serving document has its own EndpointView
        x: int

    def action(call: Call) -> EndpointView:
        return EndpointView(x=1)

    op = Operation("GET", "/api/v1/x", action, READ, "x", result=EndpointView, tag="x")
    with pytest.raises(RuntimeError, match="two different schemas are both named 'EndpointView'"):
        document([*serving_routes(), route(op)], None)
