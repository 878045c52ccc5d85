"""Request bodies → validated NumPy columns, checked against a model's `Signature`.

Three request forms carry the same table:

    {"rows": [{"income": 52000, "grade": "B"}, ...]}             records
    {"columns": {"income": [52000, ...], "grade": ["B", ...]}}    columnar
    {"inputs": [{"name": "income", "shape": [2], "datatype": "FP64", "data": [...]}, ...]}
                                                                  Open Inference Protocol v2

and all three become one `Batch`: a float64 array per numeric column (NaN where null) and an
object array of `str` (None where null) per string or bool column, in signature order. Booleans
arrive as JSON true/false (or "true"/"false") and become "True"/"False"; int64 columns take
whole numbers only; timestamp and date columns take ISO text, passed through as strings.

The hot path builds no pandas objects and no per-row Python objects beyond what JSON decoding
made: each column's values are checked as a whole (`set(map(type, values))`, then one NumPy
conversion and array comparisons for nulls, finiteness, whole numbers and ranges; set
differences for categories). Only when a check fails does the code walk the values one by one,
to name the rows. A small request in the rows form (up to `SMALL_ROWS` rows, the common
one-row prediction) is first checked value by value in plain Python, which costs less than
the NumPy calls on arrays that small; at the first thing that is not clean (a problem, a
warning, anything unusual) it hands the request to the general path, so the result and every
error are the same either way. Every problem is an `InputError` (HTTP 422) whose
`details["errors"]` lists up to 20 of them as `{"row", "column", "rule", "value"}`, and whose
message names the first.

Rules: `json`, `empty`, `shape`, `too_many_rows`, `too_many_columns`, `missing_column`,
`extra_column`, `missing`, `length`, `datatype`, `type`, `not_finite`, `null`, `range`,
`category`. With `strict_ranges=False` (serving's default), `range` and `category` problems let
the request through and are counted in `Batch.warnings` instead.

A request may also carry the columns the signature lists as `carried` (the training data's id
and sensitive columns, as rows taken from it do): they are checked for type, kept apart in
`Batch.carried` for the prediction log, and never given to the model. Any other column is an
`extra_column` error unless `allow_extra` (the endpoint's `extra_columns=ignore`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter, le
from typing import Any, Final, Literal

import numpy as np
import orjson

from shipyard.core.errors import Invalid
from shipyard.core.records import Signature, SignatureColumn

MAX_ROWS: Final = 10_000
"""Default limit on rows per request."""
EXTRA_COLUMNS: Final = 256
"""How many columns beyond the signature's a request may name before it is refused unread."""
MAX_ERRORS: Final = 20
"""At most this many problems are listed in `InputError.details["errors"]`."""
SMALL_ROWS: Final = 8
"""Requests in the rows form up to this many rows are checked value by value first."""

Kind = Literal["number", "integer", "string", "bool", "text", "id"]
_NONE: Final = type(None)
_NUMBER_TYPES: Final = frozenset({int, float})
_NUMBER_OR_NONE: Final = frozenset({int, float, _NONE})
_BOOL_TEXT: Final[dict[object, str]] = {
    True: "True",
    False: "False",
    "true": "True",
    "True": "True",
    "false": "False",
    "False": "False",
}
_NON_FINITE_TEXT: Final = frozenset(
    {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)
_OIP_NUMERIC: Final = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32"}
    | {"UINT64"}
)
_EXAMPLE = '{"rows": [{"column": value, ...}]} or {"columns": {"column": [values]}}'


class InputError(Invalid):
    """A request body that does not fit the model's signature (HTTP 422).

    `details["errors"]` holds up to 20 problems, each `{"row", "column", "rule", "value"}`
    (`row` and `column` are None where the problem is not about one cell).
    """


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Block:
    """Columns of a batch held as the rows of one (columns, rows) matrix: the batch's column
    `names[i]` is `matrix[i]`. Joining batches (the micro-batcher, the prediction log) then
    costs one array operation per block, not one per column."""

    names: tuple[str, ...]
    matrix: np.ndarray


