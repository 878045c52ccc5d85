"""The prediction log on SQLite and PostgreSQL: buffered writes, reading back, feedback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from serve_cases import add
from sklearn.pipeline import Pipeline
from sqlalchemy import delete, func, select

from shipyard.core.errors import Invalid, NotFound, Unavailable
from shipyard.core.records import ModelVersion, Signature, SignatureColumn
from shipyard.serve.endpoints import create_endpoint
from shipyard.serve.inputs import Batch, to_columns
from shipyard.serve.predlog import (
    Answered,
    PredictionLog,
    _layout,
    labelled,
    read_predictions,
    record_feedback,
)
from shipyard.store.tables import PredictionSegmentRow
from shipyard.store.workspace import Workspace

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ws(any_workspace: Workspace, pipelines: dict[str, Pipeline]) -> Workspace:
    add(any_workspace, pipelines["a"])
    create_endpoint(any_workspace, "credit", "credit-risk@1")
    create_endpoint(any_workspace, "other", "credit-risk@1")
    return any_workspace


@pytest.fixture
def version(ws: Workspace) -> ModelVersion:
    from shipyard.registry import get_version

    return get_version(ws, "credit-risk@1")


def rows(request_id: str, version_id: str, n: int = 1, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "request_id": request_id,
            "endpoint": "credit",
            "version_id": version_id,
            "latency_ms": 1.5,
            "row": i,
            "inputs": {"income": 1000.0 + i, "grade": "A"},
            "outputs": {"label": "yes", "probability": 0.8},
            **extra,
        }
        for i in range(n)
    ]


def stored(ws: Workspace) -> int:
    with ws.db.read() as s:
        return int(s.scalar(select(func.sum(PredictionSegmentRow.rows))) or 0)


def segments(ws: Workspace) -> list[tuple[str, int]]:
    """(endpoint, rows) of each stored segment, in the order written."""
    with ws.db.read() as s:
        query = select(PredictionSegmentRow.endpoint, PredictionSegmentRow.rows)
        return [tuple(r) for r in s.execute(query.order_by(PredictionSegmentRow.id))]


def test_nothing_acknowledged_is_lost_from_four_threads(
    ws: Workspace, version: ModelVersion
) -> None:
    log = PredictionLog(ws, flush_seconds=0.02)
    accepted = [0] * 4

    def work(t: int) -> None:
        for i in range(5_000):
            accepted[t] += log.append(rows(f"t{t}-{i}", version.id))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert sum(accepted) == 20_000
    assert (log.written, log.dropped, log.pending) == (20_000, 0, 0)
    assert stored(ws) == 20_000
    ids = {p.request_id for p in read_predictions(ws, "credit")}
    assert len(ids) == 20_000


def test_a_full_buffer_refuses_rows_and_says_so(ws: Workspace, version: ModelVersion) -> None:
    log = PredictionLog(ws, flush_seconds=60, max_buffer=10)
    assert log.append(rows("a", version.id, n=8)) == 8
    assert log.append(rows("b", version.id, n=3)) == 0  # would exceed 10: refused whole
    assert log.append(rows("c", version.id, n=2)) == 2
    assert (log.pending, log.dropped) == (10, 3)
    log.close()
    assert log.append(rows("d", version.id)) == 0  # closed: not acknowledged
    assert stored(ws) == 10
    assert sorted({p.request_id for p in read_predictions(ws, "credit")}) == ["a", "c"]


def test_a_failed_write_keeps_the_rows(
    ws: Workspace, version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(ws, flush_seconds=60)
    log.append(rows("r1", version.id, n=3))
    real = ws.db.write

    @contextmanager
    def broken() -> Iterator[Any]:
        raise RuntimeError("database is down")
        yield

    monkeypatch.setattr(ws.db, "write", broken)
    with pytest.raises(
        Unavailable, match=r"could not write 3 predictions to the log \(database is down\)"
    ):
        log.flush()
    log.append(rows("r2", version.id, n=2))
    assert log.pending == 5
    monkeypatch.setattr(ws.db, "write", real)
    log.close()
    assert stored(ws) == 5
    assert [p.request_id for p in read_predictions(ws, "credit")] == ["r1"] * 3 + ["r2"] * 2


def test_a_write_failing_midway_keeps_only_the_uncommitted_segments(
    ws: Workspace, version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(ws, flush_seconds=60)
    log.append(rows("r1", version.id, n=5))  # a segment of "credit"
    log.append([{**row, "endpoint": "other"} for row in rows("o1", version.id, n=3)])
    log.append(rows("x" * 500, version.id))  # rejected: must not stay pending
    real, calls = ws.db.write, []

    @contextmanager
    def fails_second_time() -> Iterator[Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        with real() as session:
            yield session

    monkeypatch.setattr(ws.db, "write", fails_second_time)
    with pytest.raises(Unavailable, match=r"could not write 3 predictions .*disk full"):
        log.flush()
    assert (stored(ws), log.written, log.pending, log.rejected) == (5, 5, 3, 1)
    monkeypatch.setattr(ws.db, "write", real)
    assert log.flush() == 3
    assert (log.pending, log.written) == (0, 8)
    log.close()
    assert segments(ws) == [("credit", 5), ("other", 3)]
    assert [p.row for p in read_predictions(ws, "credit")] == [0, 1, 2, 3, 4]
    assert [p.request_id for p in read_predictions(ws, "other")] == ["o1"] * 3


def test_a_flush_writes_a_segment_per_endpoint_and_layout(
    ws: Workspace, version: ModelVersion
) -> None:
    log = PredictionLog(ws, flush_seconds=60, max_buffer=100_000)  # no flush before close()
    for i in range(4_000):
        log.append_answer(answered(f"a{i:04d}", version.id))  # two rows each
    log.append_answer(answered("bare", version.id, inputs=None))  # no inputs: another layout
    log.append_answer(answered("elsewhere", version.id, endpoint="other"))
    log.close()
    assert segments(ws) == [("credit", 8_000), ("credit", 2), ("other", 2)]
    got = read_predictions(ws, "credit")
    assert len(got) == 8_002
    assert [(p.request_id, p.row) for p in got[:3]] == [("a0000", 0), ("a0000", 1), ("a0001", 0)]
    assert got[-1].request_id == "bare" and got[-1].inputs is None


def test_rows_need_the_identifying_keys(ws: Workspace) -> None:
    with PredictionLog(ws) as log, pytest.raises(Invalid, match=r"lacks outputs, version_id"):
        log.append([{"request_id": "r", "endpoint": "credit"}])


def test_bad_rows_are_left_out_not_blocking_the_rest(ws: Workspace, version: ModelVersion) -> None:
    with PredictionLog(ws, flush_seconds=60) as log:
        log.append(rows("ok", version.id))
        log.append(rows("x" * 500, version.id))  # too long to store
        log.append(rows("naive", version.id, at=datetime(2025, 1, 1)))
    assert log.rejected == 2
    assert [p.request_id for p in read_predictions(ws, "credit")] == ["ok"]


def test_numpy_values_are_stored_as_plain_json(ws: Workspace, version: ModelVersion) -> None:
    with PredictionLog(ws) as log:
        log.append(
            rows(
                "np",
                version.id,
                at=T0,
                inputs={"income": np.float64(12.5), "flags": np.array([1, 2]), "gap": float("nan")},
                outputs={"label": np.str_("yes"), "probabilities": np.array([0.2, 0.8])},
                shadow=True,
            )
        )
    [p] = read_predictions(ws, "credit")
    assert p.inputs == {"income": 12.5, "flags": [1, 2], "gap": None}
    assert p.outputs == {"label": "yes", "probabilities": [0.2, 0.8]}
    assert (p.at, p.shadow, p.latency_ms, p.version_id, p.endpoint) == (
        T0,
        True,
        1.5,
        version.id,
        "credit",
    )


def test_read_predictions_by_time_and_limit(ws: Workspace, version: ModelVersion) -> None:
    with PredictionLog(ws) as log:
        for minute in range(10):
            log.append(rows(f"m{minute}", version.id, at=T0 + timedelta(minutes=minute)))
        log.append([{**rows("elsewhere", version.id)[0], "endpoint": "other"}])
    window = read_predictions(
        ws, "credit", since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6)
    )
    assert [p.request_id for p in window] == ["m3", "m4", "m5"]
    assert [p.request_id for p in read_predictions(ws, "credit", limit=2)] == ["m0", "m1"]
    assert [p.request_id for p in read_predictions(ws, "other")] == ["elsewhere"]
    with pytest.raises(
        NotFound, match=r"endpoint 'nope' does not exist \(known endpoints: credit, other\)"
    ):
        read_predictions(ws, "nope")


# -- whole answers (the server's way in) -----------------------------------------------------------


def answered(request_id: str, version_id: str, n: int = 2, **extra: Any) -> Answered:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "endpoint": "credit",
        "version_id": version_id,
        "at": T0.timestamp(),
        "latency_ms": 1.5,
        "shadow": False,
        "inputs": {
            "income": np.array([1000.0, np.nan, np.inf][:n]),
            "grade": np.array(["A", None, "B"][:n], dtype=object),
            "owner": np.array(["True", "False", "True"][:n], dtype=object),
        },
        "labels": np.array(["yes", "no", "yes"][:n]),
        "probabilities": np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]][:n]),
        "classes": ["no", "yes"],
    }
    return Answered(**{**fields, **extra})


@pytest.mark.parametrize(
    "columns",
    [
        [("income", "float64"), ("grade", "string"), ("owner", "bool")],
        [("income", "float64"), ("age", "int64")],  # numbers only
        [("grade", "string"), ("owner", "bool")],  # no numbers: an empty numbers block
    ],
    ids=["mixed", "numbers", "texts"],
)
def test_a_batch_schema_groups_answers_as_their_inputs_would(
    columns: list[tuple[str, str]],
) -> None:
    signature = Signature(
        inputs=[SignatureColumn(name=name, dtype=dtype) for name, dtype in columns],
        output="class",
        classes=["no", "yes"],
    )
    values = {"income": 5.0, "age": 3, "grade": "A", "owner": True}
    batch = to_columns(signature, {"rows": [{n: values[n] for n, _ in columns}] * 2})
    assert batch.schema is not None  # the fast path's batch says its schema …
    given = answered("r", "v", inputs=batch.columns, blocks=batch.blocks, schema=batch.schema)
    found = answered("r", "v", inputs=batch.columns, blocks=batch.blocks)

    assert _layout(given) == _layout(found)  # … and it is what the log finds by looking


def stored_json(ws: Workspace) -> list[tuple[Any, ...]]:
    """The rows as read back: (request_id, row, at, shadow, inputs, outputs), as written."""
    return [
        (p.request_id, p.row, p.at, p.shadow, p.inputs, p.outputs)
        for p in read_predictions(ws, "credit")
    ]


def test_a_segment_is_a_parquet_file_any_reader_takes(ws: Workspace, version: ModelVersion) -> None:
    import io

    import pyarrow.parquet as pq

    with PredictionLog(ws) as log:
        log.append_answer(answered("whole", version.id))
    with ws.db.read() as s:
        data = s.scalar(select(PredictionSegmentRow.data))
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == [
        *("request_id", "row", "version_id", "at", "latency_ms", "shadow"),
        *("in:income", "in:grade", "in:owner", "label", "probabilities"),
    ]
    assert table.to_pydict()["in:grade"] == ["A", None]
    assert table.to_pydict()["probabilities"] == [[0.2, 0.8], [0.9, 0.1]]
    assert table.schema.metadata[b"classes"] == b'["no","yes"]'
    assert table["at"].to_pylist() == [T0, T0]


def test_an_answer_is_stored_as_its_rows_would_be(ws: Workspace, version: ModelVersion) -> None:
    with PredictionLog(ws) as log:
        assert log.append_answer(answered("whole", version.id)) == 2
        log.append(
            [
                {
                    "request_id": "dicts",
                    "endpoint": "credit",
                    "version_id": version.id,
                    "at": T0,
                    "latency_ms": 1.5,
                    "row": i,
                    "inputs": {"income": income, "grade": grade, "owner": owner},
                    "outputs": {"label": label, "probabilities": {"no": p0, "yes": p1}},
                }
                for i, (income, grade, owner, label, p0, p1) in enumerate(
                    [(1000.0, "A", "True", "yes", 0.2, 0.8), (None, None, "False", "no", 0.9, 0.1)]
                )
            ]
        )
    whole, dicts = stored_json(ws)[:2], stored_json(ws)[2:]
    assert [r[1:] for r in whole] == [r[1:] for r in dicts]
    assert whole[1][4:] == (
        {"income": None, "grade": None, "owner": "False"},  # NaN is stored as null
        {"label": "no", "probabilities": {"no": 0.9, "yes": 0.1}},
    )
    [first, _] = read_predictions(ws, "credit")[:2]
    assert (first.request_id, first.at, first.latency_ms, first.shadow) == ("whole", T0, 1.5, False)


def test_values_orjson_refuses_are_stored_through_the_plain_path(
    ws: Workspace, version: ModelVersion
) -> None:
    big = 2**70  # beyond 64 bits: orjson refuses it, the standard library writes it
    inputs = {
        "income": np.array([big, np.int64(7)], dtype=object),
        "grade": np.array([np.str_("A"), datetime(2025, 1, 2, tzinfo=UTC)], dtype=object),
    }
    with PredictionLog(ws) as log:
        log.append_answer(answered("odd", version.id, inputs=inputs))
    first, second = stored_json(ws)
    assert first[4] == {"income": big, "grade": "A"}
    assert second[4] == {"income": 7, "grade": "2025-01-02T00:00:00+00:00"}
    assert second[5] == {"label": "no", "probabilities": {"no": 0.9, "yes": 0.1}}


def test_an_answer_without_inputs_or_probabilities(ws: Workspace, version: ModelVersion) -> None:
    with PredictionLog(ws) as log:
        log.append_answer(
            answered(
                "bare",
                version.id,
                n=3,
                inputs=None,
                labels=np.array([1.5, np.nan, 3.0]),
                probabilities=None,
                classes=None,
                shadow=True,
            )
        )
    rows_ = stored_json(ws)
    assert [(r[1], r[3], r[4], r[5]) for r in rows_] == [
        (0, True, None, {"label": 1.5}),
        (1, True, None, {"label": None}),
        (2, True, None, {"label": 3.0}),
    ]
    assert all(p.inputs is None for p in read_predictions(ws, "credit"))


def test_answers_count_against_the_buffer_and_bad_ones_are_left_out(
    ws: Workspace, version: ModelVersion
) -> None:
    log = PredictionLog(ws, flush_seconds=60, max_buffer=5)
    assert log.append_answer(answered("a", version.id, n=3)) == 3
    assert log.append_answer(answered("b", version.id, n=3)) == 0  # would exceed 5
    assert log.append_answer(answered("x" * 500, version.id, n=2)) == 2  # too long to store
    assert (log.pending, log.dropped) == (5, 3)
    log.close()
    assert log.append_answer(answered("c", version.id)) == 0  # closed: not acknowledged
    assert (log.written, log.rejected) == (3, 2)
    assert [p.request_id for p in read_predictions(ws, "credit")] == ["a"] * 3


def test_answers_with_and_without_blocks_and_a_bad_one_among_them(
    ws: Workspace, version: ModelVersion
) -> None:
    signature = Signature(
        inputs=[
            SignatureColumn(name="income", dtype="float64"),
            SignatureColumn(name="grade", dtype="string"),
        ],
        output="class",
        classes=["no", "yes"],
    )
    blocked = to_columns(signature, {"rows": [{"income": 1.0, "grade": "A"}]})
    loose = to_columns(signature, {"columns": {"income": [2.0, 3.0], "grade": ["B", None]}})
    assert blocked.blocks and not loose.blocks

    def answer(request_id: str, batch: Batch, **extra: Any) -> Answered:
        labels = np.array(["yes"] * batch.n, dtype=object)
        fields = {"inputs": batch.columns, "blocks": batch.blocks, "labels": labels}
        fields["probabilities"] = np.full((batch.n, 2), 0.5)
        return answered(request_id, version.id, **{**fields, **extra})

    with PredictionLog(ws, flush_seconds=60) as log:
        log.append_answer(answer("blocked", blocked))
        log.append_answer(answer("nan-latency", blocked, latency_ms=float("nan")))
        log.append_answer(answer("loose", loose))
        log.append_answer(answer("blocked-again", blocked))
    # a segment per layout (blocks or not), the bad answer left out of its own
    assert sorted(segments(ws)) == [("credit", 2), ("credit", 2)]
    assert log.rejected == 1
    assert sorted((r[0], r[1], r[4]) for r in stored_json(ws)) == [
        ("blocked", 0, {"income": 1.0, "grade": "A"}),
        ("blocked-again", 0, {"income": 1.0, "grade": "A"}),
        ("loose", 0, {"income": 2.0, "grade": "B"}),
        ("loose", 1, {"income": 3.0, "grade": None}),
    ]


def test_an_answer_the_log_cannot_hold_is_refused_at_once(
    ws: Workspace, version: ModelVersion, caplog: pytest.LogCaptureFixture
) -> None:
    with PredictionLog(ws, flush_seconds=60) as log:
        assert log.append_answer(answered("listed", version.id, labels=["yes", "no"])) == 0
        assert log.append_answer(answered("fine", version.id)) == 2
        assert (log.pending, log.rejected) == (2, 2)
        short = answered("short", version.id, n=1, labels=np.array(["yes", "no"]))
        assert log.append_answer(short) == 2  # two labels, one row of inputs: found at the flush
        assert log.append_answer(answered("fine-too", version.id, n=1)) == 1
    assert log.rejected == 4
    assert "'listed' left out" in caplog.text and "'short' left out" in caplog.text
    stored_rows = [(p.request_id, p.row, p.inputs) for p in read_predictions(ws, "credit")]
    assert stored_rows == [  # nothing of the refused answers, nothing out of line
        ("fine", 0, {"income": 1000.0, "grade": "A", "owner": "True"}),
        ("fine", 1, {"income": None, "grade": None, "owner": "False"}),
        ("fine-too", 0, {"income": 1000.0, "grade": "A", "owner": "True"}),
    ]


def test_answers_from_four_threads_are_all_written(ws: Workspace, version: ModelVersion) -> None:
    log = PredictionLog(ws, flush_seconds=0.01)

    def work(t: int) -> None:
        for i in range(500):
            log.append_answer(answered(f"t{t}-{i}", version.id))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert (log.written, log.dropped, log.pending) == (4_000, 0, 0)
    assert stored(ws) == 4_000


# -- feedback -----------------------------------------------------------------------------------


def test_feedback_counts_unknown_ids_and_joins_the_latest_label(
    ws: Workspace, version: ModelVersion
) -> None:
    with PredictionLog(ws) as log:
        log.append(rows("r1", version.id, n=2, at=T0))
        log.append(rows("r1", "mv_shadow", n=2, at=T0, shadow=True))
        log.append(rows("r2", version.id, at=T0 + timedelta(minutes=1)))
        log.append(rows("r3", version.id, at=T0 + timedelta(minutes=2)))

    result = record_feedback(
        ws,
        "credit",
        [
            {"request_id": "r1", "row": 0, "label": "no"},
            {"request_id": "r1", "row": 1, "label": "yes"},
            {"request_id": "r2", "label": "yes"},
            {"request_id": "r1", "row": 5, "label": "no"},  # no such row
            *({"request_id": f"ghost-{i}", "label": "no"} for i in range(25)),
        ],
    )
    assert (result.matched, result.unknown) == (3, 26)
    assert result.unknown_ids == ["r1", *(f"ghost-{i}" for i in range(19))]
    correction = record_feedback(ws, "credit", [{"request_id": "r2", "label": "no"}])
    assert (correction.matched, correction.unknown, correction.unknown_ids) == (1, 0, [])

    joined = labelled(ws, "credit")
    assert [(j.request_id, j.row, j.shadow, j.label) for j in joined] == [
        ("r1", 0, False, "no"),
        ("r1", 1, False, "yes"),
        ("r1", 0, True, "no"),
        ("r1", 1, True, "yes"),
        ("r2", 0, False, "no"),  # the correction replaced "yes"
    ]
    assert joined[0].outputs == {"label": "yes", "probability": 0.8}
    assert joined[0].inputs == {"income": 1000.0, "grade": "A"}
    later = labelled(ws, "credit", since=T0 + timedelta(seconds=30))
    assert [j.request_id for j in later] == ["r2"]
    assert labelled(ws, "credit", until=T0 + timedelta(seconds=30))[0].request_id == "r1"
    assert record_feedback(ws, "other", [{"request_id": "r1", "label": "no"}]).unknown == 1


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ({"label": "yes"}, r"feedback item 0: request_id None must be the id a prediction"),
        ({"request_id": "r1"}, r"feedback item 0 \(request r1\) has no 'label'"),
        ({"request_id": "r1", "row": -1, "label": 1}, r"row -1 must be the row's position"),
        ({"request_id": "r1", "row": "2", "label": 1}, r"row '2' must be"),
    ],
)
def test_feedback_items_are_checked(ws: Workspace, item: dict[str, Any], pattern: str) -> None:
    with pytest.raises(Invalid, match=pattern):
        record_feedback(ws, "credit", [item])


def test_feedback_for_an_unknown_endpoint(ws: Workspace) -> None:
    with pytest.raises(NotFound, match=r"endpoint 'nope' does not exist"):
        record_feedback(ws, "nope", [{"request_id": "r1", "label": "no"}])


def test_small_segments_are_merged_in_time_order_and_reads_are_unchanged(
    ws: Workspace, version: ModelVersion
) -> None:
    log = PredictionLog(ws, flush_seconds=60)
    for minute in (3, 1, 2, 0):  # four flushes, written out of time order
        log.append_answer(
            answered(f"m{minute}", version.id, at=(T0 + timedelta(minutes=minute)).timestamp())
        )
        log.append_answer(answered(f"bare{minute}", version.id, inputs=None))  # another layout
        log.flush()
    log.append_answer(answered("elsewhere", version.id, endpoint="other"))
    log.flush()
    before = [(p.request_id, p.row, p.inputs, p.outputs) for p in read_predictions(ws, "credit")]
    assert len(segments(ws)) == 9

    assert log.compact() == 8  # two layouts of "credit", four segments each; "other" has one
    log.close()

    assert sorted(segments(ws)) == [("credit", 8), ("credit", 8), ("other", 2)]
    after = [(p.request_id, p.row, p.inputs, p.outputs) for p in read_predictions(ws, "credit")]
    assert sorted(after, key=str) == sorted(before, key=str)  # rows at the same time: any order
    from shipyard.store import logsegments

    with ws.db.read() as s:
        merged = [
            logsegments.decode(logsegments.load(s, info.id))
            for info in logsegments.segments(s, "credit")
        ]
    timed = next(rows for rows in merged if rows.inputs)
    assert timed.request_ids.tolist() == ["m0", "m0", "m1", "m1", "m2", "m2", "m3", "m3"]


def test_monitor_windows_read_segments_in_chunks_with_filters(
    ws: Workspace, version: ModelVersion
) -> None:
    from shipyard.monitor.window import labelled as labelled_window
    from shipyard.monitor.window import scan

    log = PredictionLog(ws, flush_seconds=60)
    for minute in range(5):  # five segments, two rows each, plus a shadow copy each
        at = (T0 + timedelta(minutes=minute)).timestamp()
        log.append_answer(answered(f"r{minute}", version.id, at=at))
        log.append_answer(answered(f"s{minute}", "mv_shadow", at=at, shadow=True))
        log.flush()
    log.append([{**rows("e", version.id)[0], "inputs": None, "outputs": {"error": 500}}])
    log.close()

    chunks = list(
        scan(ws, "credit", T0 + timedelta(minutes=1), T0 + timedelta(minutes=4), chunk_rows=4)
    )
    assert [c.rows for c in chunks] == [4, 2]  # minutes 1-3: six answered rows
    ids = [rid for c in chunks for rid in c.request_ids.tolist()]
    assert ids == ["r1", "r1", "r2", "r2", "r3", "r3"]
    income = chunks[0].inputs["income"]
    assert income.dtype == np.float64 and np.isnan(income[1])  # numbers stay numbers
    assert chunks[0].inputs["grade"].tolist() == ["A", None, "A", None]
    assert chunks[0].scores.tolist() == [0.8, 0.1, 0.8, 0.1]
    assert chunks[0].probabilities[0] == {"no": 0.2, "yes": 0.8}

    shadows = list(scan(ws, "credit", None, None, shadow=True, version_id="mv_shadow"))
    assert sum(c.rows for c in shadows) == 10
    everything = list(scan(ws, "credit", None, None, shadow=None, features=["income", "nope"]))
    assert sum(c.rows for c in everything) == 21
    assert set(everything[0].inputs) == {"income", "nope"}
    errors = np.concatenate([c.errors for c in everything])
    assert errors.sum() == 1 and everything[-1].answered().rows == everything[-1].rows - 1

    record_feedback(ws, "credit", [{"request_id": "r2", "row": 1, "label": "yes"}])
    (hit,) = list(labelled_window(ws, "credit", None, None))
    assert (hit.request_ids.tolist(), hit.positions.tolist(), hit.truth.tolist()) == (
        ["r2"],
        [1],
        ["yes"],
    )


def test_a_merge_another_process_got_to_first_is_rolled_back(
    ws: Workspace, version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.store import logsegments

    log = PredictionLog(ws, flush_seconds=60)
    for i in range(3):
        log.append_answer(answered(f"r{i}", version.id))
        log.flush()
    log.close()
    real_encode = logsegments.encode

    def another_process_merges_one_first(table: Any) -> bytes:
        with ws.db.write() as s:  # as a second server's compaction would
            first = s.scalar(select(func.min(PredictionSegmentRow.id)))
            s.execute(delete(PredictionSegmentRow).where(PredictionSegmentRow.id == first))
        return real_encode(table)

    monkeypatch.setattr(logsegments, "encode", another_process_merges_one_first)
    assert logsegments.compact(ws.db, "credit") == 0
    assert segments(ws) == [("credit", 2), ("credit", 2)]  # left as they were
