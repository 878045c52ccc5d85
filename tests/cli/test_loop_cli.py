"""`shipyard monitor report|watch` and `shipyard loop run-once|status|stop` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from loop_cases import ENDPOINT, LOOP, drifted, label, log_traffic, served
from projects import customers, spec_dict
from shipyard.cli.app import main
from shipyard.core.settings import Settings
from shipyard.loop.rollouts import list_rollouts
from shipyard.store.workspace import Workspace


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(home: Path, *args: str, cwd: Path | None = None) -> Result:
    code: Any = None
    with CliRunner().isolation(env={"COLUMNS": "200"}) as (out, err, _):
        try:
            main(["--home", str(home), *args])
        except SystemExit as exc:
            code = exc.code
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int)
    return Result(code, stdout, stderr)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace home with churn@1 serving endpoint churn, drifted traffic with labels."""
    home = tmp_path / "ws"
    assert run(home, "init").exit_code == 0
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        setup = served(ws, tmp_path / "p")
        shifted = drifted(1_200)
        label(ws, log_traffic(ws, setup.champion, shifted), shifted)
    finally:
        ws.close()
    return home, tmp_path / "p" / "shipyard.yaml"


def test_monitor_report_table_json_and_html(project: tuple[Path, Path], tmp_path: Path) -> None:
    home, spec = project
    html = tmp_path / "report.html"

    shown = run(home, "monitor", "report", ENDPOINT, "--spec", str(spec), "--out", str(html))
    assert shown.exit_code == 0, shown.stderr
    assert "DRIFT" in shown.stdout and "tenure" in shown.stdout
    assert "DECAY: roc_auc" in shown.stdout
    page = html.read_text()
    assert page.lower().startswith("<!doctype html>") and "data:image/png;base64," in page

    data = run(
        home, "monitor", "report", ENDPOINT, "--spec", str(spec), "--json", "--out", str(html)
    )
    payload = data.json()
    assert payload["drift"]["drifted"] is True
    assert payload["decay"]["decayed"] is True
    assert payload["html"] == str(html)


