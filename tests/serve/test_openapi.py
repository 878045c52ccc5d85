"""The OpenAPI description: valid 3.1, complete for the app's routes, true to the signatures.

One real server (module scope) over a real workspace serves the `credit` endpoint; the document
is fetched over HTTP as a client would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from app_harness import Running, records, running, tokens_for, wait_for, workspace_settings
from openapi_spec_validator import validate
from serve_cases import FEATURES, NUMERIC, add, fit, frame
from starlette.responses import Response
from starlette.routing import Route

from shipyard.core.records import Signature, SignatureColumn
from shipyard.core.settings import Settings
from shipyard.security import init_workspace
from shipyard.serve import create_app
from shipyard.serve.app import OPEN_PATHS
from shipyard.serve.endpoints import create_endpoint, set_flags
from shipyard.serve.openapi import (
    OPERATIONS,
    Described,
    column_schema,
    openapi_document,
    undocumented,
)
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(180)


@dataclass
class World:
    ws: Workspace
    settings: Settings
    server: Running

    def document(self) -> dict[str, Any]:
        with self.server.client("viewer") as c:
            r = c.get("/openapi.json")
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = workspace_settings(tmp_path_factory.mktemp("openapi") / "ws")
    ws, _token, _secret = init_workspace(settings)
    version = add(ws, fit(1.0))
    create_endpoint(ws, "credit", version.ref)
    set_flags(ws, "credit", {"strict_ranges": "on"})  # ranges and categories enforced
    with running(settings, tokens_for(ws)) as server:
        yield World(ws, settings, server)
    ws.close()


def _validator(doc: dict[str, Any], component: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, its $refs resolved within the document."""
    schema = {**doc, "$ref": f"#/components/schemas/{component}"}
    return jsonschema.Draft202012Validator(schema)


# -- the document -------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(world: World) -> None:
    doc = world.document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises OpenAPIValidationError with the path of the first problem


def test_every_route_of_the_app_is_described_with_every_method(world: World) -> None:
    app = create_app(world.settings)
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert undocumented(app.routes) == []
    doc = world.document()
    pairs = 0
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = doc["paths"][route.path][method.lower()]
            assert op["operationId"] == OPERATIONS[(method, route.path)].operation_id
            assert "x-shipyard-undocumented" not in op
            assert "200" in op["responses"]
            pairs += 1
    assert pairs == len(OPERATIONS), "OPERATIONS describes a route the app does not have"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_a_route_added_without_a_description_is_caught() -> None:
    async def extra(request: Any) -> Response:
        return Response()

    routes = [*create_app_routes(), Route("/extra", extra, methods=["GET", "PUT"])]
    assert undocumented(routes) == [("GET", "/extra"), ("PUT", "/extra")]
    doc = openapi_document(routes, [])
    assert doc["paths"]["/extra"]["put"]["x-shipyard-undocumented"] is True
    validate(doc)


def create_app_routes() -> list[Route]:
    from shipyard.serve.app import routes

    return routes()


def test_security_open_routes_and_roles_come_from_the_routes(world: World) -> None:
    doc = world.document()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    open_paths = {
        path
        for path, item in doc["paths"].items()
        for op in item.values()
        if op.get("security") == []
    }
    assert open_paths == OPEN_PATHS
    for path in ("/openapi.json", "/docs", "/v1/endpoints", "/metrics"):
        op = doc["paths"][path]["get"]
        assert op["x-shipyard-roles"][0] == "viewer", path
        assert {"401", "403", "429"} <= set(op["responses"]), path
    predict = doc["paths"]["/v1/endpoints/{name}/predict"]["post"]
    assert "viewer" not in predict["x-shipyard-roles"]
    assert "predictor" in predict["x-shipyard-roles"]
    assert {"401", "403", "404", "413", "422", "429", "501", "503"} <= set(predict["responses"])
    error = predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/Error")
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "message", "details"]
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OipError"
    )


# -- per-endpoint schemas -----------------------------------------------------------------------


def test_the_predict_schema_of_a_served_endpoint_lists_its_signature(world: World) -> None:
    doc = world.document()
    op = doc["paths"]["/v1/endpoints/credit/predict"]["post"]
    forms = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [f["$ref"].rsplit("/", 1)[1] for f in forms] == [
        "endpoint.credit.RowsRequest",
        "endpoint.credit.ColumnsRequest",
    ]
    row = doc["components"]["schemas"]["endpoint.credit.Row"]
    assert list(row["properties"]) == FEATURES
    assert row["required"] == FEATURES
    assert row["additionalProperties"] is False
    for name in NUMERIC:
        assert row["properties"][name]["type"] == ["number", "null"]
    assert row["properties"]["grade"]["type"] == ["string", "null"]
    assert row["properties"]["grade"]["enum"] == ["A", "B", "C", "D", None]
    response = doc["components"]["schemas"]["endpoint.credit.PredictResponse"]
    assert response["allOf"][1]["properties"]["predictions"]["items"]["enum"] == ["no", "yes"]


