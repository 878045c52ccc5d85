"""Uploading data over real HTTP: POST /api/v1/datasets/{name}/versions (ingest) and
POST /api/v1/datasets/validate, against a server whose upload limit is 1 MiB. Every refusal
(over the limit, cut short, breaking the contract, the wrong role) stores nothing and leaves no
staging directory behind.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from api_world import World, error_of, running_world

from shipyard.api.schemas.datasets import public_source
from shipyard.data import get_version, list_versions
from shipyard.store import audit

pytestmark = pytest.mark.timeout(120)
LIMIT = 1024 * 1024
PARQUET = "application/vnd.apache.parquet"
LOOP = "shipyard loop: credit@3 + 10 labelled rows of endpoint e"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_MAX_UPLOAD_MB", "1")  # read by the server's Settings
        with running_world(tmp_path_factory.mktemp("uploads")) as w:
            assert w.settings.max_upload_mb == 1
            yield w


def _csv(rows: int = 50, *, seed: int = 0, default: str | None = None) -> bytes:
    frame = pd.DataFrame(
        {
            "loan_id": range(rows),
            "income": [1000.0 + 37 * ((i * 7 + seed) % 101) for i in range(rows)],
            "region": [" north ", "south"] * (rows // 2) + ["east"] * (rows % 2),
            "default": [default or ("yes" if i % 3 else "no") for i in range(rows)],
        }
    )
    return frame.to_csv(index=False).encode()


def _post(world: World, path: str, body: bytes, role: str = "scientist", **headers: str):  # type: ignore[no-untyped-def]
    with world.client(role) as c:
        return c.post(path, content=body, headers=headers)


def _versions(world: World, name: str) -> int:
    try:
        return len(list_versions(world.ws, name))
    except Exception:  # the dataset does not exist
        return 0


def _blocking(report: dict) -> list[str]:  # type: ignore[type-arg]
    """The columns of a report's blocking violations."""
    return [v["column"] for v in report["violations"] if v["severity"] == "error"]


def _staging_dirs(world: World) -> list[str]:
    return sorted(p.name for p in world.ws.scratch.glob("*ingest-*"))


def _wait(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout}s")
        time.sleep(0.02)


INGEST = "/api/v1/datasets/{}/versions?filename=loans.csv&target=default&id=loan_id"


