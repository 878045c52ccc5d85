"""Batch scoring: a CSV or Parquet file through a registered model, in bounded memory.

The file streams in chunks of `chunk_rows` (pyarrow: CSV blocks, Parquet batches); each chunk
is checked against the model's signature (every input column present, of its type, no nulls
where the model allows none) and predicted; results go to Parquet or CSV (by the output's
suffix) with the data set's id column (when the file has it) and any `keep` columns copied
through first, then the prediction, one probability column per class for classifiers, and
`model_version`. The model is loaded once; the output appears only when every row was scored
(written to a temporary file, then renamed).

Values outside what the model saw in training (a number beyond the training data's range, an
unknown category) are scored and counted per column (`ScoreResult.out_of_range`), as the
server does by default; `strict_ranges=True` refuses the file at the first one, as the
endpoint flag `strict_ranges=on` refuses the request.

    >>> score_file(ws, "loans.csv", "credit-risk@champion", "scores.parquet",
    ...            keep=["branch"], progress=lambda done, total: print(done, total))
    ScoreResult(rows=120000, chunks=3, kept=['loan_id', 'branch'], out_of_range={}, ...)
"""

from __future__ import annotations

import contextlib
import csv
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import ScoreResult, Signature, SignatureColumn
from shipyard.registry import LoadedModel, get_version, load_model
from shipyard.store.workspace import Workspace

Progress = Callable[[int, int | None], None]
Format = Literal["csv", "tsv", "parquet"]

_FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_ARROW: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}
_DESCRIBED = {
    "int64": "a whole number",
    "float64": "a number",
    "bool": "true or false",
    "string": "text",
    "timestamp": "a timestamp",
    "date": "a date",
}
_CSV_COLUMN_RE = re.compile(r"CSV column #(\d+)")
_BLOCK = 1 << 20
OUTPUT_COLUMNS = ("prediction", "model_version")


def score_file(
    ws: Workspace,
    source_path: str | Path,
    model_ref: str,
    out_path: str | Path,
    *,
    chunk_rows: int = 50_000,
    progress: Progress | None = None,
    keep: Sequence[str] = (),
    strict_ranges: bool = False,
) -> ScoreResult:
    """Score every row of a CSV/TSV/Parquet file with a model; write Parquet or CSV.

    `progress(rows_done, total_rows)` is called after each chunk (`total_rows` is None for
    CSV). `keep` names columns to copy through beside the data set's id column, which is kept
    whenever the file has it. A rejected model is refused; a file that does not fit the
    model's signature (or, with `strict_ranges`, holds a value outside the training data)
    raises Invalid naming the column and the row, and nothing is written.
    """
    source, out = Path(source_path), Path(out_path)
    if chunk_rows < 1:
        raise Invalid(f"chunk_rows must be at least 1, not {chunk_rows}.")
    source_format = _format(source, "file to score")
    out_format = _format(out, "output file")
    if not source.is_file():
        raise NotFound(f"file to score {str(source)!r} does not exist.")
    if out.exists() and out.resolve() == source.resolve():
        raise Invalid(f"the output {str(out)!r} is the file being scored; write somewhere else.")
    version = get_version(ws, model_ref)
    model = load_model(ws, version.ref)  # refuses a rejected version
    signature = model.signature or version.signature
    if source_format == "parquet":
        parquet = _parquet_file(source)
        have = parquet.schema_arrow.names
    else:
        delimiter = "\t" if source_format == "tsv" else ","
        have = _csv_header(source, delimiter)
    id_column = signature.id_column
    ids = [id_column] if id_column is not None and id_column in have else []
    keep = list(dict.fromkeys([*ids, *keep]))
    clashes = sorted(set(keep) & {*OUTPUT_COLUMNS, *_proba_names(model)})
    if clashes:
        raise Invalid(
            f"--keep {', '.join(clashes)}: the output already has these columns; keep other "
            "columns (e.g. an id)."
        )

    _check_columns(source, have, signature, keep)
    if source_format == "parquet":
        chunks, total = _parquet_chunks(parquet, signature, keep, chunk_rows)
    else:
        chunks = _csv_chunks(source, have, signature, keep, chunk_rows, delimiter, version.ref)
        total = None
    ranges = _Ranges(signature, strict_ranges, source, version.ref)

    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    writer: _Writer | None = None
    rows = count = 0
    try:
        for table in chunks:
            features = _conform(table, signature, rows, source, version.ref, ranges)
            result = _predict(model, features, version.ref)
            for i, name in enumerate(keep):  # copied through first, e.g. an id to join on
                result = result.add_column(i, name, table[name])
            if writer is None:
                writer = _Writer(partial, result.schema, out_format)
            writer.write(result)
            rows += table.num_rows
            count += 1
            if progress is not None:
                progress(rows, total)
        if writer is None:
            raise Invalid(f"{source.name} has no data rows; there is nothing to score.")
        writer.close()
        partial.replace(out)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        partial.unlink(missing_ok=True)
        raise
    return ScoreResult(
        source=str(source),
        out=str(out),
        model_ref=version.ref,
        version_id=version.id,
        rows=rows,
        chunks=count,
        seconds=round(time.perf_counter() - started, 3),
        kept=keep,
        out_of_range={name: n for name, n in ranges.counts.items() if n},
    )