class BlockColumns(Mapping[str, np.ndarray]):
    """The columns of a batch's blocks, by name, in signature order: each a view of its row
    of the block's matrix, made when it is read. A one-row request's batch is read by column
    rarely (the model and the log take the blocks whole), and making sixteen views up front,
    then freeing them, was 12% of the app's instructions per one-row request (callgrind,
    `benchmarks/serving/instructions.py`)."""

    __slots__ = ("_blocks", "_names", "_where")

    def __init__(
        self,
        names: tuple[str, ...],
        blocks: Sequence[Block],
        where: Mapping[str, tuple[int, int]],
    ) -> None:
        self._names = names
        self._blocks = blocks
        self._where = where  # name → (block, row of its matrix)

    def __getitem__(self, name: str) -> np.ndarray:
        k, i = self._where[name]
        return self._blocks[k].matrix[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Batch:
    """Validated request columns, in signature order, all of length `n`.

    `warnings` counts the range and category problems let through by `strict_ranges=False`:
    `[{"column": "income", "rule": "range", "count": 3, "row": 0, "value": -5.0}, ...]`
    (`row`/`value` is the first example). `blocks` says which columns are rows of one matrix
    (`Block`); columns in none are arrays of their own. `schema`, where the fast path knows
    it, is (column names, each block's names, each block's dtype): the same for every batch
    of a signature, what the prediction log groups answers by (`predlog._layout`).
    `carried` holds the signature's carried columns the request sent (the id as text, the
    others float64 or text), or None: logged, never predicted on.
    """

    n: int
    columns: Mapping[str, np.ndarray]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    blocks: tuple[Block, ...] = ()
    schema: tuple[Any, ...] | None = None
    carried: dict[str, np.ndarray] | None = None

    def take(self, rows: slice | np.ndarray) -> Batch:
        """The batch of these rows: a slice (views) or an array of row positions.

        >>> batch.take(slice(i, i + 1))           # row i alone
        """
        n = len(range(self.n)[rows]) if isinstance(rows, slice) else len(rows)
        return Batch(n, {name: values[rows] for name, values in self.columns.items()})

    def logged(self) -> Batch:
        """The batch as the prediction log takes it: the model's columns, then the carried
        ones (the batch itself when it carries none)."""
        if not self.carried:
            return self
        return Batch(self.n, {**self.columns, **self.carried}, self.warnings)


def join_columns(
    columns: Sequence[Mapping[str, np.ndarray]], blocks: Sequence[tuple[Block, ...]]
) -> tuple[dict[str, np.ndarray], tuple[Block, ...]]:
    """The columns of several batches (the same names in each, with their `blocks`) joined
    row-wise, in order: a block all of them have is joined as one matrix, every other column
    on its own. Returns the joined columns, in the first batch's order, and blocks.

    >>> columns, blocks = join_columns([a.columns, b.columns], [a.blocks, b.blocks])
    """
    first = columns[0]
    shared = blocks[0]
    names = tuple(block.names for block in shared)
    if any(len(b) != len(shared) or tuple(x.names for x in b) != names for b in blocks[1:]):
        shared = ()
    out: dict[str, np.ndarray] = {}
    joined = []
    for k, block in enumerate(shared):
        matrix = np.concatenate([b[k].matrix for b in blocks], axis=1)
        joined.append(Block(block.names, matrix))
        out.update(zip(block.names, matrix, strict=True))
    for name in first:
        if name not in out:
            out[name] = np.concatenate([c[name] for c in columns])
    return ({name: out[name] for name in first} if joined else out), tuple(joined)


def decode(body: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parse a request body as a JSON object.

    >>> decode(b'{"rows": [{"income": 52000}]}')
    {'rows': [{'income': 52000}]}
    """
    if not body:
        raise _empty()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not (body.strip() if isinstance(body, str | bytes | bytearray) else bytes(body).strip()):
            raise _empty() from exc
        raise _single(
            "json",
            f"the request body is not valid JSON ({exc}); send a JSON object such as {_EXAMPLE}. "
            "Missing values are null (NaN and Infinity are not JSON).",
        ) from exc
    if not isinstance(payload, dict):
        raise _single(
            "shape",
            f"the request body is a JSON {_json_type(payload)}, not an object; send a JSON "
            f"object such as {_EXAMPLE}.",
        )
    return payload


def _empty() -> InputError:
    return _single("empty", f"the request body is empty; send a JSON object such as {_EXAMPLE}.")


def to_columns(
    signature: Signature,
    payload: Mapping[str, Any],
    *,
    allow_extra: bool = False,
    strict_ranges: bool = True,
    max_rows: int = MAX_ROWS,
    max_columns: int | None = None,
) -> Batch:
    """Validate a decoded request (`rows`, `columns` or OIP `inputs`) against `signature`.

    >>> batch = to_columns(sig, {"rows": [{"income": 52000, "grade": "B"}]})
    >>> batch.n, batch.columns["income"]
    (1, array([52000.]))

    `allow_extra` ignores columns the signature does not list (else they are errors);
    `strict_ranges=False` lets out-of-range numbers and unknown categories through, counted in
    `Batch.warnings`; `max_columns` defaults to the signature's columns plus 256. Other
    top-level keys (an OIP `id` or `parameters`, say) are left to the caller.
    """
    spec = _spec(signature)
    options = _Options(allow_extra, strict_ranges, max_rows, max_columns or spec.width)
    forms = [key for key in ("rows", "columns", "inputs") if key in payload]
    if len(forms) != 1:
        got = ", ".join(repr(k) for k in list(payload)[:10]) or "no keys"
        what = "more than one of" if forms else "none of"
        raise _single(
            "shape",
            f"the request has {what} 'rows', 'columns' and 'inputs' (it has {got}); send "
            f"exactly one, such as {_EXAMPLE}.",
        )
    if forms[0] == "rows":
        small = _small_rows(spec, payload["rows"], options)
        return small if small is not None else _from_rows(spec, payload["rows"], options)
    if forms[0] == "columns":
        return _from_columns(spec, payload["columns"], options)
    return _from_oip(spec, payload, options)


def from_oip(
    signature: Signature,
    payload: Mapping[str, Any],
    *,
    allow_extra: bool = False,
    strict_ranges: bool = True,
    max_rows: int = MAX_ROWS,
    max_columns: int | None = None,
) -> Batch:
    """Validate an Open Inference Protocol v2 request body against `signature`.

    One tensor per column (`shape` `[n]` or `[n, 1]`), or one `[n, k]` tensor whose columns
    are the signature's `k` inputs in order:

    >>> from_oip(sig, {"inputs": [{"name": "income", "shape": [1], "datatype": "FP64",
    ...                            "data": [52000.0]}, ...]})
    """
    spec = _spec(signature)
    options = _Options(allow_extra, strict_ranges, max_rows, max_columns or spec.width)
    return _from_oip(spec, payload, options)


# -- the signature, prepared once ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    dtype: str
    kind: Kind
    nullable: bool
    low: float | None
    high: float | None
    values: frozenset[str] | None
    shown_values: str


@dataclass(frozen=True, slots=True)
class _Spec:
    columns: tuple[_Column, ...]
    names: tuple[str, ...]
    name_set: frozenset[str]
    position: dict[str, int]
    width: int
    numeric: tuple[int, ...]  # positions of the number and integer columns
    textual: tuple[int, ...]  # positions of the others
    integer: tuple[int, ...]  # indices into `numeric` of the integer columns
    low: np.ndarray | None  # (len(numeric), 1) lower bounds (-inf where none), or None
    high: np.ndarray | None
    # For `_small_rows`: (name, nullable, integer, low, high) of each numeric column and
    # (name, kind, nullable, allowed values) of each other one, in `numeric`/`textual` order.
    small_numeric: tuple[tuple[str, bool, bool, float, float], ...]
    small_textual: tuple[tuple[str, Kind, bool, frozenset[str] | None], ...]
    # The numeric values of a row as a tuple, and the bounds they must be within (the largest
    # finite floats where the signature has none, so that the comparison also refuses
    # infinities and NaN), and the positions in that tuple of the integer columns.
    small_values: Callable[[dict[str, Any]], tuple[Any, ...]]
    small_low: tuple[float, ...]
    small_high: tuple[float, ...]
    small_integer: tuple[int, ...]
    numeric_names: tuple[str, ...]  # the names of the `numeric` and `textual` columns
    textual_names: tuple[str, ...]
    small_schema: tuple[Any, ...]  # `Batch.schema` of what `_small_rows` builds
    small_where: dict[str, tuple[int, int]]  # each column's (block, row) there
    carried: dict[str, _Column]  # columns a request may carry that the model does not take
    target: str | None  # the training data's target: named as such when a request sends it


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class _Options:
    allow_extra: bool
    strict_ranges: bool
    max_rows: int
    max_columns: int


_SPECS: dict[int, tuple[Signature, _Spec]] = {}


def _spec(signature: Signature) -> _Spec:
    """The signature prepared for checking; cached (records are frozen, so `id` is a key while
    the cache holds the record)."""
    cached = _SPECS.get(id(signature))
    if cached is not None and cached[0] is signature:
        return cached[1]
    spec = _prepare(signature)
    if len(_SPECS) >= 256:
        _SPECS.clear()
    _SPECS[id(signature)] = (signature, spec)
    return spec


def _prepare(signature: Signature) -> _Spec:
    columns = tuple(_prepare_column(c) for c in signature.inputs)
    names = tuple(c.name for c in columns)
    carried = {
        c.name: _prepare_column(c.model_copy(update={"nullable": True}))
        for c in signature.carried or ()
        if c.name not in names
    }
    if signature.id_column in carried:
        id_column = carried[signature.id_column]
        carried[id_column.name] = _Column(id_column.name, "id", "id", True, None, None, None, "")
    numeric = tuple(i for i, c in enumerate(columns) if c.kind in ("number", "integer"))
    bounded = any(columns[i].low is not None or columns[i].high is not None for i in numeric)
    low = high = None
    if bounded:
        low = np.array([[_or(columns[i].low, -np.inf)] for i in numeric], dtype=np.float64)
        high = np.array([[_or(columns[i].high, np.inf)] for i in numeric], dtype=np.float64)
    small_numeric = tuple(
        (c.name, c.nullable, c.kind == "integer", _or(c.low, -np.inf), _or(c.high, np.inf))
        for c in (columns[i] for i in numeric)
    )
    small_textual = tuple(
        (c.name, c.kind, c.nullable, c.values) for i, c in enumerate(columns) if i not in numeric
    )
    numeric_names = [name for name, *_ in small_numeric]
    textual_names = tuple(name for name, *_ in small_textual)
    # `_small_rows` always makes the numbers' block (of no rows where there are no numbers)
    block_names = (tuple(numeric_names),) + (textual_names,) * bool(textual_names)
    dtypes = (np.dtype(np.float64),) + (np.dtype(object),) * bool(textual_names)
    largest = float(np.finfo(np.float64).max)
    return _Spec(
        columns=columns,
        names=names,
        name_set=frozenset(names),
        position={name: i for i, name in enumerate(names)},
        width=len(names) + EXTRA_COLUMNS,
        numeric=numeric,
        textual=tuple(i for i in range(len(columns)) if i not in numeric),
        integer=tuple(r for r, i in enumerate(numeric) if columns[i].kind == "integer"),
        low=low,
        high=high,
        small_numeric=small_numeric,
        small_textual=small_textual,
        small_values=_values_of(numeric_names),
        small_low=tuple(max(low, -largest) for *_, low, _high in small_numeric),
        small_high=tuple(min(high, largest) for *_, high in small_numeric),
        small_integer=tuple(k for k, column in enumerate(small_numeric) if column[2]),
        numeric_names=tuple(numeric_names),
        textual_names=textual_names,
        small_schema=(names, block_names, dtypes),
        small_where={
            name: (k, i) for k, block in enumerate(block_names) for i, name in enumerate(block)
        },
        carried=carried,
        target=signature.target,
    )


def _values_of(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function that takes these keys' values out of a dict, as a tuple (KeyError if not)."""
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    if not names:
        return lambda row: ()
    return itemgetter(*names)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _prepare_column(column: SignatureColumn) -> _Column:
    kind: Kind
    if column.dtype == "float64":
        kind = "number"
    elif column.dtype == "int64":
        kind = "integer"
    elif column.dtype == "bool":
        kind = "bool"
    elif column.dtype == "string":
        kind = "string"
    else:  # timestamp, date: ISO text, passed through as strings
        kind = "text"
    values = None
    if column.values is not None and kind in ("string", "bool"):
        if kind == "bool":
            values = frozenset(
                _BOOL_TEXT.get(v, _BOOL_TEXT.get(v.lower(), v)) for v in column.values
            )
        else:
            values = frozenset(column.values)
    shown = ", ".join(repr(v) for v in sorted(values)[:10]) if values is not None else ""
    if values is not None and len(values) > 10:
        shown += f", … ({len(values)} in all)"
    numeric = kind in ("number", "integer")
    return _Column(
        name=column.name,
        dtype=column.dtype,
        kind=kind,
        nullable=column.nullable,
        low=column.min if numeric else None,
        high=column.max if numeric else None,
        values=values,
        shown_values=shown,
    )


# -- the three request forms --------------------------------------------------------------------


def _from_rows(spec: _Spec, rows: Any, options: _Options) -> Batch:
    if not isinstance(rows, list):
        raise _single(
            "shape",
            f"'rows' is a JSON {_json_type(rows)}; send a list of objects, one per row, such as "
            '{"rows": [{"column": value, ...}]}.',
        )
    n = len(rows)
    _check_rows(n, options)
    if set(map(type, rows)) != {dict} and not all(isinstance(r, dict) for r in rows):
        row = next(i for i, r in enumerate(rows) if not isinstance(r, dict))
        raise _single(
            "shape",
            f"row {row} is a JSON {_json_type(rows[row])}, not an object; each row is "
            '{"column": value, ...}.',
            row=row,
            value=_shown(rows[row]),
        )
    widths = set(map(len, rows))
    widest = max(widths)
    if widest > options.max_columns:
        raise _too_many_columns(widest, spec, options)
    values: dict[str, list[Any]] = {}
    for name in spec.names:
        try:
            values[name] = list(map(itemgetter(name), rows))
        except KeyError:
            raise _missing_in_rows(spec, rows) from None
    carried: dict[str, list[Any]] | None = None
    if widths != {len(spec.names)}:  # more keys than the model's columns in some row
        keys = set().union(*rows) - spec.name_set
        if not options.allow_extra and not keys.issubset(spec.carried):
            raise _extra_in_rows(spec, rows)
        carried = {name: [row.get(name) for row in rows] for name in spec.carried if name in keys}
    return _build(spec, values, n, options, carried)


_EXACT_INT: Final = 2**53  # ints up to this size are floats exactly


def _small_rows(spec: _Spec, rows: Any, options: _Options) -> Batch | None:
    """The rows form of a small request whose every value is clean, checked in plain Python;
    None at the first thing that is not, and the general path (`_from_rows`) takes the request
    from the start: it names the problems, and counts the warnings `strict_ranges=False` lets
    through. Where it returns a batch it is the one `_from_rows` would have built."""
    if type(rows) is not list:
        return None
    n = len(rows)
    width = len(spec.names)
    if not 0 < n <= SMALL_ROWS or n > options.max_rows or width > options.max_columns:
        return None
    for row in rows:
        if type(row) is not dict or len(row) != width:  # extra or missing columns
            return None
    matrix: np.ndarray | None = None
    numbers: list[float] = []  # column after column, each n values
    textual: list[list[str | None]] = []  # the other columns' values, column after column
    append = numbers.append
    try:
        # First all of a row's numbers at once, in C: ints and floats within the bounds
        # (which refuses NaN and infinities too), whole where the column is int64.
        low, high, values_of = spec.small_low, spec.small_high, spec.small_values
        table = [values_of(row) for row in rows]
        if all(
            set(map(type, values)) <= _NUMBER_TYPES
            and all(map(le, low, values))
            and all(map(le, values, high))
            for values in table
        ):
            for k in spec.small_integer:
                for values in table:
                    value = values[k]
                    if type(value) is float and not value.is_integer():
                        return None
            try:
                matrix = np.array(table, dtype=np.float64).T.copy()
            except OverflowError:  # an int beyond float64, from a Python caller
                return None
        else:  # value by value: None where a column is nullable; ints beyond 2**53 refused
            for name, nullable, integer, low_k, high_k in spec.small_numeric:
                for row in rows:
                    value = row[name]
                    cls = type(value)
                    if cls is float:
                        if not math.isfinite(value) or (integer and not value.is_integer()):
                            return None
                    elif cls is int:
                        if not -_EXACT_INT <= value <= _EXACT_INT:
                            return None
                        value = float(value)
                    elif value is None and nullable:
                        append(math.nan)
                        continue
                    else:
                        return None
                    if value < low_k or value > high_k:
                        return None
                    append(value)
        for name, kind, nullable, allowed in spec.small_textual:
            texts: list[str | None] = []
            for row in rows:
                value = row[name]
                if value is None:
                    if not nullable:
                        return None
                    texts.append(None)
                    continue
                if kind == "bool":
                    if type(value) is not bool and type(value) is not str:
                        return None
                    value = _BOOL_TEXT.get(value)
                    if value is None:
                        return None
                elif type(value) is not str:
                    return None
                if allowed is not None and value not in allowed:
                    return None
                texts.append(value)
            textual.append(texts)
    except KeyError:  # a column missing from a row
        return None
    if matrix is None:  # (columns, rows), C order: each column one row (`Block`)
        matrix = np.array(numbers, dtype=np.float64).reshape(len(spec.small_numeric), n)
    blocks: tuple[Block, ...] = (Block(spec.numeric_names, matrix),)
    if textual:
        blocks += (Block(spec.textual_names, np.array(textual, dtype=object)),)
    columns = BlockColumns(spec.names, blocks, spec.small_where)
    return Batch(n, columns, [], blocks, spec.small_schema)


def _from_columns(spec: _Spec, columns: Any, options: _Options) -> Batch:
    if not isinstance(columns, dict):
        raise _single(
            "shape",
            f"'columns' is a JSON {_json_type(columns)}; send an object of lists, one per "
            'column, such as {"columns": {"column": [value, ...]}}.',
        )
    if len(columns) > options.max_columns:
        raise _too_many_columns(len(columns), spec, options)
    carried = _check_names(spec, columns.keys(), options)
    values: dict[str, list[Any]] = {}
    n = -1
    for name in (*spec.names, *carried):
        column = columns[name]
        if not isinstance(column, list):
            raise _single(
                "shape",
                f"column {name!r} is a JSON {_json_type(column)}; in the columnar form each "
                "column is a list of values, one per row.",
                column=name,
                value=_shown(column),
            )
        if n < 0:
            n = len(column)
            _check_rows(n, options)
        elif len(column) != n:
            raise _length(spec.names[0], n, name, len(column))
        values[name] = column
    return _build(spec, values, n, options, {name: values[name] for name in carried} or None)


def _from_oip(spec: _Spec, payload: Mapping[str, Any], options: _Options) -> Batch:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _single(
            "shape",
            "'inputs' must be a non-empty list of tensors, each "
            '{"name": column, "shape": [n], "datatype": "FP64", "data": [...]} '
            "(Open Inference Protocol v2).",
        )
    if len(inputs) > options.max_columns:
        raise _too_many_columns(len(inputs), spec, options)
    tensors = [_tensor(t, i, options) for i, t in enumerate(inputs)]
    if len(tensors) == 1 and tensors[0][0] not in spec.name_set and tensors[0][2] > 1:
        return _from_matrix(spec, tensors[0], options)
    values: dict[str, list[Any]] = {}
    n = -1
    for name, datatype, width, rows, data in tensors:
        if width != 1:
            raise _single(
                "shape",
                f"input {name!r} has shape [{rows}, {width}]; send one tensor per column with "
                f"shape [n] or [n, 1], or a single [n, {len(spec.names)}] tensor of all columns.",
                column=name,
            )
        if name in values:
            raise _single("shape", f"input {name!r} is given twice.", column=name)
        if n < 0:
            n = rows
            _check_rows(n, options)
        elif rows != n:
            first = next(iter(values))
            raise _length(first, n, name, rows)
        values[name] = data
        column = spec.columns[spec.position[name]] if name in spec.position else None
        if column is not None and not _datatype_fits(column, datatype):
            raise _datatype(column, datatype)
    carried = _check_names(spec, values.keys(), options)
    return _build(
        spec,
        {name: values[name] for name in spec.names},
        n,
        options,
        {name: values[name] for name in carried} or None,
    )


def _from_matrix(
    spec: _Spec, tensor: tuple[str, str, int, int, list[Any]], options: _Options
) -> Batch:
    name, datatype, width, n, data = tensor
    if width != len(spec.names):
        raise _single(
            "shape",
            f"input {name!r} has shape [{n}, {width}], but the model takes {len(spec.names)} "
            f"columns ({_names(spec.names)}); send [n, {len(spec.names)}] with the columns in "
            "that order, or one tensor per column named after it.",
            column=name,
        )
    _check_rows(n, options)
    for column in spec.columns:
        if not _datatype_fits(column, datatype):
            raise _datatype(column, datatype)
    values = {column: data[j::width] for j, column in enumerate(spec.names)}
    return _build(spec, values, n, options)


def _tensor(raw: Any, index: int, options: _Options) -> tuple[str, str, int, int, list[Any]]:
    """(name, datatype, width, rows, flat data) of one OIP input tensor."""
    if not isinstance(raw, dict):
        raise _single(
            "shape",
            f"inputs[{index}] is a JSON {_json_type(raw)}; each input is an object with name, "
            "shape, datatype and data.",
        )
    name, shape, datatype, data = (raw.get(k) for k in ("name", "shape", "datatype", "data"))
    where = f"inputs[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise _single("shape", f"{where} needs a string 'name' and 'datatype'.")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise _single(
            "shape",
            f"{where} has shape {_shown(shape)}; expected [n] or [n, k] with whole numbers.",
            column=name,
        )
    rows, width = shape[0], (shape[1] if len(shape) == 2 else 1)
    if rows > options.max_rows:
        raise _too_many_rows(rows, options)
    if width > options.max_columns:
        raise _single(
            "too_many_columns",
            f"{where} has {width} columns; at most {options.max_columns} are accepted.",
            column=name,
            value=width,
        )
    if not isinstance(data, list):
        raise _single("shape", f"{where} has no 'data' list (got {_json_type(data)}).", column=name)
    if len(data) == rows and data and isinstance(data[0], list):  # nested: one list per row
        if any(not isinstance(r, list) or len(r) != width for r in data):
            raise _single(
                "shape", f"{where}: nested 'data' must hold {rows} lists of {width}.", column=name
            )
        data = list(chain.from_iterable(data))
    if len(data) != rows * width:
        raise _single(
            "shape",
            f"{where} has {len(data)} values in 'data' but its shape {shape} needs {rows * width}.",
            column=name,
        )
    return name, datatype.upper(), width, rows, data


def _datatype_fits(column: _Column, datatype: str) -> bool:
    if column.kind in ("number", "integer"):
        return datatype in _OIP_NUMERIC
    if column.kind == "bool":
        return datatype in ("BOOL", "BYTES")
    return datatype == "BYTES"


def _datatype(column: _Column, datatype: str) -> InputError:
    expected = {"number": "FP64", "integer": "INT64", "bool": "BOOL"}.get(column.kind, "BYTES")
    return _single(
        "datatype",
        f"input {column.name!r} has datatype {datatype}, but the column is {column.dtype}; "
        f"send it as {expected}.",
        column=column.name,
        value=datatype,
    )


# -- request-level checks -----------------------------------------------------------------------


def _check_rows(n: int, options: _Options) -> None:
    if n > options.max_rows:
        raise _too_many_rows(n, options)
    if n == 0:
        raise _single("empty", "the request has no rows; send at least one.")


def _too_many_rows(n: int, options: _Options) -> InputError:
    return _single(
        "too_many_rows",
        f"the request has {n} rows; at most {options.max_rows} are accepted per request. "
        "Split it into smaller requests.",
        value=n,
    )


def _too_many_columns(count: int, spec: _Spec, options: _Options) -> InputError:
    return _single(
        "too_many_columns",
        f"the request has {count} columns; the model takes {len(spec.names)} and at most "
        f"{options.max_columns} are accepted. Send only the model's columns "
        f"({_names(spec.names)}).",
        value=count,
    )


def _check_names(spec: _Spec, given: Any, options: _Options) -> list[str]:
    """The carried columns among `given` (names of a columnar or OIP request); InputError for
    a missing column, or an unknown one unless `allow_extra`."""
    keys = set(given)
    missing = [name for name in spec.names if name not in keys]
    unknown = keys - spec.name_set
    carried = [name for name in spec.carried if name in unknown]
    extra = [] if options.allow_extra else sorted(unknown.difference(spec.carried), key=str)
    if not missing and not extra:
        return carried
    errors = [_problem(None, name, "missing_column", None) for name in missing]
    errors += [_problem(None, name, "extra_column", None) for name in extra]
    if missing:
        message = (
            f"column {missing[0]!r} is missing; the model takes {_names(spec.names)} "
            "(send null for a missing value in a nullable column)."
        )
    else:
        message = _not_an_input(spec, extra[0])
    raise _error(message, errors)


def _missing_in_rows(spec: _Spec, rows: list[dict[str, Any]]) -> InputError:
    absent = [name for name in spec.names if not any(name in r for r in rows)]
    if absent:
        errors = [_problem(None, name, "missing_column", None) for name in absent]
        return _error(
            f"column {absent[0]!r} is missing; the model takes {_names(spec.names)} "
            "(send null for a missing value in a nullable column).",
            errors,
        )
    errors = []
    for i, row in enumerate(rows):
        errors += [_problem(i, name, "missing", None) for name in spec.names if name not in row]
        if len(errors) >= MAX_ERRORS:
            break
    first = errors[0]
    return _error(
        f"row {first['row']}, column {first['column']!r}: missing; every row needs every column "
        "(send null for a missing value in a nullable column).",
        errors,
    )


def _extra_in_rows(spec: _Spec, rows: list[dict[str, Any]]) -> InputError:
    errors = []
    for i, row in enumerate(rows):
        if len(row) != len(spec.names):
            errors += [
                _problem(i, key, "extra_column", None)
                for key in row
                if key not in spec.name_set and key not in spec.carried
            ]
            if len(errors) >= MAX_ERRORS:
                break
    first = errors[0]
    return _error(f"row {first['row']}, {_not_an_input(spec, first['column'])}", errors)


def _not_an_input(spec: _Spec, name: str) -> str:
    if name == spec.target:
        return (
            f"column {name!r} is the target this model predicts, not an input. Remove it; send "
            "known labels to POST /v1/endpoints/NAME/feedback (or let unknown columns through "
            "unread with the endpoint's flag extra_columns=ignore)."
        )
    return (
        f"column {name!r} is not an input of this model; it takes {_names(spec.names)}"
        f"{_also(spec)}. {_REMOVE}"
    )


_REMOVE = (
    "Remove the column, or set the endpoint's flag extra_columns=ignore to let unknown "
    "columns through unread."
)


def _also(spec: _Spec) -> str:
    """What else a request may carry, for the messages about columns."""
    if not spec.carried:
        return ""
    return f" and may carry {_names(tuple(spec.carried))} (logged, not given to the model)"


def _length(first: str, n: int, name: str, count: int) -> InputError:
    return _single(
        "length",
        f"column {name!r} has {count} values but column {first!r} has {n}; every column needs "
        "one value per row.",
        column=name,
        value=count,
    )


# -- per-column checks --------------------------------------------------------------------------


class _Problems:
    """Collects cell problems and the warnings let through; messages are only written for the
    ones reported."""

    __slots__ = ("cells", "strict", "warnings")

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.cells: list[tuple[int, int, _Column, str, Any]] = []
        self.warnings: list[dict[str, Any]] = []

    def add(self, position: int, row: int, column: _Column, rule: str, value: Any) -> None:
        self.cells.append((row, position, column, rule, value))

    def soft(
        self, position: int, column: _Column, rule: str, rows: np.ndarray, values: Sequence[Any]
    ) -> None:
        """Range and category problems: errors when strict, else one warning per column."""
        if self.strict:
            for row in rows[:MAX_ERRORS]:
                self.add(position, int(row), column, rule, values[int(row)])
            return
        first = int(rows[0])
        self.warnings.append(
            {
                "column": column.name,
                "rule": rule,
                "count": len(rows),
                "row": first,
                "value": _shown(values[first]),
            }
        )

    def error(self) -> InputError:
        self.cells.sort(key=itemgetter(0, 1))
        listed = self.cells[:MAX_ERRORS]
        row, _position, column, rule, value = listed[0]
        more = len(listed) - 1
        tail = f" ({more} more listed in details.errors)" if more else ""
        return _error(
            f"row {row}, column {column.name!r}: {_describe(column, rule, value)}{tail}",
            [_problem(r, c.name, rule_, _shown(v)) for r, _p, c, rule_, v in listed],
        )


def _build(
    spec: _Spec,
    values: dict[str, list[Any]],
    n: int,
    options: _Options,
    carried: dict[str, list[Any]] | None = None,
) -> Batch:
    problems = _Problems(options.strict_ranges)
    columns: dict[str, np.ndarray] = {}
    if spec.numeric:
        _numbers(spec, [values[spec.names[i]] for i in spec.numeric], problems, columns)
    for position in spec.textual:
        column = spec.columns[position]
        columns[column.name] = _strings(position, column, values[column.name], problems)
    kept = _carried(spec, carried, problems) if carried else None
    if problems.cells:
        raise problems.error()
    return Batch(n, {name: columns[name] for name in spec.names}, problems.warnings, carried=kept)


def _carried(
    spec: _Spec, carried: dict[str, list[Any]], problems: _Problems
) -> dict[str, np.ndarray]:
    """The carried columns as the log keeps them: the id as text (whole numbers written out),
    numbers as float64, the rest as text; a value of another type is a `type` problem."""
    out: dict[str, np.ndarray] = {}
    for k, (name, raw) in enumerate(carried.items()):
        column, position = spec.carried[name], len(spec.names) + k
        types = set(map(type, raw)) - {_NONE}
        if column.kind == "id":
            if not types <= {str}:
                raw = [_id_text(value) for value in raw]
                for row in [i for i, value in enumerate(raw) if value is _BAD][:MAX_ERRORS]:
                    problems.add(position, row, column, "type", carried[name][row])
            out[name] = np.array(raw, dtype=object)
        elif column.kind in ("number", "integer"):
            try:
                if not types <= _NUMBER_TYPES:
                    raise TypeError
                out[name] = np.array(raw, dtype=np.float64)
            except (TypeError, OverflowError):  # name the values that are not numbers
                _name_bad_numbers(spec, -1, raw, problems, column, position)
        else:
            texts = _strings(position, column, raw, problems)
            out[name] = texts if len(texts) == len(raw) else np.empty(0, dtype=object)
    return out


_BAD: Final = object()


def _id_text(value: Any) -> Any:
    """An id as text: strings as they are, whole numbers written out; `_BAD` for others."""
    if value is None or type(value) is str:
        return value
    if type(value) is int or (type(value) is float and value.is_integer()):
        return str(int(value))
    return _BAD


def _numbers(
    spec: _Spec,
    lists: list[list[Any]],
    problems: _Problems,
    out: dict[str, np.ndarray],
    block: list[int] | None = None,
) -> None:
    """Numeric columns at once: one type scan, one conversion to a (columns, rows) float64
    matrix, then a handful of array operations whatever the number of columns. `block` says
    which of `spec.numeric` the `lists` are (all of them by default)."""
    rows_of = block if block is not None else range(len(spec.numeric))
    types = set(map(type, chain.from_iterable(lists)))
    matrix: np.ndarray | None = None
    if types <= _NUMBER_OR_NONE:
        try:
            matrix = np.array(lists, dtype=np.float64)
        except OverflowError:  # an int beyond float64, from a Python caller
            matrix = None
    if matrix is None:
        if block is None:  # name the bad values, and check the clean columns as usual
            clean = [k for k, raw in enumerate(lists) if set(map(type, raw)) <= _NUMBER_OR_NONE]
            for k in sorted(set(range(len(lists))) - set(clean)):
                _name_bad_numbers(spec, k, lists[k], problems)
            if clean:
                _numbers(spec, [lists[k] for k in clean], problems, out, clean)
        else:
            for k, r in enumerate(rows_of):
                _name_bad_numbers(spec, r, lists[k], problems)
        return
    if float in types or _NONE in types:
        finite = np.isfinite(matrix)
        if not finite.all():
            _non_finite(spec, rows_of, lists, finite, problems)
    if spec.integer and float in types:
        for k, r in enumerate(rows_of):
            if r in spec.integer:
                whole = matrix[k]
                fractional = np.flatnonzero(np.isfinite(whole) & (np.trunc(whole) != whole))
                position = spec.numeric[r]
                for row in fractional[:MAX_ERRORS].tolist():
                    problems.add(position, row, spec.columns[position], "type", lists[k][row])
    if spec.low is not None and spec.high is not None:
        low, high = (spec.low, spec.high) if block is None else (spec.low[block], spec.high[block])
        outside = (matrix < low) | (matrix > high)
        if outside.any():
            for k in np.flatnonzero(outside.any(axis=1)).tolist():
                position = spec.numeric[rows_of[k]]
                bad = np.flatnonzero(outside[k])
                problems.soft(position, spec.columns[position], "range", bad, lists[k])
    for k, r in enumerate(rows_of):
        out[spec.names[spec.numeric[r]]] = matrix[k]


def _non_finite(
    spec: _Spec,
    rows_of: Sequence[int],
    lists: list[list[Any]],
    finite: np.ndarray,
    problems: _Problems,
) -> None:
    """Tell nulls (None became NaN) from NaN/inf floats a Python caller passed."""
    counts = (~finite).sum(axis=1)
    for k in np.flatnonzero(counts).tolist():
        raw, position = lists[k], spec.numeric[rows_of[k]]
        column = spec.columns[position]
        if raw.count(None) == counts[k]:  # only nulls
            if not column.nullable:
                for row in [i for i, value in enumerate(raw) if value is None][:MAX_ERRORS]:
                    problems.add(position, row, column, "null", None)
            continue
        for row in np.flatnonzero(~finite[k]).tolist():
            value = raw[row]
            if value is not None:
                problems.add(position, row, column, "not_finite", value)
            elif not column.nullable:
                problems.add(position, row, column, "null", None)


def _name_bad_numbers(
    spec: _Spec,
    r: int,
    raw: list[Any],
    problems: _Problems,
    column: _Column | None = None,
    position: int = -1,
) -> None:
    """Some value in numeric column `spec.numeric[r]` (or `column`, at `position`) is not a
    number: name each one."""
    if column is None:
        position = spec.numeric[r]
        column = spec.columns[position]
    for i, value in enumerate(raw):
        if value is None:
            if not column.nullable:
                problems.add(position, i, column, "null", value)
        elif type(value) not in _NUMBER_TYPES:
            rule = "not_finite" if _non_finite_text(value) else "type"
            problems.add(position, i, column, rule, value)
        elif not _finite(value):
            problems.add(position, i, column, "not_finite", value)


def _strings(position: int, column: _Column, raw: list[Any], problems: _Problems) -> np.ndarray:
    types = set(map(type, raw))
    has_null = _NONE in types
    types.discard(_NONE)
    texts: list[Any] = raw
    if column.kind == "bool":
        texts = list(map(_BOOL_TEXT.get, raw)) if types <= {bool, str} else []
        if not texts or texts.count(None) != raw.count(None):
            for i, value in enumerate(raw):
                if value is not None and (
                    type(value) not in (bool, str) or value not in _BOOL_TEXT
                ):
                    problems.add(position, i, column, "type", value)
            texts = []
    elif not types <= {str}:
        for i, value in enumerate(raw):
            if value is not None and type(value) is not str:
                problems.add(position, i, column, "type", value)
        texts = []
    if has_null and not column.nullable:
        for i in [i for i, value in enumerate(raw) if value is None][:MAX_ERRORS]:
            problems.add(position, i, column, "null", None)
    if not texts:
        return np.empty(0, dtype=object)
    if column.values is not None:
        unknown = set(texts) - column.values
        unknown.discard(None)
        if unknown:
            rows = np.flatnonzero([t in unknown for t in texts])
            problems.soft(position, column, "category", rows, raw)
    return np.array(texts, dtype=object)


def _finite(value: int | float) -> bool:
    return math.isfinite(value) if type(value) is float else abs(value) <= 1.7e308


def _non_finite_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in _NON_FINITE_TEXT


def _describe(column: _Column, rule: str, value: Any) -> str:
    """What is wrong with one cell, for the message (after 'row i, column c: ')."""
    shown = _literal(value)
    dtype = column.dtype
    if rule == "null":
        return f"null is not allowed (the column is not nullable); send a {dtype} value"
    if rule == "not_finite":
        return f"{shown} is not a finite number (expected {dtype}); send null for a missing value"
    if rule == "type":
        if column.kind == "id":
            return f"{shown} is not an id (expected text or a whole number)"
        if column.kind == "integer" and type(value) is float:
            return f"{shown} is not a whole number (expected int64)"
        if column.kind in ("number", "integer"):
            return f"{shown} is not a number (expected {dtype})"
        if column.kind == "bool":
            return f"{shown} is not a boolean (expected true or false)"
        return f"{shown} is not a string (expected {dtype})"
    if rule == "range":
        return f"{shown} is out of range (expected {_bounds(column)})"
    return f"{shown} is not a known category (expected one of {column.shown_values})"


def _bounds(column: _Column) -> str:
    low, high = column.low, column.high
    if low is not None and high is not None:
        return f"between {_number(low)} and {_number(high)}"
    if low is not None:
        return f"at least {_number(low)}"
    return f"at most {_number(high)}"


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


# -- errors -------------------------------------------------------------------------------------


def _problem(row: int | None, column: str | None, rule: str, value: Any) -> dict[str, Any]:
    return {"row": row, "column": column, "rule": rule, "value": value}


def _error(message: str, errors: list[dict[str, Any]]) -> InputError:
    return InputError(message, details={"errors": errors[:MAX_ERRORS]})


def _single(
    rule: str,
    message: str,
    *,
    row: int | None = None,
    column: str | None = None,
    value: Any = None,
) -> InputError:
    return _error(message, [_problem(row, column, rule, value)])


def _shown(value: Any) -> Any:
    """A cell as it goes into `details` (JSON-safe, bounded in size)."""
    if value is None or type(value) in (bool, int):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "…"
    return _literal(value)


def _literal(value: Any) -> str:
    """A value as the message shows it: JSON spelling for null/true/false, else Python repr."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:12])
    return shown if len(names) <= 12 else f"{shown}, … ({len(names)} columns)"


__all__ = [
    "EXTRA_COLUMNS",
    "MAX_ERRORS",
    "MAX_ROWS",
    "SMALL_ROWS",
    "Batch",
    "Block",
    "InputError",
    "decode",
    "from_oip",
    "join_columns",
    "to_columns",
]
