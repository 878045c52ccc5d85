"""Error answers under /api/v1: serve's status mapping, the request id, no server paths."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.requests import Request

from shipyard.api import create_app
from shipyard.api.errors import api_error_response
from shipyard.core.errors import Integrity, NotFound
from shipyard.core.settings import Settings


def _answer(tmp_path: Path, path: str, exc: Exception) -> tuple[int, dict[str, object]]:
    settings = Settings(home=tmp_path / "ws")
    app = create_app(settings)
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "app": app,
             "query_string": b"", "path_params": {}}  # fmt: skip
    response = asyncio.run(api_error_response(Request(scope), exc))
    return response.status_code, json.loads(bytes(response.body))


def test_server_paths_never_reach_an_api_error_body(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    exc = NotFound(
        f"signing key {home}/keys/signing.ed25519.pem is missing",
        details={"file": f"{home / 'artifacts'}/sha256/ab"},
    )
    status, body = _answer(tmp_path, "/api/v1/models", exc)
    assert status == 404
    assert str(home) not in json.dumps(body)
    assert body["message"] == "signing key $SHIPYARD_HOME/keys/signing.ed25519.pem is missing"
    assert body["details"] == {"file": "$SHIPYARD_ARTIFACTS/sha256/ab"}
    assert str(body["request_id"]).startswith("req_")


def test_outside_the_api_errors_answer_as_the_serving_app_does(tmp_path: Path) -> None:
    status, body = _answer(tmp_path, "/v1/endpoints", Integrity("bad bytes"))
    assert status == 500
    assert body == {"error": "Integrity", "message": "bad bytes", "details": {}}