# -- reading ------------------------------------------------------------------------------------


def _format(path: Path, what: str) -> Format:
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise Invalid(
            f"{what} {str(path)!r}: cannot tell its format from the suffix {path.suffix!r}; "
            f"use one of {', '.join(_FORMATS)}."
        )
    return found


def _check_columns(
    source: Path, have: Sequence[str], signature: Signature, keep: Sequence[str]
) -> None:
    missing = [c for c in signature.names if c not in have]
    if missing:
        raise Invalid(
            f"{source.name} lacks column(s) {', '.join(repr(c) for c in missing)} that the model "
            f"needs (it has {', '.join(have) or 'no columns'}); add them or score another file."
        )
    absent = [c for c in keep if c not in have]
    if absent:
        raise Invalid(
            f"--keep {', '.join(absent)}: not a column of {source.name} (it has {', '.join(have)})."
        )


def _csv_header(source: Path, delimiter: str) -> list[str]:
    with source.open(newline="", encoding="utf-8-sig") as fh:
        try:
            return next(csv.reader(fh, delimiter=delimiter))
        except StopIteration:
            raise Invalid(f"{source.name} is empty; it needs a header row and data.") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise Invalid(f"{source.name}: the header row does not parse ({exc}).") from exc


def _csv_chunks(
    source: Path,
    header: list[str],
    signature: Signature,
    keep: Sequence[str],
    chunk_rows: int,
    delimiter: str,
    ref: str,
) -> Iterator[pa.Table]:
    return _rechunk(_csv_batches(source, header, signature, keep, delimiter, ref), chunk_rows)


def _csv_batches(
    source: Path,
    header: list[str],
    signature: Signature,
    keep: Sequence[str],
    delimiter: str,
    ref: str,
) -> Iterator[pa.RecordBatch]:
    types = {c.name: _ARROW[c.dtype] for c in signature.inputs}
    wanted = list(dict.fromkeys([*signature.names, *keep]))
    try:
        # Opening reads (and converts) the first block already, so it is inside the try.
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=wanted, strings_can_be_null=True
            ),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        match = _CSV_COLUMN_RE.search(str(exc))
        if match and int(match[1]) < len(header):
            column = next((c for c in signature.inputs if c.name == header[int(match[1])]), None)
            if column is not None:
                _locate_in_csv(source, column, delimiter, ref)
        raise Invalid(f"{source.name} could not be read as CSV: {exc}") from exc


def _locate_in_csv(source: Path, column: SignatureColumn, delimiter: str, ref: str) -> None:
    """Find the first value of `column` that is not of its type; raise Invalid naming it."""
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(block_size=_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types={column.name: pa.string()},
            include_columns=[column.name],
            strings_can_be_null=True,
        ),
    )
    offset = 0
    for batch in reader:
        _cast(batch.column(0), column, offset, source, ref)
        offset += batch.num_rows


def _parquet_file(source: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise Invalid(f"{source.name} is not a readable Parquet file ({exc}).") from exc


def _parquet_chunks(
    parquet: pq.ParquetFile, signature: Signature, keep: Sequence[str], chunk_rows: int
) -> tuple[Iterator[pa.Table], int]:
    wanted = list(dict.fromkeys([*signature.names, *keep]))
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=wanted)
    return _rechunk(batches, chunk_rows), parquet.metadata.num_rows


def _rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly `size` rows (the last one smaller) from batches of any size."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        held.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(held)
            yield table.slice(0, size)
            rest = table.slice(size)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held)


# -- checking and predicting --------------------------------------------------------------------


