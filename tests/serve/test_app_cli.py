"""`shipyard serve` as a user runs it: a subprocess that prints where it listens and stops
cleanly on SIGTERM, writing its prediction log first."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_harness import records, wait_for, workspace_settings
from serve_cases import add, fit, frame

from shipyard.security import init_workspace
from shipyard.serve.endpoints import create_endpoint
from shipyard.serve.predlog import read_predictions
from shipyard.store.workspace import Workspace

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    settings = workspace_settings(tmp_path / "ws")
    ws, _token, secret = init_workspace(settings)
    try:
        create_endpoint(ws, "credit", add(ws, fit(1.0)).ref)
    finally:
        ws.close()
    yield settings.home, secret


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_prints_where_it_listens_and_stops_on_sigterm(
    home: tuple[Path, str], workers: int
) -> None:
    path, secret = home
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard",
            "--home",
            str(path),
            "serve",
            "--port",
            "0",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
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
        first = wait_for(lambda: lines and lines[0], timeout=120, what="the listening line")
        match = re.fullmatch(r"Shipyard serving on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        url = match[1]
        headers = {"authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            wait_for(
                lambda: _ready(c),
                timeout=120,
                every=0.2,
                what="the server to be ready",
            )
            X, _ = frame(3, 4)
            ids = [
                c.post("/v1/endpoints/credit/predict", json={"rows": records(X)}).json()[
                    "request_id"
                ]
                for _ in range(5)
            ]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # uvicorn re-raises the signal it caught once shutdown is done (as service managers expect).
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err, err
    opened = Workspace.open(workspace_settings(path))
    try:
        logged = {p.request_id for p in read_predictions(opened, "credit")}
    finally:
        opened.close()
    assert set(ids) <= logged


def _ready(c: httpx.Client) -> bool:
    try:
        return c.get("/ready").status_code == 200
    except httpx.TransportError:
        return False