def test_monitor_report_offline_and_bad_arguments(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    home, spec = project
    current = tmp_path / "new.parquet"
    drifted(1_000).to_parquet(current)
    out = tmp_path / "offline.html"

    offline = run(
        home, "monitor", "report", "--reference", "customers@1", "--current", str(current),
        "--spec", str(spec), "--out", str(out), "--json",
    )  # fmt: skip
    assert offline.exit_code == 0, offline.stderr
    assert "tenure" in {f["column"] for f in offline.json()["drift"]["features"] if f["drifted"]}

    half = run(home, "monitor", "report", "--reference", "customers@1")
    assert half.exit_code == 2 and "both --reference and --current" in half.stderr
    neither = run(home, "monitor", "report")
    assert neither.exit_code == 2 and "name an endpoint" in neither.stderr
    unknown = run(home, "monitor", "report", "nope", "--spec", str(spec))
    assert unknown.exit_code == 3 and "endpoint 'nope' does not exist" in unknown.stderr
    window = run(home, "monitor", "report", ENDPOINT, "--window", "soon")
    assert window.exit_code == 2 and "not a duration" in window.stderr


def test_monitor_watch_refreshes_and_raises_alerts(project: tuple[Path, Path]) -> None:
    home, spec = project
    watched = run(home, "monitor", "watch", ENDPOINT, "--spec", str(spec), "--count", "1")
    assert watched.exit_code == 0, watched.stderr
    assert "DRIFT" in watched.stdout
    alerts = run(home, "alerts", "ls", "--json").json()
    assert {"drift", "decay"} <= {a["kind"] for a in alerts}


def test_loop_run_once_status_and_stop(project: tuple[Path, Path]) -> None:
    home, spec = project
    turned = run(home, "loop", "run-once", "--spec", str(spec), "--json")
    assert turned.exit_code == 0, turned.stderr
    [turn] = turned.json()
    assert turn["endpoint"] == ENDPOINT and turn["action"] == "retrained"
    assert turn["rollout"]["stage"] == "shadow", turn["reason"]

    status = run(home, "loop", "status", ENDPOINT)
    assert status.exit_code == 0
    assert "shadow" in status.stdout and "churn@2" in status.stdout
    assert "Timeline of" in status.stdout and "retraining" in status.stdout

    stopped = run(home, "loop", "stop", ENDPOINT, "--reason", "freeze", "--json")
    assert stopped.exit_code == 0 and stopped.json()["stage"] == "stopped"
    assert run(home, "loop", "status", "nope").exit_code == 3


def test_loop_stop_without_a_rollout_pauses_the_endpoint_until_resumed(
    project: tuple[Path, Path],
) -> None:
    """Issue 17 #14: `loop stop` with no rollout in progress switches the loop off there."""
    home, spec = project
    stopped = run(home, "loop", "stop", ENDPOINT, "--reason", "freeze")
    assert stopped.exit_code == 0, stopped.stderr
    assert (
        stopped.stdout.split()
        == (
            f"no rollout was in progress; retrain loop paused for {ENDPOINT} (freeze): no retrain "
            f"and no rollout step until `shipyard loop resume {ENDPOINT}`."
        ).split()
    )
    turned = run(home, "loop", "run-once", "--spec", str(spec), "--json")
    [turn] = turned.json()
    assert turn["action"] == "paused" and turn["rollout"] is None  # drifted, yet not retrained
    assert turn["reason"].startswith(f"loop paused (freeze; `shipyard loop resume {ENDPOINT}`)")
    assert "would retrain: " in turn["reason"]
    assert run(home, "loop", "pause", ENDPOINT, "--json").json()["loop_paused"] == "freeze"

    resumed = run(home, "loop", "resume", ENDPOINT)
    assert resumed.exit_code == 0 and "retrain loop on for churn" in resumed.stdout
    [turn] = run(home, "loop", "run-once", "--spec", str(spec), "--json").json()
    assert turn["action"] == "retrained"
    actions = [e["action"] for e in run(home, "audit", "log", "--json").json()]
    assert {"endpoint.loop.pause", "endpoint.loop.resume"} <= set(actions)
    assert run(home, "loop", "pause", "nope").exit_code == 3


def test_loop_run_once_needs_a_valid_spec(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert run(home, "init").exit_code == 0
    missing = run(home, "loop", "run-once", "--spec", str(tmp_path / "none.yaml"))
    assert missing.exit_code != 0 and "none.yaml" in missing.stderr
    bad = tmp_path / "bad.yaml"
    raw = {**spec_dict(), **LOOP}
    raw["retrain"] = {**LOOP["retrain"], "when": [{"every": "often"}]}
    bad.write_text(yaml.safe_dump(raw))
    customers(10).to_csv(tmp_path / "customers.csv", index=False)
    result = run(home, "loop", "run-once", "--spec", str(bad))
    assert result.exit_code != 0 and "retrain.when" in result.stderr and "often" in result.stderr


def test_serve_loop_runs_the_loop_in_a_child_process_that_stops_with_the_server(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    home, spec = project
    shipyard = Path(sys.executable).with_name("shipyard")
    command = [str(shipyard), "--home", str(home), "serve", "--port", "0", "--spec", str(spec)]
    command += ["--loop", "--loop-interval", "1", "--log-level", "info"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    child = None
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 120
        while child is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            assert line, "the server exited before starting the loop"
            found = re.search(r"RETRAIN LOOP ON \(process (\d+), a turn every 1 s\)", line)
            child = int(found[1]) if found else None
        assert child is not None and child != server.pid
        os.kill(child, 0)  # alive
        ws = Workspace.open(Settings.load(home=str(home)))
        try:  # the drifted, labelled traffic makes its first turn retrain
            while not list_rollouts(ws, ENDPOINT) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert list_rollouts(ws, ENDPOINT), "the loop process took no turn"
        finally:
            ws.close()
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, and the loop with it
        server.communicate(timeout=240)
    assert server.returncode in (0, 130)  # 130: the shell's code for an interrupted command
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the loop process {child} outlived the server")


@pytest.mark.slow
def test_serve_runs_no_loop_unless_asked(project: tuple[Path, Path], tmp_path: Path) -> None:
    """Issue 17 #14: a spec with retrain.when no longer starts a promoting loop by itself."""
    import signal
    import subprocess
    import sys

    home, spec = project
    shipyard = Path(sys.executable).with_name("shipyard")
    command = [str(shipyard), "--home", str(home), "serve", "--port", "0", "--spec", str(spec)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    said = ""
    try:
        assert server.stderr is not None
        while not said.lower().startswith("retrain loop"):
            said = server.stderr.readline()
            assert said, "the server exited before saying whether the loop runs"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=120)
    assert said.startswith("retrain loop: off (the spec has retrain.when; `shipyard serve --loop`")
