"""Serving rows as a new user sends them, over real HTTP: rows taken from the training data
(with its id and sensitive columns), values beyond the training range, and the errors a
client can provoke, which must not show the server's paths or the other endpoints' names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_harness import Running, records, running, tokens_for, wait_for, workspace_settings
from serve_cases import FEATURES, NUMERIC, add, fit, frame
from sklearn.pipeline import Pipeline

from shipyard.core.records import ColumnSchema, DatasetSchema, ModelVersion, Signature
from shipyard.core.settings import Settings
from shipyard.registry import register, signature_from_schema
from shipyard.security import init_workspace
from shipyard.serve.endpoints import create_endpoint, set_flags
from shipyard.serve.predlog import labelled, read_predictions
from shipyard.serve.responses import without_paths
from shipyard.store.workspace import Workspace

pytestmark = pytest.mark.timeout(180)

INCOME_MAX = 150_000.0  # the training data's largest income, as its profile would say


def loan_signature(features: list[str] = FEATURES) -> Signature:
    """The signature `shipyard train` derives from a loans data set with an id, a sensitive
    column and a target: the id and the sensitive column are carried, not inputs."""
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="loan_id", dtype="string", role="id", nullable=False, unique=True),
            ColumnSchema(name="income", dtype="float64", min=0.0, max=INCOME_MAX),
            *(ColumnSchema(name=c, dtype="float64") for c in NUMERIC if c != "income"),
            ColumnSchema(name="grade", dtype="string", values=["A", "B", "C", "D"]),
            ColumnSchema(name="sex", dtype="string", role="sensitive"),
            ColumnSchema(name="default", dtype="string", role="target"),
        ]
    )
    return signature_from_schema(schema, features, task="classification", classes=["no", "yes"])


@dataclass
class World:
    ws: Workspace
    settings: Settings
    server: Running
    pipeline: Pipeline
    version: ModelVersion

    def post(self, path: str, body: dict[str, Any], role: str = "predictor") -> Any:
        with self.server.client(role) as c:
            return c.post(path, json=body)

    def wait_revision(self, name: str, revision: int) -> None:
        with self.server.client("viewer") as c:

            def served() -> bool:
                r = c.get(f"/v1/endpoints/{name}")
                return r.status_code == 200 and r.json()["serving"].get("revision") == revision

            wait_for(served, what=f"endpoint {name} revision {revision}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = workspace_settings(tmp_path_factory.mktemp("rows") / "ws")
    ws, _token, _secret = init_workspace(settings)
    pipeline = fit(1.0)
    version = register(ws, "loans", pipeline, task="classification", signature=loan_signature())
    create_endpoint(ws, "loans", version.ref)
    create_endpoint(ws, "strict", version.ref)
    set_flags(ws, "strict", {"strict_ranges": "on"})
    with running(settings, tokens_for(ws)) as server:
        yield World(ws, settings, server, pipeline, version)
    ws.close()


def training_rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Rows as they sit in the training data: the id, the features, the sensitive column."""
    X, _ = frame(n, seed)
    X.insert(0, "loan_id", [f"L-{seed}-{i}" for i in range(n)])
    X["sex"] = ["f", "m"] * (n // 2) + ["f"] * (n % 2)
    return records(X)


# -- the id and sensitive columns in requests (issue 17, item 12) -------------------------------


def test_rows_from_the_training_data_carry_their_id_which_is_logged_not_predicted_on(
    world: World,
) -> None:
    rows = training_rows(3)
    r = world.post("/v1/endpoints/loans/predict", {"rows": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ids"] == [row["loan_id"] for row in rows]
    X = pd.DataFrame(rows)[FEATURES]  # what the model takes: the id and sex never reach it
    np.testing.assert_allclose(body["probabilities"], world.pipeline.predict_proba(X), rtol=1e-9)

    columns = {k: [row[k] for row in rows] for k in [*FEATURES, "loan_id"]}
    by_columns = world.post("/v1/endpoints/loans/predict", {"columns": columns})
    assert by_columns.status_code == 200, by_columns.text
    assert by_columns.json()["predictions"] == body["predictions"]

    def logged() -> list[Any]:
        found = read_predictions(world.ws, "loans")
        return [p for p in found if p.request_id == body["request_id"]]

    found = wait_for(logged, what="the logged rows")
    assert [p.inputs["loan_id"] for p in found] == [row["loan_id"] for row in rows]
    assert [p.inputs["sex"] for p in found] == ["f", "m", "f"]
    assert found[0].inputs["income"] == rows[0]["income"]


def test_feedback_joins_by_the_data_sets_id_as_well_as_by_request_id(world: World) -> None:
    rows = training_rows(2, seed=12)
    first = world.post("/v1/endpoints/loans/predict", {"rows": rows}).json()
    again = world.post("/v1/endpoints/loans/predict", {"rows": rows[1:]}).json()  # re-scored
    items = [
        {"id": rows[0]["loan_id"], "label": "yes"},
        {"id": rows[1]["loan_id"], "label": "no"},
        {"id": "L-never-seen", "label": "no"},
    ]
    r = world.post("/v1/endpoints/loans/feedback", {"items": items})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 2, "unknown": 1, "unknown_ids": ["L-never-seen"]}
    by_list = world.post(
        "/v1/endpoints/loans/feedback", {"ids": [rows[0]["loan_id"]], "labels": ["no"]}
    )
    assert by_list.json()["matched"] == 1

    joined = {(p.request_id, p.row): p.label for p in labelled(world.ws, "loans")}
    assert joined[(first["request_id"], 0)] == "no"  # the later label for the same row wins
    assert joined[(again["request_id"], 0)] == "no"  # the id's latest prediction
    assert (first["request_id"], 1) not in joined


def test_a_feedback_item_by_id_with_a_row_is_refused_naming_the_fix(world: World) -> None:
    r = world.post("/v1/endpoints/loans/feedback", {"items": [{"id": "L-1", "row": 1, "label": 1}]})
    assert r.status_code == 422
    assert "'row' goes with 'request_id'" in r.json()["message"]


def test_feedback_by_id_where_the_data_declares_no_id_says_what_to_send(world: World) -> None:
    plain = add(world.ws, fit(1.0), name="plain-risk")  # trained on data without an id
    create_endpoint(world.ws, "plain", plain.ref)
    world.wait_revision("plain", 1)
    r = world.post("/v1/endpoints/plain/feedback", {"ids": ["L-1"], "labels": ["no"]})
    assert r.status_code == 422
    assert r.json()["message"] == (
        "feedback by 'id' joins on the data set's id column, but plain-risk@1, the champion of "
        "endpoint 'plain', was trained on data that declares none (data.id in shipyard.yaml); "
        "send the request_id each prediction returned instead."
    )


def test_other_unknown_columns_are_refused_unless_the_endpoint_ignores_them(
    world: World,
) -> None:
    row = {**training_rows(1, seed=13)[0], "zip": "02139"}
    r = world.post("/v1/endpoints/loans/predict", {"rows": [row]})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(
        "row 0, column 'zip' is not an input of this model; it takes income, debt, age, score, "
        "grade and may carry loan_id, sex (logged, not given to the model). Remove the column, "
        "or set the endpoint's flag extra_columns=ignore"
    )
    create_endpoint(world.ws, "lenient", world.version.ref)
    set_flags(world.ws, "lenient", {"extra_columns": "ignore"})
    world.wait_revision("lenient", 2)
    r = world.post("/v1/endpoints/lenient/predict", {"rows": [row]})
    assert r.status_code == 200, r.text
    assert r.json()["ids"] == [row["loan_id"]]


def test_a_row_that_still_carries_the_target_is_told_where_labels_go(world: World) -> None:
    row = {**training_rows(1, seed=17)[0], "default": "no"}
    r = world.post("/v1/endpoints/loans/predict", {"rows": [row]})
    assert r.status_code == 422
    assert r.json()["message"] == (
        "row 0, column 'default' is the target this model predicts, not an input. Remove it; "
        "send known labels to POST /v1/endpoints/NAME/feedback (or let unknown columns through "
        "unread with the endpoint's flag extra_columns=ignore)."
    )


def test_a_carried_id_of_the_wrong_type_is_422_naming_it(world: World) -> None:
    row = {**training_rows(1, seed=14)[0], "loan_id": {"nested": 1}}
    r = world.post("/v1/endpoints/loans/predict", {"rows": [row]})
    assert r.status_code == 422
    assert r.json()["message"] == (
        "row 0, column 'loan_id': {'nested': 1} is not an id (expected text or a whole number)"
    )


# -- values beyond the training data (issue 17, item 11) ----------------------------------------


def _out_of_range_count(world: World, column: str, rule: str, endpoint: str = "loans") -> float:
    with world.server.client("viewer") as c:
        text = c.get("/metrics").text
    prefix = "shipyard_out_of_range_values_total{"
    for line in text.splitlines():
        if (
            line.startswith(prefix)
            and f'endpoint="{endpoint}"' in line
            and f'column="{column}"' in line
            and f'rule="{rule}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_out_of_range_values_are_served_warned_and_counted_by_default(world: World) -> None:
    rows = training_rows(3, seed=15)
    rows[0]["income"] = INCOME_MAX * 2  # richer than anyone in training
    rows[2]["income"] = INCOME_MAX * 3
    rows[1]["grade"] = "E"  # a grade training never saw
    before = _out_of_range_count(world, "income", "range")
    r = world.post("/v1/endpoints/loans/predict", {"rows": rows})
    assert r.status_code == 200, r.text
    assert {(w["column"], w["rule"], w["count"]) for w in r.json()["warnings"]} == {
        ("income", "range", 2),
        ("grade", "category", 1),
    }
    X = pd.DataFrame(rows)[FEATURES]
    np.testing.assert_allclose(r.json()["probabilities"], world.pipeline.predict_proba(X))
    assert _out_of_range_count(world, "income", "range") == before + 2
    assert _out_of_range_count(world, "grade", "category") >= 1

    oip = {
        "inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [rows[0][c]]} for c in NUMERIC
        ]
        + [{"name": "grade", "shape": [1], "datatype": "BYTES", "data": ["A"]}]
    }
    with world.server.client("predictor") as c:
        assert c.post("/v2/models/loans/infer", json=oip).status_code == 200
    assert _out_of_range_count(world, "income", "range") == before + 3


def test_strict_ranges_on_refuses_them_with_422(world: World) -> None:
    row = {**training_rows(1, seed=16)[0], "income": INCOME_MAX * 2}
    r = world.post("/v1/endpoints/strict/predict", {"rows": [row]})
    assert r.status_code == 422
    assert r.json()["message"] == (
        f"row 0, column 'income': {INCOME_MAX * 2!r} is out of range (expected between 0 and "
        "150000)"
    )
    assert _out_of_range_count(world, "income", "range", endpoint="strict") == 0


# -- what errors show a client (issue 17, item 24) ----------------------------------------------


def test_an_unknown_endpoint_is_404_without_the_names_of_the_others(world: World) -> None:
    with world.server.client("predictor") as c:
        answers = [
            c.post("/v1/endpoints/nope/predict", json={"rows": training_rows(1)}),
            c.post("/v2/models/nope/infer", json={"inputs": []}),
            c.get("/v2/models/nope"),
            c.post("/v1/endpoints/nope/feedback", json={"items": []}),
        ]
    for r in answers:
        assert r.status_code == 404, r.text
        for name in ("loans", "strict"):
            assert name not in r.text, r.text
    assert answers[0].json()["message"].startswith("endpoint 'nope' is not served here;")


def test_error_answers_never_show_the_servers_paths(world: World) -> None:
    """A version whose artifact was altered on disk cannot load: the reason reaches /ready,
    the endpoint's view and its predictions (503), without the workspace's location."""
    version = register(
        world.ws, "broken", fit(0.5), task="classification", signature=loan_signature()
    )
    path = world.ws.artifacts.path_of(version.artifact)
    with open(path, "r+b") as fh:  # flip bytes in place: the digest no longer matches
        fh.seek(100)
        fh.write(b"\x00" * 16)
    create_endpoint(world.ws, "broken", version.ref)
    home = str(world.settings.home)
    with world.server.client("admin") as c:

        def refused() -> Any:
            r = c.get("/ready")
            return r if "broken" in r.json()["endpoints"] else None

        ready = wait_for(refused, what="the broken endpoint at /ready")
        answers = [
            ready,
            c.get("/v1/endpoints/broken"),
            c.post("/v1/endpoints/broken/predict", json={"rows": training_rows(1)}),
            c.get("/v2/models/broken/ready"),
        ]
    problem = ready.json()["endpoints"]["broken"]["problem"]
    assert " at $SHIPYARD_ARTIFACTS/sha256/" in problem and "does not match its digest" in problem
    assert answers[2].status_code == 503
    for r in answers:
        assert home not in r.text, r.text
    time.sleep(0)  # nothing else: the server keeps serving the other endpoints
    assert world.post("/v1/endpoints/loans/predict", {"rows": training_rows(1)}).status_code == 200


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("no workspace at /srv/ml/.shipyard; run init", "no workspace at …/.shipyard; run init"),
        ("cannot open sqlite:////var/lib/sy/shipyard.db", "cannot open sqlite:…/shipyard.db"),
        ("key 'C:\\Users\\me\\ws\\key.pem' is missing", "key '…/key.pem' is missing"),
        (
            "send POST /v1/endpoints/x/predict with a/b",
            "send POST /v1/endpoints/x/predict with a/b",
        ),
        ("key /srv/ws/keys/k.pem is missing", "key $SHIPYARD_HOME/keys/k.pem is missing"),
        ("artifact at /srv/ws/artifacts/sha256/ab", "artifact at $SHIPYARD_ARTIFACTS/sha256/ab"),
    ],
)
def test_without_paths_names_the_servers_directories_and_cuts_other_paths(
    text: str, shown: str
) -> None:
    assert without_paths(text, Settings(home=Path("/srv/ws"))) == shown
