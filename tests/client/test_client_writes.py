"""The client's writes and files against a real server: runs created, logged and ended; uploads
and checks of files; downloads checked against their sha256 (a stdlib HTTP server on loopback
sends the wrong bytes for the mismatch)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from api_world import World, _loans

from shipyard.client import Client
from shipyard.core.errors import Conflict, Integrity, NotFound, ValidationFailed
from shipyard.core.records import RunStatus, ValidationReport
from shipyard.data import get_version
from shipyard.train import get_run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def scientist(world: World) -> Iterator[Client]:
    with Client(world.url, world.tokens["scientist"]) as client:
        yield client


def test_a_run_created_logged_with_a_nan_ended_and_read_back(
    world: World, scientist: Client
) -> None:
    run = scientist.runs.create("remote", name="r1", params={"lr": 0.1}, tags={"team": "risk"})
    assert run.status is RunStatus.running and run.created_by == world.token_ids["scientist"]

    first = scientist.runs.log(run.id, {"loss": 0.5, "auc": 0.7}, step=0, params={"depth": 3})
    second = scientist.runs.log(
        run.id, [("loss", math.nan, 1), ("loss", math.inf), ("auc", -math.inf, 5)]
    )
    ended = scientist.runs.end(run.id, note="done")

    assert (first.metrics, first.params, first.tags) == (2, 1, 0)
    assert second.metrics == 3
    assert ended.status is RunStatus.finished and ended.note == "done"
    back = scientist.runs.get(run.id).run
    assert back.params == {"lr": 0.1, "depth": 3} and back.tags == {"team": "risk"}
    assert back.metrics["loss"] == math.inf and back.metrics["auc"] == -math.inf
    history = [(p.step, p.value) for p in scientist.runs.metric_history(run.id, "loss")]
    assert history[0] == (0, 0.5) and history[1][0] == 1 and math.isnan(history[1][1])
    assert history[2] == (2, math.inf)  # the next step after the key's latest
    stored = get_run(world.ws, run.id)  # what the server stored is what was sent
    assert stored.metrics["loss"] == math.inf and stored.metrics["auc"] == -math.inf


def test_logging_to_an_ended_run_is_a_conflict_and_stores_nothing(
    world: World, scientist: Client
) -> None:
    run = scientist.runs.create("remote", heartbeat=False)
    scientist.runs.end(run.id, "failed", note="boom")

    with pytest.raises(Conflict, match=r"status 'failed'; an ended run takes no more") as caught:
        scientist.runs.log(run.id, {"loss": 1.0})
    with pytest.raises(Conflict):
        scientist.runs.end(run.id)
    assert caught.value.details["status"] == 409
    assert "loss" not in get_run(world.ws, run.id).metrics
    with pytest.raises(NotFound, match="run_nope"):
        scientist.runs.log("run_nope", {"loss": 1.0})


def test_an_upload_creates_a_version_and_the_same_bytes_again_do_not(
    world: World, scientist: Client, tmp_path: Path
) -> None:
    path = _loans(tmp_path / "loans.csv", 120, 7)

    made = scientist.datasets.upload(path, "up-client", target="default", id="loan_id")
    with path.open("rb") as fh:  # an open file, named by the `filename` it had
        again = scientist.datasets.upload(fh, "up-client", target="default", id="loan_id")

    assert made.created and made.version.ref == "up-client@1" and made.version.rows == 120
    assert made.version.lineage.source == "loans.csv"
    assert not again.created and again.version.id == made.version.id
    assert get_version(world.ws, "up-client@latest").version == 1


def test_a_contract_breaking_upload_raises_validation_failed_with_the_report(
    world: World, scientist: Client, tmp_path: Path
) -> None:
    good = _loans(tmp_path / "good.csv", 100, 1)
    scientist.datasets.upload(good, "up-broken", target="default", id="loan_id")
    broken = pd.read_csv(_loans(tmp_path / "b.csv", 100, 2)).drop(columns=["income"])
    data = io.BytesIO(broken.to_csv(index=False).encode())

    with pytest.raises(ValidationFailed, match=r"breaks 1 blocking rule\(s\)") as caught:
        scientist.datasets.upload(data, "up-broken", format="csv", filename="broken.csv")
    report = ValidationReport.model_validate(caught.value.details["report"])
    assert not report.passed and [e.column for e in report.errors] == ["income"]
    assert get_version(world.ws, "up-broken@latest").version == 1  # nothing stored
    data.seek(0)
    with pytest.raises(ValidationFailed, match="income") as checked:
        scientist.datasets.validate(data, "up-broken", filename="broken.csv")
    checked_report = ValidationReport.model_validate(checked.value.details["report"])
    assert [e.column for e in checked_report.errors] == ["income"]
    passed = scientist.datasets.validate(good, "up-broken@1")
    assert passed.passed and passed.against == "up-broken@1"


def test_an_upload_of_a_missing_file_names_it(scientist: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"cannot upload .*nope\.csv.*no such file"):
        scientist.datasets.upload(tmp_path / "nope.csv", "up-missing")


def test_downloads_equal_the_stored_version_and_the_bundle_verifies(
    world: World, scientist: Client, tmp_path: Path
) -> None:
    version = get_version(world.ws, "loans@2")

    data = scientist.datasets.download("loans@2", tmp_path)
    bundle = scientist.models.download(world.versions["good"].ref, tmp_path / "b" / "good.zip")

    assert data.path == tmp_path / "loans-2.parquet"
    assert data.sha256 == version.content_hash
    assert hashlib.sha256(data.path.read_bytes()).hexdigest() == version.content_hash
    assert bundle.sha256 == world.versions["good"].artifact and bundle.path.name == "good.zip"
    with zipfile.ZipFile(bundle.path) as zf:
        manifest = zf.read("manifest.json")
        world.ws.signer.verify(manifest, zf.read("manifest.sig"), what="the bundle")
        for part in json.loads(manifest)["parts"]:
            assert hashlib.sha256(zf.read(part["name"])).hexdigest() == part["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "loans-2.parquet"]  # no .part
    with pytest.raises(NotFound, match="nope"):
        scientist.datasets.download("nope@1", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


@contextmanager
def lying_server(body: bytes, etag: str, *, busy: int = 0) -> Iterator[str]:
    """A stdlib HTTP server on loopback answering every GET with `body` and `etag` (the first
    `busy` ones with 503)."""
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            count[0] += 1
            if count[0] <= busy:
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "application/zip")
            self.send_header("etag", f'"{etag}"')
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_download_not_matching_its_etag_raises_integrity_and_writes_nothing(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "credit.zip"
    dest.write_bytes(b"the previous download")
    claimed = hashlib.sha256(b"what the store holds").hexdigest()

    with (
        lying_server(b"something else", claimed) as url,
        Client(url, "t") as client,
        pytest.raises(Integrity, match=r"arrived with sha256 .* ETag says") as caught,
    ):
        client.models.download("credit@1", dest)

    assert caught.value.details["expected"] == claimed
    assert caught.value.details["got"] == hashlib.sha256(b"something else").hexdigest()
    assert dest.read_bytes() == b"the previous download"
    assert [p.name for p in tmp_path.iterdir()] == ["credit.zip"]  # the partial file removed


def test_a_download_answered_503_is_retried_from_the_start(tmp_path: Path) -> None:
    body = b"the bundle's bytes"
    digest = hashlib.sha256(body).hexdigest()

    with lying_server(body, digest, busy=1) as url, Client(url, "t", backoff=0.01) as client:
        got = client.models.download("credit@1", tmp_path / "credit.zip")

    assert got.sha256 == digest and got.size == len(body)
    assert got.path.read_bytes() == body