class _Ranges:
    """The signature's ranges and categories, checked a chunk at a time with Arrow compute:
    values outside are counted per column, or (strict) refused at the first one."""

    def __init__(self, signature: Signature, strict: bool, source: Path, ref: str) -> None:
        self.strict, self.source, self.ref = strict, source, ref
        self.columns = [
            c
            for c in signature.inputs
            if (c.dtype in ("int64", "float64") and (c.min is not None or c.max is not None))
            or (c.dtype == "string" and c.values is not None)
        ]
        self.counts: dict[str, int] = {c.name: 0 for c in self.columns}

    def check(self, name: str, values: pa.Array, offset: int) -> None:
        column = next((c for c in self.columns if c.name == name), None)
        if column is None:
            return
        if column.dtype == "string":
            allowed = pa.array(column.values or [], type=pa.string())
            outside = pc.invert(pc.is_in(values, value_set=allowed))
        else:
            outside = pa.array(np.zeros(len(values), dtype=bool))
            if column.min is not None:
                outside = pc.or_(outside, pc.less(values, column.min))
            if column.max is not None:
                outside = pc.or_(outside, pc.greater(values, column.max))
        outside = pc.fill_null(outside, False)  # a missing value is not out of range
        count = pc.sum(outside).as_py() or 0
        if not count:
            return
        if self.strict:
            first = pc.index(outside, True).as_py()
            raise Invalid(
                f"{self.source.name}: column {name!r}, row {offset + first + 1}: "
                f"{values[first].as_py()!r} {_outside(column)}, and strict ranges refuse it. "
                "Score without --strict-ranges to score such values and count them per column."
            )
        self.counts[name] += count


def _outside(column: SignatureColumn) -> str:
    if column.dtype == "string":
        shown = ", ".join(repr(v) for v in (column.values or [])[:10])
        return f"is not a category of the training data ({shown})"
    if column.min is not None and column.max is not None:
        return f"is outside the training data's range ({column.min:g} to {column.max:g})"
    if column.min is not None:
        return f"is below the training data's minimum ({column.min:g})"
    return f"is above the training data's maximum ({column.max:g})"


def _conform(
    table: pa.Table, signature: Signature, offset: int, source: Path, ref: str, ranges: _Ranges
) -> Any:
    """The chunk's features as the DataFrame the model takes; Invalid naming column and row."""
    columns = {}
    for column in signature.inputs:
        values = table[column.name].combine_chunks()
        values = _cast(values, column, offset, source, ref)
        if not column.nullable and values.null_count:
            first = pc.index(values.is_null(), True).as_py()
            raise Invalid(
                f"{source.name}: column {column.name!r}, row {offset + first + 1} is empty, "
                f"but the model {ref} needs a value in every row of {column.name!r}."
            )
        ranges.check(column.name, values, offset)
        columns[column.name] = values
    return pa.table(columns).to_pandas()


def _cast(
    values: pa.Array, column: SignatureColumn, offset: int, source: Path, ref: str
) -> pa.Array:
    target = _ARROW[column.dtype]
    if values.type == target:
        return values
    model = f"the model {ref}"
    try:
        return pc.cast(values, target, safe=True)
    except pa.ArrowNotImplementedError as exc:
        raise Invalid(
            f"{source.name}: column {column.name!r} holds {values.type} values, but {model} "
            f"expects {column.dtype} ({_DESCRIBED[column.dtype]})."
        ) from exc
    except pa.ArrowInvalid:
        pass
    lo, hi = 0, len(values)  # invariant: the first bad value is in values[lo:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(values.slice(lo, mid - lo), target, safe=True)
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    bad = values[lo].as_py()
    raise Invalid(
        f"{source.name}: column {column.name!r}, row {offset + lo + 1}: {bad!r} is not "
        f"{_DESCRIBED[column.dtype]} ({model} expects {column.dtype}). Fix or remove that "
        "value and score the file again."
    )


def _proba_names(model: LoadedModel) -> list[str]:
    if model.task != "classification" or model.classes_ is None:
        return []
    return [f"probability_{c}" for c in model.classes_]


def _predict(model: LoadedModel, features: Any, ref: str) -> pa.Table:
    labels = np.asarray(model.predict(features))
    out: dict[str, pa.Array] = {"prediction": pa.array(labels)}
    names = _proba_names(model)
    if names and hasattr(model.pipeline, "predict_proba"):
        proba = model.predict_proba(features)
        for i, name in enumerate(names):
            out[name] = pa.array(proba[:, i], pa.float64())
    out["model_version"] = pa.array([ref] * len(labels), pa.string())
    return pa.table(out)


# -- writing ------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, path: Path, schema: pa.Schema, fmt: Format) -> None:
        self.schema = schema
        self._csv = fmt != "parquet"
        if self._csv:
            options = pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",")
            self._writer: Any = pacsv.CSVWriter(str(path), schema, write_options=options)
        else:
            self._writer = pq.ParquetWriter(str(path), schema, compression="snappy")

    def write(self, table: pa.Table) -> None:
        if table.schema != self.schema:
            table = table.cast(self.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