def test_a_csv_upload_becomes_a_version_named_by_its_file(world: World) -> None:
    r = _post(world, INGEST.format("up-a"), _csv(), **{"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True
    version = body["version"]
    assert version["ref"] == "up-a@1"
    assert version["rows"] == 50
    assert _blocking(version["validation"]) == []
    assert version["lineage"]["source"] == "loans.csv"  # not the staging file's path
    assert version["lineage"]["format"] == "csv"
    stored = get_version(world.ws, "up-a@1")
    assert stored.content_hash == version["content_hash"]
    with world.ws.db.read() as s:
        events = audit.events(s, action="dataset.ingest", object_id=stored.id)
    assert [e.actor for e in events] == [world.token_ids["scientist"]]
    assert _staging_dirs(world) == []


def test_the_same_bytes_twice_answer_the_existing_version(world: World) -> None:
    data = _csv(seed=3)
    first = _post(world, INGEST.format("up-same"), data, **{"content-type": "text/csv"})
    again = _post(world, INGEST.format("up-same"), data, **{"content-type": "text/csv"})
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["created"] is False
    assert again.json()["version"]["ref"] == first.json()["version"]["ref"] == "up-same@1"
    assert _versions(world, "up-same") == 1


def test_roles_sensitive_columns_and_cleaning_steps_come_as_query_parameters(
    world: World,
) -> None:
    clean = json.dumps([{"op": "trim"}, {"op": "lower", "columns": ["region"]}])
    r = _post(
        world,
        f"{INGEST.format('up-clean')}&sensitive=income&sensitive=region&clean={clean}",
        _csv(),
        **{"content-type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    steps = r.json()["version"]["lineage"]["steps"]
    assert [(s["op"], s["rows_changed"]) for s in steps] == [("trim", 25), ("lower", 0)]
    with world.client("viewer") as c:
        dataset = c.get("/api/v1/datasets/up-clean").json()
    assert dataset["sensitive"] == ["income", "region"]
    data = pd.read_parquet(io.BytesIO(_download(world, "up-clean@1")))
    assert set(data["region"]) == {"north", "south"}


def _download(world: World, ref: str) -> bytes:
    with world.client("viewer") as c:
        r = c.get(f"/api/v1/datasets/{ref}/download")
    assert r.status_code == 200, r.text
    return r.content


@pytest.mark.parametrize(
    ("fmt", "write", "headers", "query"),
    [
        ("parquet", lambda f, b: f.to_parquet(b), {"content-type": PARQUET}, ""),
        ("jsonl", lambda f, b: f.to_json(b, orient="records", lines=True), {}, "&format=jsonl"),
        ("csv", lambda f, b: f.to_csv(b, sep="\t", index=False), {}, "&filename=loans.tsv"),
    ],
)  # fmt: skip
def test_parquet_json_lines_and_tab_separated_uploads(
    world: World,
    fmt: str,
    write,
    headers: dict[str, str],
    query: str,  # type: ignore[no-untyped-def]
) -> None:
    frame = pd.read_csv(io.BytesIO(_csv()))
    buffer = io.BytesIO()
    write(frame, buffer)
    name = f"up-{fmt}-{len(query)}"
    r = _post(
        world,
        f"/api/v1/datasets/{name}/versions?target=default{query}",
        buffer.getvalue(),
        **headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"]["lineage"]["format"] == fmt
    assert r.json()["version"]["columns"] == 4


def test_an_upload_of_unknown_format_is_refused_naming_the_fix(world: World) -> None:
    r = _post(world, "/api/v1/datasets/up-what/versions", _csv())
    assert r.status_code == 422
    assert "Pass format=csv|parquet|jsonl" in error_of(r)["message"]
    assert _versions(world, "up-what") == 0


def test_bad_query_parameters_are_refused_before_the_body_is_read(world: World) -> None:
    r = _post(world, INGEST.format("up-q") + '&clean=[{"op": "shred"}]', _csv())
    body = error_of(r)
    assert r.status_code == 422
    assert body["details"]["errors"][0]["field"].startswith("clean")
    r = _post(world, INGEST.format("up-q") + "&colour=red", _csv())
    assert r.status_code == 422
    assert "query field 'colour'" in error_of(r)["message"]


def test_a_file_that_breaks_the_contract_is_422_with_the_report_and_nothing_stored(
    world: World,
) -> None:
    assert (
        _post(world, INGEST.format("up-bad"), _csv(), **{"content-type": "text/csv"}).status_code
        == 201
    )
    broken = pd.read_csv(io.BytesIO(_csv(seed=5))).drop(columns=["income"]).to_csv(index=False)
    r = _post(world, INGEST.format("up-bad"), broken.encode(), **{"content-type": "text/csv"})
    assert r.status_code == 422, r.text
    body = error_of(r)
    assert body["error"] == "ValidationFailed"
    assert body["message"].startswith("loans.csv breaks 1 blocking rule(s) of dataset 'up-bad'")
    assert str(world.settings.home) not in r.text and "$SHIPYARD_HOME" not in r.text
    assert _blocking(body["details"]["report"]) == ["income"]
    assert _versions(world, "up-bad") == 1
    # allow=true stores it with the violations recorded, as `data ingest --allow` does
    r = _post(
        world,
        INGEST.format("up-bad") + "&allow=true",
        broken.encode(),
        **{"content-type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    assert _blocking(r.json()["version"]["validation"]) == ["income"]
    assert _versions(world, "up-bad") == 2
    assert _staging_dirs(world) == []


def test_the_wrong_role_is_403_and_stores_nothing(world: World) -> None:
    for role in ("viewer", "deployer", "predictor"):
        r = _post(
            world, INGEST.format("up-role"), _csv(), role=role, **{"content-type": "text/csv"}
        )
        assert r.status_code == 403, (role, r.text)
    assert _versions(world, "up-role") == 0


def test_an_upload_over_the_limit_is_413_and_stores_nothing(world: World) -> None:
    big = _csv(rows=60_000)
    assert len(big) > LIMIT
    r = _post(world, INGEST.format("up-big"), big, **{"content-type": "text/csv"})
    assert r.status_code == 413, r.text
    assert "over the server's limit of 1,048,576 bytes" in error_of(r)["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused once the bytes pass it
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    with world.client("scientist") as c:
        r = c.post(INGEST.format("up-big"), content=chunked(), headers={"content-type": "text/csv"})
    assert r.status_code == 413, r.text
    assert "(streamed)" in error_of(r)["message"]
    assert _versions(world, "up-big") == 0
    _wait(lambda: _staging_dirs(world) == [], "cleaned up")


def test_an_upload_that_stops_half_way_stores_nothing_and_leaves_no_staging(world: World) -> None:
    data = _csv(rows=5_000)
    url = urlsplit(world.url)
    request = (
        f"POST {INGEST.format('up-half')} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {world.tokens['scientist']}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request + data[: len(data) // 2])
        _wait(lambda: _staging_dirs(world) != [], "staging the upload")
    # the socket is closed with half the bytes sent
    _wait(lambda: _staging_dirs(world) == [], "cleaned up")
    assert _versions(world, "up-half") == 0


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/v1/datasets/bad%20name/versions?format=csv", 422, "dataset name 'bad name'"),
        ("/api/v1/datasets/up-early/versions?filename=data.bin", 422, "Pass format="),
        ("/api/v1/datasets/validate?against=nope&format=csv", 404, "'nope'"),
    ],
)
def test_a_bad_name_format_or_contract_is_refused_before_the_file_is_sent(
    world: World, path: str, status: int, says: str
) -> None:
    # Only the headers go out, announcing 100 MB: the answer comes without waiting for them.
    url = urlsplit(world.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {world.tokens['scientist']}\r\n"
            f"Content-Length: {100 * LIMIT}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or says.encode() not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    assert says.encode() in answer, answer
    _wait(lambda: _staging_dirs(world) == [], "cleaned up")


def test_a_short_body_that_ends_cleanly_is_refused(world: World) -> None:
    # The client says it sends more than it does, and ends its side of the connection.
    data = _csv()
    url = urlsplit(world.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {INGEST.format('up-short')} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {world.tokens['scientist']}\r\n"
            f"Content-Length: {len(data) + 100}\r\n\r\n".encode()
            + data
        )
        sock.shutdown(socket.SHUT_WR)
        sock.recv(4096)  # whatever the server says, if anything, before it closes
    _wait(lambda: _staging_dirs(world) == [], "cleaned up")
    assert _versions(world, "up-short") == 0


# -- validate -------------------------------------------------------------------------------------


def test_validate_reports_on_a_file_for_a_viewer(world: World) -> None:
    assert (
        _post(world, INGEST.format("up-v"), _csv(), **{"content-type": "text/csv"}).status_code
        == 201
    )
    r = _post(
        world,
        "/api/v1/datasets/validate?against=up-v&filename=new.csv",
        _csv(seed=9),
        role="viewer",
    )
    assert r.status_code == 200, r.text
    assert r.json()["passed"] is True
    assert r.json()["against"] == "up-v@1"
    assert _blocking(r.json()["report"]) == []


def test_validate_a_file_that_breaks_the_contract_is_422_with_the_report(world: World) -> None:
    assert (
        _post(world, INGEST.format("up-v2"), _csv(), **{"content-type": "text/csv"}).status_code
        == 201
    )
    broken = pd.read_csv(io.BytesIO(_csv())).drop(columns=["loan_id"]).to_csv(index=False)
    r = _post(
        world,
        "/api/v1/datasets/validate?against=up-v2@1&filename=new.csv",
        broken.encode(),
        role="viewer",
    )
    assert r.status_code == 422, r.text
    body = error_of(r)
    assert body["error"] == "ValidationFailed"
    assert body["message"].startswith("new.csv breaks 1 blocking rule(s) of up-v2@1: loan_id")
    assert _blocking(body["details"]["report"]) == ["loan_id"]
    assert _versions(world, "up-v2") == 1


def test_validate_against_an_unknown_dataset_is_404(world: World) -> None:
    r = _post(world, "/api/v1/datasets/validate?against=nope&format=csv", _csv(), role="viewer")
    assert r.status_code == 404
    assert "'nope'" in error_of(r)["message"]


# -- lineage without server paths -----------------------------------------------------------------


def test_a_local_files_lineage_shows_its_name_only(world: World) -> None:
    stored = get_version(world.ws, "loans@1")
    assert Path(stored.lineage.source).is_absolute()  # ingested from a path on the server
    with world.client("viewer") as c:
        shown = c.get("/api/v1/datasets/loans/versions/1").json()["lineage"]["source"]
    assert shown == "loans-1.csv"


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("/srv/data/loans.csv", "loans.csv"),
        ("C:\\data\\loans.csv", "loans.csv"),
        ("relative/dir/loans.parquet", "loans.parquet"),
        ("loans.csv", "loans.csv"),
        ("postgresql://ann:***@db.example:5432/prod", "postgresql://db.example:5432/prod"),
        ("postgresql://ann@db/prod", "postgresql://db/prod"),
        ("https://example.com/d.csv?x=1", "https://example.com/d.csv?x=1"),
        (LOOP, LOOP),  # a label Shipyard wrote
    ],
)  # fmt: skip
def test_public_source(source: str, shown: str) -> None:
    assert public_source(source) == shown
