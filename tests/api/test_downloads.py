"""Downloading over real HTTP: a dataset version's Parquet and a model version's signed bundle,
streamed from the artifact store with the content's sha256 as ETag; bytes changed in the store
are refused before anything is sent."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from api_world import World, error_of

from shipyard.data import get_version, ingest, read_table

pytestmark = pytest.mark.timeout(120)


def _get(world: World, path: str, role: str = "viewer"):  # type: ignore[no-untyped-def]
    with world.client(role) as c:
        return c.get(path)


def test_a_dataset_version_downloads_as_its_verified_parquet(world: World) -> None:
    version = get_version(world.ws, "loans@2")
    r = _get(world, "/api/v1/datasets/loans@2/download")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["etag"] == f'"{version.content_hash}"'
    assert r.headers["content-disposition"] == 'attachment; filename="loans-2.parquet"'
    assert int(r.headers["content-length"]) == len(r.content)
    assert hashlib.sha256(r.content).hexdigest() == version.content_hash
    table = pq.read_table(io.BytesIO(r.content))
    assert table.equals(read_table(world.ws, version))


def test_a_bare_name_downloads_the_latest_version(world: World) -> None:
    r = _get(world, "/api/v1/datasets/loans/download")
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{get_version(world.ws, "loans@latest").content_hash}"'


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/v1/datasets/nope@1/download", 404, "'nope'"),
        ("/api/v1/datasets/loans@9/download", 404, "loans"),
        ("/api/v1/datasets/loans@x y/download", 422, "dataset reference"),
        ("/api/v1/models/nope@1/bundle", 404, "'nope'"),
        ("/api/v1/models/credit@99/bundle", 404, "credit"),
    ],
)
def test_unknown_versions_are_refused(world: World, path: str, status: int, says: str) -> None:
    r = _get(world, path)
    assert r.status_code == status, r.text
    assert says in error_of(r)["message"]


def test_a_model_bundle_downloads_signed_and_verifiable(world: World) -> None:
    good = world.versions["good"]
    r = _get(world, f"/api/v1/models/{good.ref}/bundle")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["etag"] == f'"{good.artifact}"'
    assert r.headers["content-disposition"] == f'attachment; filename="credit-{good.version}.zip"'
    assert hashlib.sha256(r.content).hexdigest() == good.artifact
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest, signature = zf.read("manifest.json"), zf.read("manifest.sig")
        world.ws.signer.verify(manifest, signature, what="the downloaded bundle")
        for part in json.loads(manifest)["parts"]:
            assert hashlib.sha256(zf.read(part["name"])).hexdigest() == part["sha256"]


def test_a_bundle_by_alias(world: World) -> None:
    with world.client("scientist") as c:
        assert (
            c.put("/api/v1/models/credit/aliases/staging", json={"version": 3}).status_code == 200
        )
    r = _get(world, "/api/v1/models/credit@staging/bundle")
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{world.versions["spare"].artifact}"'


def test_bytes_changed_in_the_store_are_refused_before_anything_is_sent(
    world: World, tmp_path: Path
) -> None:
    source = tmp_path / "tampered.csv"
    source.write_text("id,x\n1,2\n2,3\n")
    version = ingest(world.ws, source, name="tampered", id="id").version
    blob = Path(world.ws.artifacts.path_of(version.content_hash))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    r = _get(world, "/api/v1/datasets/tampered@1/download")
    assert r.status_code == 500
    body = error_of(r)
    assert body["error"] == "Integrity"
    assert "does not match its digest" in body["message"]
    assert str(world.settings.home) not in body["message"]


def test_downloads_need_a_reading_role(world: World) -> None:
    for path in ("/api/v1/datasets/loans/download", "/api/v1/models/credit@1/bundle"):
        assert _get(world, path, role="predictor").status_code == 403
        with world.client(None) as c:
            assert c.get(path).status_code == 401
