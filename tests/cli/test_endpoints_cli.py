"""`shipyard endpoints`, `shipyard flags` and `shipyard predict` end to end, with exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from shipyard.cli.app import main
from shipyard.core.records import ColumnSchema, DatasetSchema, GateResult
from shipyard.core.settings import Settings
from shipyard.registry import register, signature_from_schema
from shipyard.store import audit
from shipyard.store.workspace import Workspace

FEATURES = ["income", "debt"]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(*args: str, columns: int = 200) -> Result:
    code: Any = None
    with CliRunner().isolation(env={"COLUMNS": str(columns)}) as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int)
    return Result(code, stdout, stderr)


def loans(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"income": rng.gamma(4, 10_000, n), "debt": rng.gamma(2, 5_000, n)})
    y = (X["debt"] / X["income"] + rng.normal(0, 0.1, n) > 0.3).map({True: "yes", False: "no"})
    return X, y


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace with credit@1, credit@2 (usable) and credit@3 (rejected by its gate)."""
    home = tmp_path / "ws"
    assert run("--home", str(home), "init").exit_code == 0
    X, y = loans(500)
    schema = DatasetSchema(columns=[ColumnSchema(name=c, dtype="float64") for c in FEATURES])
    sig = signature_from_schema(schema, FEATURES, task="classification", classes=["no", "yes"])
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        for C, passed in ((1.0, True), (0.1, True), (0.01, False)):
            pipeline = Pipeline([("s", StandardScaler()), ("m", LogisticRegression(C=C))])
            gate = GateResult(
                gate="f1 >= 0.9", kind="metric", passed=passed, value=0.95 if passed else 0.5
            )
            register(
                ws, "credit", pipeline.fit(X, y), task="classification", signature=sig, gates=[gate]
            )
    finally:
        ws.close()
    return home


@pytest.fixture
def sy(home: Path) -> Any:
    def _run(*args: str, columns: int = 200) -> Result:
        return run("--home", str(home), *args, columns=columns)

    return _run


def test_create_show_and_list(sy: Any) -> None:
    created = sy("endpoints", "create", "loans", "--model", "credit@1")
    assert created.exit_code == 0, created.stderr
    assert "endpoint loans serves credit@1" in created.stdout

    shown = sy("endpoints", "show", "loans")
    assert shown.exit_code == 0
    assert "credit@1" in shown.stdout and "champion" in shown.stdout and "100%" in shown.stdout

    listed = sy("endpoints", "ls", "--json").json()
    assert [(e["name"], e["champion_ref"], e["revision"]) for e in listed] == [
        ("loans", "credit@1", 1)
    ]
    assert "loans" in sy("endpoints", "ls").stdout


def test_an_endpoint_made_from_an_alias_follows_it_and_says_so(sy: Any) -> None:
    """Issue 17 #13 and #15, as a new user sees it at 80 columns."""
    assert sy("models", "alias", "credit@1", "champion").exit_code == 0
    created = sy("endpoints", "create", "loans", "--model", "credit@champion", columns=80)
    assert created.stdout == "endpoint loans serves credit@1 (follows alias credit@champion)\n"
    pinned = sy("endpoints", "create", "fixed", "--model", "credit@1", columns=80)
    assert "(pinned: moving an alias does not move it)" in pinned.stdout

    moved = sy("models", "alias", "credit@2", "champion", columns=80)
    assert moved.exit_code == 0, moved.stderr
    assert moved.stdout.splitlines() == [
        "credit@champion → credit@2",
        "endpoint loans follows it: champion → credit@2 (revision 2)",
    ]
    shown = sy("endpoints", "show", "loans", columns=80).stdout.splitlines()
    assert "champion → credit@2 (follows alias credit@champion)" in shown
    assert "champion → credit@1 (pinned: moving an alias does not move it)" in (
        sy("endpoints", "show", "fixed", columns=80).stdout.splitlines()
    )
    statuses = {f"credit@{v['version']}": v["status"] for v in sy("models", "ls", "--json").json()}
    assert statuses == {"credit@1": "deployed", "credit@2": "deployed", "credit@3": "rejected"}

    sy("endpoints", "route", "loans", "--canary", "credit@1", "--steps", "100")
    promoted = sy("endpoints", "canary", "loans", "promote")
    assert promoted.stdout == "endpoint loans (revision 5): credit@1 100%\n"  # no live canary
    shown = sy("endpoints", "show", "loans", columns=80).stdout
    traffic = [line.split() for line in shown.splitlines() if line.lstrip().startswith("credit@")]
    assert traffic == [["credit@1", "champion", "100%"]]  # not also "canary"
    assert "last canary: credit@1 promoted (promoted by " in shown
    assert "champion → credit@1 (follows alias credit@champion)" in shown  # the alias moved too
    statuses = {f"credit@{v['version']}": v["status"] for v in sy("models", "ls", "--json").json()}
    assert statuses["credit@2"] == "approved"  # replaced, champion nowhere: a rollback is one step
    listed = sy("endpoints", "ls", columns=80).stdout
    assert "promoted" not in listed and "canary" not in listed.lower().replace("canary ", "")
    assert "credit@1 (@champion)" in listed  # whole: roles no endpoint has take no room
    assert "CHALLENGERS" not in listed and "SHADOWS" not in listed


