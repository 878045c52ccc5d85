"""Request decoding and validation against a model's signature: every bad input, pinned."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from shipyard.core.errors import Invalid
from shipyard.core.records import Signature, SignatureColumn
from shipyard.serve.inputs import (
    MAX_ROWS,
    Batch,
    InputError,
    decode,
    from_oip,
    join_columns,
    to_columns,
)

SIGNATURE = Signature(
    inputs=[
        SignatureColumn(name="income", dtype="float64", nullable=False, min=0, max=1_000_000),
        SignatureColumn(name="age", dtype="int64", min=18, max=100),
        SignatureColumn(name="score", dtype="float64"),
        SignatureColumn(name="grade", dtype="string", values=["A", "B", "C", "D"]),
        SignatureColumn(name="owner", dtype="bool", nullable=False),
        SignatureColumn(name="city", dtype="string", nullable=False),
    ],
    output="class",
    classes=["no", "yes"],
)
ROW: dict[str, Any] = {
    "income": 52_000.5,
    "age": 41,
    "score": 0.25,
    "grade": "B",
    "owner": True,
    "city": "Leeds",
}
ROWS: list[dict[str, Any]] = [
    ROW,
    {"income": 0, "age": None, "score": None, "grade": None, "owner": False, "city": "York"},
    {"income": 1_000_000, "age": 18.0, "score": -3, "grade": "D", "owner": True, "city": ""},
]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in rows[0]}


def _oip(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {"income": "FP64", "age": "INT64", "score": "FP64", "owner": "BOOL"}
    return {
        "id": "request-1",
        "inputs": [
            {"name": k, "shape": [len(v)], "datatype": kinds.get(k, "BYTES"), "data": v}
            for k, v in _columns(rows).items()
        ],
    }


def _errors(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[Any, ...]]:
    return [(e["row"], e["column"], e["rule"], e["value"]) for e in exc.value.details["errors"]]


def _bad(**changes: Any) -> dict[str, Any]:
    """A three-row request whose last row has `changes`."""
    return {"rows": [*ROWS[:2], {**ROWS[2], **changes}]}


# -- decoding --------------------------------------------------------------------------------------


def test_decode_reads_a_json_object() -> None:
    assert decode(orjson.dumps({"rows": ROWS})) == {"rows": ROWS}
    assert decode(bytearray(b' {"columns": {}} ')) == {"columns": {}}
    assert decode('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("body", [b"", b"   \n", ""])
def test_an_empty_body_is_refused(body: bytes | str) -> None:
    with pytest.raises(InputError, match=r"^the request body is empty; send a JSON object") as exc:
        decode(body)
    assert _errors(exc) == [(None, None, "empty", None)]


@pytest.mark.parametrize(
    "body",
    [b'{"rows": [', b"{'rows': []}", b'{"rows": [{"income": NaN}]}', b'{"x": Infinity}'],
)
def test_malformed_json_is_refused(body: bytes) -> None:
    with pytest.raises(InputError, match=r"^the request body is not valid JSON \(") as exc:
        decode(body)
    assert _errors(exc) == [(None, None, "json", None)]
    assert "NaN and Infinity are not JSON" in exc.value.message


def test_a_number_too_large_for_float64_is_malformed_json() -> None:
    with pytest.raises(InputError, match=r"not valid JSON \(number is infinity"):
        decode(b'{"rows": [{"income": 1e400}]}')


@pytest.mark.parametrize(("body", "kind"), [(b"[1, 2]", "array"), (b'"rows"', "string")])
def test_a_body_that_is_not_an_object_is_refused(body: bytes, kind: str) -> None:
    with pytest.raises(InputError, match=rf"^the request body is a JSON {kind}, not an object"):
        decode(body)


def test_input_errors_are_invalid_with_status_422() -> None:
    with pytest.raises(InputError) as exc:
        decode(b"")
    assert isinstance(exc.value, Invalid) and exc.value.http_status == 422
    assert exc.value.to_dict()["details"]["errors"][0]["rule"] == "empty"


# -- the three forms -------------------------------------------------------------------------------


def test_records_columns_and_oip_give_the_same_batch() -> None:
    records = to_columns(SIGNATURE, {"rows": ROWS})
    columns = to_columns(SIGNATURE, {"columns": _columns(ROWS)})
    oip = from_oip(SIGNATURE, _oip(ROWS))
    dispatched = to_columns(SIGNATURE, _oip(ROWS))

    for batch in (records, columns, oip, dispatched):
        assert batch.n == 3 and batch.warnings == []
        assert list(batch.columns) == SIGNATURE.names
        np.testing.assert_array_equal(batch.columns["income"], [52_000.5, 0.0, 1_000_000.0])
        np.testing.assert_array_equal(batch.columns["age"], [41.0, np.nan, 18.0])
        np.testing.assert_array_equal(batch.columns["score"], [0.25, np.nan, -3.0])
        assert batch.columns["income"].dtype == np.float64
        assert batch.columns["grade"].dtype == object
        assert batch.columns["grade"].tolist() == ["B", None, "D"]
        assert batch.columns["owner"].tolist() == ["True", "False", "True"]
        assert batch.columns["city"].tolist() == ["Leeds", "York", ""]


def test_a_small_request_holds_its_columns_as_two_blocks() -> None:
    batch = to_columns(SIGNATURE, {"rows": ROWS})
    numbers, texts = batch.blocks
    assert numbers.names == ("income", "age", "score")
    assert texts.names == ("grade", "owner", "city")
    assert (numbers.matrix.dtype, numbers.matrix.shape) == (np.float64, (3, 3))
    assert (texts.matrix.dtype, texts.matrix.shape) == (object, (3, 3))
    assert list(batch.columns) == SIGNATURE.names and len(batch.columns) == 6  # in order
    assert dict(batch.columns).keys() == set(SIGNATURE.names)
    with pytest.raises(KeyError):
        batch.columns["unknown"]
    for block in batch.blocks:  # each column is a row of its block, not a copy
        for i, name in enumerate(block.names):
            assert np.shares_memory(batch.columns[name], block.matrix)
            np.testing.assert_array_equal(batch.columns[name], block.matrix[i])
    assert to_columns(SIGNATURE, {"columns": _columns(ROWS)}).blocks == ()  # the general path


def test_joined_batches_share_blocks_or_fall_back_to_columns() -> None:
    a = to_columns(SIGNATURE, {"rows": ROWS[:2]})
    b = to_columns(SIGNATURE, {"rows": ROWS[2:]})
    loose = to_columns(SIGNATURE, {"columns": _columns(ROWS[2:])})  # no blocks
    whole = to_columns(SIGNATURE, {"columns": _columns(ROWS)})
    for parts, blocked in (([a, b], True), ([a, loose], False)):
        columns, blocks = join_columns([p.columns for p in parts], [p.blocks for p in parts])
        assert list(columns) == SIGNATURE.names
        for name in SIGNATURE.names:
            assert columns[name].tolist() == pytest.approx(
                whole.columns[name].tolist(), nan_ok=True
            )
        assert [x.names for x in blocks] == ([x.names for x in a.blocks] if blocked else [])
        for block in blocks:
            assert all(np.shares_memory(columns[name], block.matrix) for name in block.names)


def test_an_oip_matrix_holds_the_columns_in_signature_order() -> None:
    numbers = Signature(
        inputs=[SignatureColumn(name=n, dtype="float64") for n in ("a", "b", "c")],
        output="number",
    )
    flat = {
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]
    }
    nested = {"inputs": [{**flat["inputs"][0], "data": [[1, 2, 3], [4, 5, 6]]}]}

    for payload in (flat, nested):
        batch = from_oip(numbers, payload)
        assert batch.n == 2
        assert {k: v.tolist() for k, v in batch.columns.items()} == {
            "a": [1.0, 4.0],
            "b": [2.0, 5.0],
            "c": [3.0, 6.0],
        }


def test_oip_tensors_must_fit_the_columns() -> None:
    payload = _oip(ROWS)
    payload["inputs"][0]["datatype"] = "BYTES"
    with pytest.raises(
        InputError,
        match=r"^input 'income' has datatype BYTES, but the column is float64; send it as FP64",
    ):
        from_oip(SIGNATURE, payload)

    payload = _oip(ROWS)
    payload["inputs"][1]["shape"] = [4]
    with pytest.raises(
        InputError, match=r"^inputs\[1\] \('age'\) has 3 values in 'data' but its shape"
    ):
        from_oip(SIGNATURE, payload)

    payload = _oip(ROWS)
    payload["inputs"][2]["name"] = "scores"
    with pytest.raises(
        InputError, match=r"^column 'score' is missing; the model takes income, "
    ) as exc:
        from_oip(SIGNATURE, payload)
    assert _errors(exc) == [
        (None, "score", "missing_column", None),
        (None, "scores", "extra_column", None),
    ]

    with pytest.raises(InputError, match=r"^'inputs' must be a non-empty list of tensors"):
        from_oip(SIGNATURE, {"inputs": []})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, r"the request has none of 'rows', 'columns' and 'inputs' \(it has no keys\)"),
        ({"rows": ROWS, "columns": {}}, r"the request has more than one of 'rows', 'columns'"),
        ({"rows": {"income": 1}}, r"'rows' is a JSON object; send a list of objects, one per row"),
        ({"rows": [ROW, [1, 2]]}, r"row 1 is a JSON array, not an object"),
        ({"rows": []}, r"the request has no rows; send at least one"),
        ({"columns": [1]}, r"'columns' is a JSON array; send an object of lists"),
        ({"columns": {**_columns(ROWS), "age": 5}}, r"column 'age' is a JSON number; in the col"),
    ],
)
def test_badly_shaped_requests_are_refused(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match="^" + message):
        to_columns(SIGNATURE, payload)


def test_columns_of_different_lengths_are_refused() -> None:
    columns = _columns(ROWS)
    columns["score"] = columns["score"][:2]
    with pytest.raises(
        InputError, match=r"^column 'score' has 2 values but column 'income' has 3; every column"
    ) as exc:
        to_columns(SIGNATURE, {"columns": columns})
    assert _errors(exc) == [(None, "score", "length", 2)]


# -- columns missing, unknown or too many ----------------------------------------------------------


def test_a_missing_column_is_refused() -> None:
    rows = [{k: v for k, v in r.items() if k != "score"} for r in ROWS]
    message = r"^column 'score' is missing; the model takes income, age, score, grade, owner, city"
    for payload in ({"rows": rows}, {"columns": _columns(rows)}):
        with pytest.raises(InputError, match=message) as exc:
            to_columns(SIGNATURE, payload)
        assert _errors(exc) == [(None, "score", "missing_column", None)]


def test_a_key_missing_from_one_row_is_refused() -> None:
    rows = [ROWS[0], {k: v for k, v in ROWS[1].items() if k != "grade"}, ROWS[2]]
    with pytest.raises(
        InputError, match=r"^row 1, column 'grade': missing; every row needs every column"
    ) as exc:
        to_columns(SIGNATURE, {"rows": rows})
    assert _errors(exc) == [(1, "grade", "missing", None)]


def test_an_unknown_column_is_refused_unless_extra_columns_are_allowed() -> None:
    rows = [{**r, "zip": "LS1"} for r in ROWS]
    with pytest.raises(
        InputError, match=r"^row 0, column 'zip' is not an input of this model; it takes income"
    ) as exc:
        to_columns(SIGNATURE, {"rows": rows})
    assert _errors(exc)[:2] == [(0, "zip", "extra_column", None), (1, "zip", "extra_column", None)]
    with pytest.raises(InputError, match=r"^column 'zip' is not an input of this model"):
        to_columns(SIGNATURE, {"columns": _columns(rows)})

    for payload in ({"rows": rows}, {"columns": _columns(rows)}):
        batch = to_columns(SIGNATURE, payload, allow_extra=True)
        assert list(batch.columns) == SIGNATURE.names


@pytest.mark.parametrize("form", ["rows", "columns", "inputs"])
def test_ten_thousand_columns_are_refused_before_anything_is_built(form: str) -> None:
    wide = {**ROW, **{f"c{i}": 1.0 for i in range(10_000 - len(ROW))}}
    forms: dict[str, dict[str, Any]] = {
        "rows": {"rows": [wide]},
        "columns": {"columns": {k: [v] for k, v in wide.items()}},
        "inputs": {
            "inputs": [
                {"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in wide.items()
            ]
        },
    }
    payload = forms[form]
    with pytest.raises(
        InputError,
        match=r"^the request has 10000 columns; the model takes 6 and at most 262 are accepted",
    ) as exc:
        to_columns(SIGNATURE, payload, allow_extra=True)
    assert _errors(exc) == [(None, None, "too_many_columns", 10_000)]


def test_max_columns_can_be_set() -> None:
    rows = [{**r, "zip": "LS1"} for r in ROWS]
    with pytest.raises(InputError, match=r"^the request has 7 columns; .* at most 6 are accepted"):
        to_columns(SIGNATURE, {"rows": rows}, allow_extra=True, max_columns=6)


# -- too many rows ---------------------------------------------------------------------------------


def test_too_many_rows_are_refused() -> None:
    message = r"^the request has 10001 rows; at most 10000 are accepted per request\. Split it"
    for payload in (
        {"rows": [ROW] * (MAX_ROWS + 1)},
        {"columns": {k: [v] * (MAX_ROWS + 1) for k, v in ROW.items()}},
    ):
        with pytest.raises(InputError, match=message) as exc:
            to_columns(SIGNATURE, payload)
        assert _errors(exc) == [(None, None, "too_many_rows", 10_001)]
    with pytest.raises(InputError, match=r"^the request has 3 rows; at most 2 are accepted"):
        to_columns(SIGNATURE, {"rows": ROWS}, max_rows=2)
    oip = _oip(ROWS)
    with pytest.raises(InputError, match=r"^the request has 3 rows; at most 2 are accepted"):
        from_oip(SIGNATURE, oip, max_rows=2)
    assert to_columns(SIGNATURE, {"rows": [ROW] * MAX_ROWS}).n == MAX_ROWS


# -- values of the wrong type ----------------------------------------------------------------------


def test_a_string_where_a_number_belongs() -> None:
    rows = [ROW, ROW, ROW, {**ROW, "income": "abc"}]
    with pytest.raises(
        InputError, match=r"^row 3, column 'income': 'abc' is not a number \(expected float64\)$"
    ) as exc:
        to_columns(SIGNATURE, {"rows": rows})
    assert _errors(exc) == [(3, "income", "type", "abc")]


@pytest.mark.parametrize(
    ("value", "shown", "detail"),
    [
        (True, "true", True),
        ("12", "'12'", "12"),
        ([1, 2], r"\[1, 2\]", "[1, 2]"),
        ({"v": 1}, r"\{'v': 1\}", "{'v': 1}"),
    ],
)
def test_other_values_that_are_not_numbers(value: Any, shown: str, detail: Any) -> None:
    with pytest.raises(
        InputError, match=rf"^row 2, column 'score': {shown} is not a number \(expected float64\)$"
    ) as exc:
        to_columns(SIGNATURE, _bad(score=value))
    assert _errors(exc) == [(2, "score", "type", detail)]


def test_an_int64_column_takes_whole_numbers_only() -> None:
    assert to_columns(SIGNATURE, _bad(age=30.0)).columns["age"].tolist()[2] == 30.0
    with pytest.raises(
        InputError, match=r"^row 2, column 'age': 30\.5 is not a whole number \(expected int64\)$"
    ):
        to_columns(SIGNATURE, _bad(age=30.5))


def test_text_and_boolean_columns_take_their_own_types() -> None:
    with pytest.raises(
        InputError, match=r"^row 2, column 'city': 7 is not a string \(expected string\)$"
    ):
        to_columns(SIGNATURE, _bad(city=7))
    with pytest.raises(
        InputError, match=r"^row 2, column 'owner': 1 is not a boolean \(expected true or false\)$"
    ):
        to_columns(SIGNATURE, _bad(owner=1))
    with pytest.raises(InputError, match=r"^row 2, column 'owner': 'yes' is not a boolean"):
        to_columns(SIGNATURE, _bad(owner="yes"))
    batch = to_columns(SIGNATURE, _bad(owner="false"))
    assert batch.columns["owner"].tolist() == ["True", "False", "False"]


# -- NaN, Infinity and null ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-inf", " INF "])
def test_nan_and_infinity_as_strings_are_refused(text: str) -> None:
    with pytest.raises(
        InputError,
        match=rf"^row 2, column 'score': '{text}' is not a finite number \(expected float64\); "
        "send null for a missing value$",
    ) as exc:
        to_columns(SIGNATURE, _bad(score=text))
    assert _errors(exc) == [(2, "score", "not_finite", text)]


@pytest.mark.parametrize(
    ("value", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")]
)
def test_nan_and_infinity_from_python_callers_are_refused(value: float, shown: str) -> None:
    for payload in (_bad(score=value), {"columns": _columns(_bad(score=value)["rows"])}):
        with pytest.raises(
            InputError, match=rf"^row 2, column 'score': {shown} is not a finite number"
        ) as exc:
            to_columns(SIGNATURE, payload)
        assert _errors(exc) == [(2, "score", "not_finite", shown)]


def test_a_python_int_beyond_float64_is_refused() -> None:
    with pytest.raises(InputError, match=r"^row 2, column 'score': 1000000000.* is not a finite"):
        to_columns(SIGNATURE, _bad(score=10**400))


@pytest.mark.parametrize(
    ("column", "dtype"), [("income", "float64"), ("owner", "bool"), ("city", "string")]
)
def test_null_where_the_signature_says_not_nullable(column: str, dtype: str) -> None:
    with pytest.raises(
        InputError,
        match=rf"^row 2, column '{column}': null is not allowed \(the column is not nullable\); "
        rf"send a {dtype} value$",
    ) as exc:
        to_columns(SIGNATURE, _bad(**{column: None}))
    assert _errors(exc) == [(2, column, "null", None)]


def test_null_in_a_nullable_column_is_missing() -> None:
    batch = to_columns(SIGNATURE, {"rows": [ROWS[1]]})
    assert np.isnan(batch.columns["age"][0]) and np.isnan(batch.columns["score"][0])
    assert batch.columns["grade"].tolist() == [None]


# -- ranges and categories -------------------------------------------------------------------------


def test_out_of_range_numbers_are_refused_by_default() -> None:
    with pytest.raises(
        InputError,
        match=r"^row 2, column 'income': -1 is out of range \(expected between 0 and 1e\+06\)$",
    ) as exc:
        to_columns(SIGNATURE, _bad(income=-1))
    assert _errors(exc) == [(2, "income", "range", -1)]
    with pytest.raises(InputError, match=r"'age': 101 is out of range \(expected between 18 and"):
        to_columns(SIGNATURE, _bad(age=101))


def test_unknown_categories_are_refused_by_default() -> None:
    with pytest.raises(
        InputError,
        match=r"^row 2, column 'grade': 'E' is not a known category \(expected one of 'A', 'B', "
        r"'C', 'D'\)$",
    ) as exc:
        to_columns(SIGNATURE, _bad(grade="E"))
    assert _errors(exc) == [(2, "grade", "category", "E")]


def test_ranges_and_categories_can_be_let_through_and_counted() -> None:
    rows = [{**ROW, "income": -5, "grade": "E"}, ROW, {**ROW, "income": 2e6, "age": 10}]

    batch = to_columns(SIGNATURE, {"rows": rows}, strict_ranges=False)

    assert batch.columns["income"].tolist() == [-5.0, 52_000.5, 2e6]
    assert batch.columns["grade"].tolist() == ["E", "B", "B"]
    assert batch.warnings == [
        {"column": "income", "rule": "range", "count": 2, "row": 0, "value": -5},
        {"column": "age", "rule": "range", "count": 1, "row": 2, "value": 10},
        {"column": "grade", "rule": "category", "count": 1, "row": 0, "value": "E"},
    ]
    with pytest.raises(InputError, match=r"^row 0, column 'income': 'x' is not a number"):
        to_columns(SIGNATURE, {"rows": [{**ROW, "income": "x"}]}, strict_ranges=False)


def test_a_boolean_signature_may_list_its_values_in_any_case() -> None:
    signature = Signature(
        inputs=[SignatureColumn(name="owner", dtype="bool", values=["false", "true"])],
        output="number",
    )
    batch = to_columns(signature, {"rows": [{"owner": True}, {"owner": False}]})
    assert batch.columns["owner"].tolist() == ["True", "False"]


# -- many problems ---------------------------------------------------------------------------------


def test_problems_are_listed_by_row_then_column_and_capped_at_twenty() -> None:
    rows = [{**ROW, "grade": "E", "income": "x"} for _ in range(30)]

    with pytest.raises(
        InputError,
        match=r"^row 0, column 'income': 'x' is not a number \(expected float64\) "
        r"\(19 more listed in details\.errors\)$",
    ) as exc:
        to_columns(SIGNATURE, {"rows": rows})

    errors = _errors(exc)
    assert len(errors) == 20
    assert errors[:4] == [
        (0, "income", "type", "x"),
        (0, "grade", "category", "E"),
        (1, "income", "type", "x"),
        (1, "grade", "category", "E"),
    ]


def test_long_values_are_shortened_in_details() -> None:
    with pytest.raises(InputError) as exc:
        to_columns(SIGNATURE, _bad(score="9" * 500))
    value = exc.value.details["errors"][0]["value"]
    assert len(value) == 78 and value.endswith("…")
    assert len(exc.value.message) < 200


def test_a_batch_is_plain_numpy() -> None:
    batch = to_columns(SIGNATURE, {"rows": [ROW]})
    assert isinstance(batch, Batch)
    assert all(isinstance(v, np.ndarray) and len(v) == 1 for v in batch.columns.values())
    assert batch.columns["owner"].dtype == object and batch.columns["age"].dtype == np.float64


def test_an_oip_tensor_wider_than_allowed_is_refused_before_its_data_is_read() -> None:
    payload = {"inputs": [{"name": "x", "shape": [1, 100_000], "datatype": "FP64", "data": []}]}
    with pytest.raises(InputError, match=r"^inputs\[0\] \('x'\) has 100000 columns; at most 262"):
        from_oip(SIGNATURE, payload)


def test_rows_may_be_any_mapping_type_from_python_callers() -> None:
    class Row(dict[str, Any]):
        pass

    batch = to_columns(SIGNATURE, {"rows": [Row(ROW)]})
    assert batch.columns["city"].tolist() == ["Leeds"]


# -- the small-request path ----------------------------------------------------------------------

# Every cell a small request may carry, good and bad, for each kind of column of SIGNATURE.
_CELLS: dict[str, list[Any]] = {
    "income": [
        *(52_000.5, 0, 1_000_000, 7, -1, 1_000_000.5, None, "5", True, float("nan")),
        *(float("inf"), 2**53 + 1, 2**70, 10**400, [1], {"a": 1}),
    ],
    "age": [41, 18.0, 100, None, 41.5, 17, 101, False, "41", float("-inf"), 2**63],
    "score": [0.25, -3, None, 1e308, -1e308, float("nan"), float("inf"), "x", 2**53, -(2**53)],
    "grade": ["B", "A", None, "Z", "", 3, True, ["B"]],
    "owner": [True, False, "true", "False", "TRUE", None, 1, 0, "yes", 1.0],
    "city": ["Leeds", "", None, 5, False, "ä" * 100],
}


def _outcome(call: Any) -> Any:
    """What a validation call gives: the batch's columns (as type, dtype, shape, strides and
    values) and warnings, or the error's class, message and details."""
    try:
        batch = call()
    except Exception as exc:
        return type(exc).__name__, str(exc), getattr(exc, "details", None)
    columns = {
        name: (type(v), v.dtype, v.shape, v.strides, v.flags.c_contiguous, v.tolist())
        for name, v in batch.columns.items()
    }
    return batch.n, list(batch.columns), repr(columns), batch.warnings