def test_bodies_the_schema_accepts_the_server_accepts_and_vice_versa(world: World) -> None:
    doc = world.document()
    rows = _validator(doc, "endpoint.credit.RowsRequest")
    columns = _validator(doc, "endpoint.credit.ColumnsRequest")
    X, _ = frame(3, seed=9)
    good = {"rows": records(X)}
    as_columns = {"columns": {k: [r[k] for r in good["rows"]] for k in FEATURES}}
    unknown_grade = {"rows": [{**good["rows"][0], "grade": "Z"}]}
    missing_column = {"rows": [{k: v for k, v in good["rows"][0].items() if k != "debt"}]}
    extra_column = {"rows": [{**good["rows"][0], "colour": "red"}]}
    text_number = {"rows": [{**good["rows"][0], "income": "lots"}]}
    assert rows.is_valid(good)
    assert columns.is_valid(as_columns)
    with world.server.client("predictor") as c:
        for body in (good, as_columns):
            r = c.post("/v1/endpoints/credit/predict", json=body)
            assert r.status_code == 200, r.text
        for body in (unknown_grade, missing_column, extra_column, text_number):
            assert not rows.is_valid(body), body
            r = c.post("/v1/endpoints/credit/predict", json=body)
            assert r.status_code == 422, (body, r.text)


def test_column_schemas_carry_types_ranges_categories_and_nullability() -> None:
    def schema(**kwargs: Any) -> dict[str, Any]:
        return column_schema(SignatureColumn(**kwargs))

    assert schema(name="n", dtype="int64", nullable=False, min=0, max=10) == {
        "type": "integer",
        "minimum": 0,
        "maximum": 10,
        "x-shipyard-dtype": "int64",
    }
    assert schema(name="x", dtype="float64", min=-1.5)["type"] == ["number", "null"]
    assert schema(name="x", dtype="float64", min=-1.5)["minimum"] == -1.5
    flag = schema(name="b", dtype="bool", nullable=False)
    assert flag["type"] == ["boolean", "string"]
    assert True in flag["enum"]
    assert "true" in flag["enum"]
    assert schema(name="t", dtype="timestamp", nullable=False)["format"] == "date-time"
    assert schema(name="d", dtype="date", nullable=False)["format"] == "date"
    loose = column_schema(
        SignatureColumn(name="g", dtype="string", nullable=False, values=["A"]), strict=False
    )
    assert "enum" not in loose
    assert "'A'" in loose["description"]


def test_a_document_built_from_endpoints_directly_validates() -> None:
    signature = Signature(
        inputs=[
            SignatureColumn(name="count", dtype="int64", nullable=False, min=0),
            SignatureColumn(name="flag", dtype="bool"),
            SignatureColumn(name="when", dtype="timestamp"),
        ],
        output="number",
    )
    served = Described("odd name/1", 3, "m@3", "regression", signature, strict_ranges=False)
    doc = openapi_document(create_app_routes(), [served], max_rows=5)
    validate(doc)
    rows = _validator(doc, "endpoint.odd_name_1.RowsRequest")
    assert rows.is_valid({"rows": [{"count": 1, "flag": "true", "when": None}]})
    assert not rows.is_valid({"rows": [{"count": -1.5, "flag": True, "when": None}]})
    assert not rows.is_valid({"rows": [{"count": 1, "flag": True, "when": None}] * 6})
    assert "/v1/endpoints/odd name/1/predict" in doc["paths"]


# -- serving it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_the_description_needs_a_viewer_token(world: World, path: str) -> None:
    with world.server.client(None) as c:
        r = c.get(path)
    assert r.status_code == 401
    assert "no API token" in r.json()["message"]
    with world.server.client("viewer") as c:
        assert c.get(path).status_code == 200


def test_the_docs_page_lists_operations_and_columns_without_external_assets(
    world: World,
) -> None:
    with world.server.client("viewer") as c:
        r = c.get("/docs")
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    for needle in ("/v1/endpoints/{name}/predict", "/v2/models/{name}/infer", "grade", "income"):
        assert needle in page
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page


def test_the_document_follows_the_endpoints_being_served(world: World) -> None:
    first = world.document()
    assert "/v1/endpoints/narrow/predict" not in first["paths"]
    assert world.document() == first  # cached: nothing changed
    version = add(world.ws, fit(1.0, features=NUMERIC), name="narrow-risk")
    create_endpoint(world.ws, "narrow", version.ref)

    def described() -> dict[str, Any] | None:
        doc = world.document()
        return doc if "/v1/endpoints/narrow/predict" in doc["paths"] else None

    doc = wait_for(described, what="the narrow endpoint in the document")
    assert list(doc["components"]["schemas"]["endpoint.narrow.Row"]["properties"]) == NUMERIC
    set_flags(world.ws, "narrow", {"strict_ranges": "on"})

    def revised() -> dict[str, Any] | None:
        doc = world.document()
        op = doc["paths"]["/v1/endpoints/narrow/predict"]["post"]
        return doc if op["x-shipyard-revision"] == 2 else None

    wait_for(revised, what="revision 2 of narrow in the document")
