"""`shipyard serve` runs the control plane beside the endpoints: one server, one port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from projects import write_project
from shipyard.core.settings import Settings
from shipyard.security import init_workspace

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _up(c: httpx.Client) -> bool:
    try:
        return c.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def test_shipyard_serve_answers_the_api_and_its_document(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "ws", db=f"sqlite:///{tmp_path / 'ws' / 'shipyard.db'}")
    ws, token, secret = init_workspace(settings)
    ws.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    command = [sys.executable, "-m", "shipyard", "--home", str(settings.home), "serve"]
    project = write_project(tmp_path / "project")  # the API's monitor and loop judge by it
    process = subprocess.Popen(
        [*command, "--port", "0", "--log-level", "warning", "--spec", str(project.spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not lines:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no listening line"
            time.sleep(0.05)
        match = re.fullmatch(r"Shipyard serving on (http://127\.0\.0\.1:\d+)\n", lines[0])
        assert match, lines[0]
        headers = {"authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=match[1], headers=headers, timeout=30) as c:
            while not _up(c):  # the address is printed when bound, before the app starts
                assert time.monotonic() < deadline, "the server never answered /health"
                time.sleep(0.05)
            audit = c.get("/api/v1/audit", params={"action": "token"})
            doc = c.get("/openapi.json")
            turns = c.post("/api/v1/loop/run-once", json={})  # 501 on a server without a spec
        assert audit.status_code == 200, audit.text
        assert turns.status_code == 200, turns.text
        assert turns.json() == {"turns": []}  # no endpoint serves a churn version yet
        assert [e["object_id"] for e in audit.json()["items"]] == [token.id]
        assert "/api/v1/audit" in doc.json()["paths"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        reader.join(10)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()