def _general(payload: dict[str, Any], **options: Any) -> Any:
    """The general path alone: `to_columns` with the small path turned off."""
    import shipyard.serve.inputs as inputs

    real = inputs._small_rows
    inputs._small_rows = lambda *args: None  # type: ignore[assignment]
    try:
        return _outcome(lambda: to_columns(SIGNATURE, payload, **options))
    finally:
        inputs._small_rows = real


def _corpus() -> list[dict[str, Any]]:
    clean = [ROW, ROWS[2], ROW]  # no nulls: the small path's quickest case, over three rows
    payloads: list[dict[str, Any]] = [{"rows": [ROW]}, {"rows": ROWS}, {"rows": clean}]
    for name, cells in _CELLS.items():
        for cell in cells:
            payloads.append({"rows": [{**ROW, name: cell}]})
            payloads.append({"rows": [ROW, {**ROWS[1], name: cell}, ROWS[2]]})
            payloads.append({"rows": [ROW, {**ROWS[2], name: cell}]})
    missing = {k: v for k, v in ROW.items() if k != "age"}
    payloads += [
        {"rows": []},
        {"rows": [missing]},
        {"rows": [ROW, missing]},
        {"rows": [{**ROW, "extra": 1}]},
        {"rows": [{**missing, "extra": 1}]},
        {"rows": [ROW] * 9},  # beyond the small path's rows
        {"rows": [ROW, [1, 2]]},
        {"rows": ROW},
        {"rows": [dict(ROW, age=1, grade="Z", owner="maybe", city=None, income=-1)]},
    ]
    return payloads


