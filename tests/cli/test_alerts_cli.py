"""`shipyard alerts ls` and `shipyard alerts ack`, tables and --json, with exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard.cli.app import main
from shipyard.core.settings import Settings
from shipyard.monitor.alerts import raise_alert
from shipyard.store import audit
from shipyard.store.workspace import Workspace


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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace with three alerts on two endpoints (oldest first: a1, a2, a3)."""
    home = tmp_path / "ws"
    assert run("--home", str(home), "init").exit_code == 0
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        raise_alert(ws, "credit", "drift", "income drifted (PSI 0.31)", key="a1")
        raise_alert(ws, "fraud", "slo", "p99 over 50 ms", key="a2")
        raise_alert(ws, "credit", "decay", "f1 fell to 0.61", key="a3")
    finally:
        ws.close()
    return home


@pytest.fixture
def sy(home: Path) -> Any:
    def _run(*args: str) -> Result:
        return run("--home", str(home), *args)

    return _run


def test_ls_shows_open_alerts_newest_first(sy: Any) -> None:
    listed = sy("alerts", "ls")
    assert listed.exit_code == 0, listed.stderr
    for head in ("ID", "ENDPOINT", "KIND", "CREATED", "MESSAGE", "Open alerts"):
        assert head in listed.stdout
    assert "ACKED" not in listed.stdout  # open alerts are not acknowledged
    out = listed.stdout
    assert out.index("f1 fell to 0.61") < out.index("p99 over 50 ms") < out.index("income drifted")
    found = sy("alerts", "ls", "--json").json()
    assert [a["kind"] for a in found] == ["decay", "slo", "drift"]
    assert all(a["id"].startswith("alr_") and a["acked_at"] is None for a in found)


def test_ls_filters_by_endpoint_and_limit(sy: Any) -> None:
    found = sy("alerts", "ls", "--endpoint", "credit", "--json").json()
    assert [a["message"] for a in found] == ["f1 fell to 0.61", "income drifted (PSI 0.31)"]
    assert len(sy("alerts", "ls", "--limit", "1", "--json").json()) == 1
    assert sy("alerts", "ls", "--limit", "0").exit_code == 2
    assert "No open alerts" in sy("alerts", "ls", "--endpoint", "nobody").stdout


def test_one_endpoints_alerts_leave_the_message_room_at_80_columns(sy: Any, home: Path) -> None:
    message = (
        "credit: 2 of 4 features drifted, carrying 97% of the model's importance (threshold "
        "20%): tenure, plan"
    )
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        raise_alert(ws, "credit", "drift", message, key="a4")
    finally:
        ws.close()

    listed = run("--home", str(home), "alerts", "ls", "--endpoint", "credit", columns=80)

    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].strip() == "Open alerts on credit"
    assert lines[1].split() == ["ID", "KIND", "CREATED", "(UTC)", "MESSAGE"]
    assert all(len(line) <= 80 for line in lines)
    text = " ".join(listed.stdout.split())
    assert "credit:" not in text  # the endpoint is in the title, not before every message
    assert "2 of 4 features drifted, carrying 97% of the model's importance" in text


def test_ack_hides_an_alert_until_all(sy: Any, home: Path) -> None:
    newest = sy("alerts", "ls", "--json").json()[0]
    acked = sy("alerts", "ack", newest["id"])
    assert acked.exit_code == 0, acked.stderr
    assert f"Alert {newest['id']} (decay on credit) acknowledged by " in acked.stdout
    assert newest["id"] not in [a["id"] for a in sy("alerts", "ls", "--json").json()]
    everything = sy("alerts", "ls", "--all", "--json").json()
    assert everything[0]["id"] == newest["id"] and everything[0]["acked_by"]
    table = sy("alerts", "ls", "--all")
    assert "Alerts" in table.stdout and "ACKED" in table.stdout and " by " in table.stdout

    again = sy("alerts", "ack", newest["id"], "--json")  # a no-op, not an error
    assert again.exit_code == 0
    assert again.json()["acked_at"] == everything[0]["acked_at"]
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        with ws.db.read() as s:
            assert len(audit.events(s, action="alert.ack")) == 1
    finally:
        ws.close()


def test_ack_of_an_unknown_id_exits_3(sy: Any) -> None:
    missing = sy("alerts", "ack", "alr_nope")
    assert missing.exit_code == 3
    assert "alert 'alr_nope' does not exist" in missing.stderr
    assert "shipyard alerts ls --all" in missing.stderr
    as_json = sy("alerts", "ack", "alr_nope", "--json")
    assert as_json.exit_code == 3
    assert as_json.json()["error"] == "NotFound"


def test_alerts_need_a_workspace(tmp_path: Path) -> None:
    assert run("--home", str(tmp_path / "none"), "alerts", "ls").exit_code == 3
