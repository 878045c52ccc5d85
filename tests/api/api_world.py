"""A real workspace behind a real server for the API suite: uvicorn on loopback, the app that
`shipyard serve` runs (`api.app.create_app`), one token per role plus a revoked one, and a bit
of everything the API lists: two dataset versions, tracked runs with metric histories, two
registered model versions trained on the dataset, and an endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import uvicorn
from sklearn.linear_model import LogisticRegression

from shipyard.api import create_app
from shipyard.core.records import GateResult, ModelVersion, Role
from shipyard.core.settings import Settings
from shipyard.data import get_version, ingest
from shipyard.registry import register, signature_from_schema
from shipyard.security import create_token, init_workspace, revoke_token
from shipyard.serve.endpoints import create_endpoint
from shipyard.serve.server import uvicorn_config
from shipyard.store.workspace import Workspace
from shipyard.train import log_metric, start_run

ROLES = [r.value for r in Role]  # viewer, scientist, deployer, admin, predictor
FEATURES = ["income", "debt"]
PASSED = GateResult(gate="f1 >= 0.5", kind="metric", passed=True, value=0.8, threshold=0.5)
FAILED = GateResult(gate="f1 >= 0.9", kind="metric", passed=False, value=0.7, threshold=0.9)


@dataclass
class World:
    ws: Workspace
    settings: Settings
    url: str
    tokens: dict[str, str]  # role (or "revoked") → secret
    token_ids: dict[str, str]
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = {"authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


def _loans(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    income = rng.gamma(4.0, 12_000.0, n).round(2)
    debt = rng.gamma(2.0, 5_000.0, n).round(2)
    default = np.where(debt / income + rng.normal(0, 0.1, n) > 0.25, "yes", "no")
    frame = pd.DataFrame(
        {"loan_id": np.arange(n), "income": income, "debt": debt, "default": default}
    )
    frame.to_csv(path, index=False)
    return path


def register_versions(ws: Workspace, tmp: Path) -> dict[str, ModelVersion]:
    """Dataset loans@1..2 (and other@1), and model credit@1..4: good, rejected, two spares."""
    ingest(ws, _loans(tmp / "loans-1.csv", 300, 0), name="loans", target="default", id="loan_id")
    ingest(ws, _loans(tmp / "loans-2.csv", 400, 1), name="loans", target="default", id="loan_id")
    ingest(ws, _loans(tmp / "other.csv", 50, 2), name="other", target="default", id="loan_id")
    version = get_version(ws, "loans@latest")
    frame = pd.read_csv(tmp / "loans-2.csv")
    model = LogisticRegression(max_iter=300).fit(frame[FEATURES], frame["default"])
    signature = signature_from_schema(
        version.schema_, FEATURES, task="classification", classes=["no", "yes"]
    )
    return {
        key: register(
            ws,
            "credit",
            model,
            task="classification",
            signature=signature,
            dataset_version_id=version.id,
            metrics={"f1": 0.8},
            gates=gates,
        )
        for key, gates in (
            ("good", [PASSED]),
            ("rejected", [FAILED]),
            ("spare", [PASSED]),
            ("spare2", [PASSED]),
        )
    }


def _populate(world: World, tmp: Path) -> dict[str, Any] | None:
    ws = world.ws
    world.versions.update(register_versions(ws, tmp))
    for i in range(5):
        with start_run("credit", name=f"trial-{i}", workspace=ws, params={"C": i}) as run:
            for step in range(3):
                log_metric("loss", 1.0 / (step + 1 + i), step=step)
            log_metric("auc", 0.5 + i / 10)
        world.runs.append(run.id)
    for name in ("scoring", "scoring-b", "scoring-c"):
        create_endpoint(ws, name, world.versions["good"].ref)
    return None


Populate = Callable[[World, Path], dict[str, Any] | None]  # returns create_app's keywords


@contextmanager
def running_world(home: Path, populate: Populate | None = None) -> Iterator[World]:
    """The server on a new workspace that `populate` (default: `_populate`) filled first."""
    settings = Settings(home=home / "ws", db=f"sqlite:///{home / 'ws' / 'shipyard.db'}")
    ws, _token, _secret = init_workspace(settings)
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for role in ROLES:
        token, tokens[role] = create_token(ws, f"test-{role}", role)
        ids[role] = token.id
    revoked, tokens["revoked"] = create_token(ws, "test-revoked", Role.admin)
    revoke_token(ws, revoked.id)
    ids["revoked"] = revoked.id
    world = World(ws, settings, "", tokens, ids)
    options = (populate or _populate)(world, home)
    config = uvicorn_config(settings, port=0, factory=create_app, app_options=options)
    sock = config.bind_socket()
    port = sock.getsockname()[1]
    world.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on a failed start
            errors.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start: {errors or 'timeout'}")
        time.sleep(0.02)
    try:
        yield world
    finally:
        server.should_exit = True
        thread.join(60)
        ws.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The API error body, checked for its shape."""
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "details", "request_id"}, body
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def wait_for_status(
    world: World, path: str, headers: dict[str, str], status: int, timeout: float = 10.0
) -> None:
    """Poll `path` until it answers `status` (bounded): for what the server caches briefly."""
    deadline = time.monotonic() + timeout
    with world.client(None) as c:
        while True:
            got = c.get(path, headers=headers).status_code
            if got == status:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} still answers {got}, not {status}, after {timeout}s")
            time.sleep(0.05)