@pytest.mark.parametrize("options", [{}, {"strict_ranges": False}, {"allow_extra": True}])
def test_small_requests_give_the_same_batches_and_errors_as_the_general_path(
    options: dict[str, Any],
) -> None:
    corpus = _corpus()
    assert len(corpus) > 120
    for payload in corpus:
        fast = _outcome(lambda p=payload: to_columns(SIGNATURE, p, **options))  # type: ignore[misc]
        assert fast == _general(payload, **options), payload


def test_limits_apply_to_small_requests_as_to_any() -> None:
    payload = {"rows": [ROW, ROW]}
    for options in ({"max_rows": 1}, {"max_columns": 3}):
        fast = _outcome(lambda o=options: to_columns(SIGNATURE, payload, **o))  # type: ignore[misc]
        assert fast == _general(payload, **options)
        assert fast[0] == "InputError"


def test_a_clean_small_request_does_not_reach_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shipyard.serve.inputs as inputs

    def general(*args: Any) -> Batch:
        raise AssertionError("the general path was used")

    monkeypatch.setattr(inputs, "_from_rows", general)
    batch = to_columns(SIGNATURE, {"rows": ROWS})
    assert batch.columns["age"].tolist()[1] != batch.columns["age"].tolist()[1]  # None: NaN
    assert batch.columns["owner"].tolist() == ["True", "False", "True"]
    batch = to_columns(SIGNATURE, {"rows": [ROW]})
    assert batch.columns["income"].tolist() == [52_000.5]