def test_route_champion_and_canary(sy: Any, home: Path) -> None:
    sy("endpoints", "create", "loans", "--model", "credit@1")
    routed = sy(
        "endpoints",
        "route",
        "loans",
        "--challenger",
        "credit@2:25",
        "--json",
    ).json()
    assert routed["challengers"][0]["weight"] == 25.0
    shown = sy("endpoints", "show", "loans")
    assert "75%" in shown.stdout and "25%" in shown.stdout

    canary = sy(
        "endpoints",
        "route",
        "loans",
        "--canary",
        "credit@2",
        "--steps",
        "20,100",
        "--guard",
        "error_rate=0.01",
        "--guard",
        "p99_ms=50",
    )
    assert canary.exit_code == 0, canary.stderr
    assert "canary credit@2 20% (step 1/2)" in canary.stdout
    advanced = sy("endpoints", "canary", "loans", "advance", "--json").json()
    assert advanced["canary"]["step"] == 1
    rolled = sy("endpoints", "canary", "loans", "rollback", "--reason", "too slow", "--json").json()
    assert rolled["canary"]["state"] == "rolled_back" and rolled["canary"]["reason"] == "too slow"
    assert sy("endpoints", "canary", "loans", "promote").exit_code == 4  # not running

    champion = sy("endpoints", "champion", "loans", "credit@2")
    assert champion.exit_code == 0 and "champion is credit@2" in champion.stdout

    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        with ws.db.read() as s:
            actions = [e.action for e in audit.events(s, action="endpoint.", limit=None)]
            assert audit.verify(s).ok
    finally:
        ws.close()
    assert actions == [
        "endpoint.champion",
        "endpoint.canary.rollback",
        "endpoint.canary.step",
        "endpoint.route",
        "endpoint.route",
        "endpoint.create",
    ]


def test_errors_have_meaningful_exit_codes(sy: Any) -> None:
    rejected = sy("endpoints", "create", "loans", "--model", "credit@3")
    assert rejected.exit_code == 4
    assert "rejected" in rejected.stderr and "f1 >= 0.9" in rejected.stderr
    assert sy("endpoints", "show", "nope").exit_code == 3
    sy("endpoints", "create", "loans", "--model", "credit@1")
    bad = sy("endpoints", "route", "loans", "--challenger", "credit@2")
    assert bad.exit_code == 2 and "is not REF:WEIGHT" in bad.stderr
    assert sy("endpoints", "route", "loans", "--guard", "error_rate").exit_code == 2
    assert (
        sy("endpoints", "route", "loans", "--canary", "credit@2", "--steps", "a,b").exit_code == 2
    )
    assert sy("endpoints", "canary", "loans", "jump").exit_code == 2
    as_json = sy("endpoints", "route", "loans", "--shadow", "credit@3", "--json")
    assert as_json.exit_code == 4 and as_json.json()["error"] == "Conflict"


def test_flags_set_list_and_unset(sy: Any) -> None:
    sy("endpoints", "create", "loans", "--model", "credit@1")
    done = sy("flags", "set", "loans", "explain=on", "pin=credit@2")
    assert done.exit_code == 0, done.stderr
    assert "explain=on, pin=credit@2" in done.stdout
    assert sy("flags", "ls", "loans", "--json").json() == {"explain": "on", "pin": "credit@2"}
    assert "pinned" in sy("endpoints", "show", "loans").stdout

    unset = sy("flags", "unset", "loans", "pin", "--json").json()
    assert unset["flags"] == {"explain": "on"} and unset["pinned"] is None

    unknown = sy("flags", "set", "loans", "colour=red")
    assert unknown.exit_code == 2
    assert (
        "flag 'colour' is not known; the flags are explain, extra_columns, log_inputs, pin"
        in unknown.stderr
    )
    assert sy("flags", "set", "loans", "explain").exit_code == 2
    assert sy("flags", "set", "loans", "pin=credit@3").exit_code == 4
    assert "explain" in sy("flags", "ls", "loans").stdout
    assert sy("flags", "unset", "loans", "explain").exit_code == 0
    assert "Endpoint loans has no flags set" in sy("flags", "ls", "loans").stdout


def test_predict_a_file(sy: Any, tmp_path: Path) -> None:
    X, _ = loans(3_000, seed=1)
    X.insert(0, "id", range(len(X)))
    source = tmp_path / "loans.csv"
    X.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    done = sy(
        "predict",
        str(source),
        "--model",
        "credit@1",
        "--out",
        str(out),
        "--chunk-rows",
        "1000",
        "--keep",
        "id",
        "--json",
    )
    assert done.exit_code == 0, done.stderr
    assert done.json()["rows"] == 3_000 and done.json()["chunks"] == 3
    scored = pq.read_table(out).to_pandas()
    assert list(scored["id"]) == list(range(3_000))
    assert set(scored["prediction"]) <= {"no", "yes"}

    human = sy("predict", str(source), "--model", "credit@1", "--out", str(tmp_path / "s.csv"))
    assert human.exit_code == 0 and "scored 3,000 rows with credit@1" in human.stdout

    assert sy("predict", str(source), "--model", "credit@3", "--out", str(out)).exit_code == 4
    X.drop(columns=["debt"]).to_csv(source, index=False)
    missing = sy("predict", str(source), "--model", "credit@1", "--out", str(out))
    assert missing.exit_code == 2 and "lacks column(s) 'debt'" in missing.stderr
