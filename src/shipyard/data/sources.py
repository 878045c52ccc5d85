"""Readers that turn a source (CSV, Parquet, JSON lines, SQL query) into Arrow record batches.

Everything streams: files are read block by block and queries fetched in chunks, so memory
stays bounded whatever the source's size. Third-party errors are translated here into
`Invalid`/`NotFound`/`Unavailable` messages that name the file, the row and the fix.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from shipyard.core.errors import Invalid, NotFound, Unavailable

_JSON_CHANGED = re.compile(r"Column\(/(.+?)\) changed from (\w+) to (\w+)")
_JSON_CONVERT = re.compile(r"Failed to convert JSON to (\w+)")
_JSON_TYPES = {"number": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
BLOCK_SIZE = 2 << 20  # measured: pyarrow's streaming CSV reader is fastest at 1-4 MiB
SQL_CHUNK = 50_000
FORMATS = ("csv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".gz": None,
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Read ahead on a second thread (parsing releases the GIL), so reading the next block
    overlaps the caller's work on this one. Errors are re-raised in the caller's thread."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(("batch", batch), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("end", None))
        except BaseException as exc:
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="shipyard-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                queue.get_nowait()
            except Empty:
                thread.join(timeout=0.1)


class TypeWiden(Exception):
    """Raised mid-read when a later block needs a wider column type than inferred."""

    def __init__(self, column: str, dtype: pa.DataType) -> None:
        super().__init__(column)
        self.column = column
        self.dtype = dtype


@dataclass
class Source:
    """A described source; `batches()` streams it, `size` (bytes) drives the progress bar."""

    uri: str
    format: str
    query: str | None = None
    column_types: dict[str, pa.DataType] = field(default_factory=dict)
    delimiter: str = ","
    lenient: bool = False  # read a column whose values do not convert as text, not an error

    @property
    def path(self) -> Path:
        return Path(self.uri)

    @property
    def label(self) -> str:
        """How messages name the source: a SQL URL without its password."""
        return mask_password(self.uri) if self.format == "sql" else self.uri

    @property
    def size(self) -> int | None:
        return self.path.stat().st_size if self.format != "sql" else None

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.format == "csv":
            yield from _csv_batches(self)
        elif self.format == "parquet":
            yield from _parquet_batches(self)
        elif self.format == "jsonl":
            yield from _jsonl_batches(self)
        else:
            yield from _sql_batches(self)


def open_source(
    location: str | Path, *, format: str | None = None, sql: str | None = None
) -> Source:
    """Describe a file path (format from its suffix unless given) or a SQL URL + query."""
    if sql is not None:
        return Source(uri=str(location), format="sql", query=sql)
    path = Path(location)
    if not path.exists():
        raise NotFound(f"data file {str(path)!r} does not exist; check the path and try again.")
    if path.is_dir():
        raise Invalid(f"{str(path)!r} is a directory; give one CSV, Parquet or JSON-lines file.")
    fmt = format or _guess_format(path)
    if fmt not in FORMATS:
        raise Invalid(f"format {fmt!r} is not supported; use one of {', '.join(FORMATS)}.")
    if path.stat().st_size == 0:
        raise Invalid(f"data file {str(path)!r} is empty (0 bytes); nothing to ingest.")
    delimiter = "\t" if path.suffix == ".tsv" else ","
    return Source(uri=str(path), format=fmt, delimiter=delimiter)


def _guess_format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if _SUFFIXES.get(s.lower(), "x") is not None]
    fmt = _SUFFIXES.get(suffixes[-1].lower()) if suffixes else None
    if fmt is None:
        raise Invalid(
            f"cannot tell the format of {str(path)!r} from its name; pass --format "
            f"({', '.join(FORMATS)})."
        )
    return fmt


# -- CSV ----------------------------------------------------------------------------------------

_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to ([\w\[\], ]+): invalid value '(.*)'"
)
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


def _csv_batches(source: Source) -> Iterator[pa.RecordBatch]:
    try:
        reader = pacsv.open_csv(
            source.uri,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=source.delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=source.column_types, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(source, exc, rows_before=0) from exc
    names = reader.schema.names
    _check_header(source, names)
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            if not rows:  # a header and no rows: keep the columns, so the error can say so
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
            return
        except pa.ArrowInvalid as exc:
            match = _CONVERSION.search(str(exc))
            if match:
                column = names[int(match[1])]
                widened = _widen(match[2], match[3])
                if widened is not None and column not in source.column_types:
                    raise TypeWiden(column, widened) from exc
                if source.lenient and source.column_types.get(column) != pa.string():
                    raise TypeWiden(column, pa.string()) from exc
                raise _mixed(source, column, match[2], match[3], rows) from exc
            raise _csv_error(source, exc, rows_before=rows) from exc
        rows += batch.num_rows
        yield batch


def _check_header(source: Source, names: list[str]) -> None:
    blanks = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if blanks:
        raise Invalid(
            f"{source.uri}: column(s) {blanks} have an empty header; name every column in the "
            "first line."
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise Invalid(f"{source.uri}: duplicate column name(s) {dupes}; make headers unique.")


def _widen(to: str, value: str) -> pa.DataType | None:
    """The type that fits both the inferred one and `value`, when one is sensible."""
    numeric = _is_number(value)
    if to == "null":
        return pa.float64() if numeric else pa.string()
    if to.startswith(("int", "uint")) and numeric:
        return pa.float64()
    return None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _mixed(source: Source, column: str, to: str, value: str, rows: int) -> Invalid:
    return Invalid(
        f"{source.uri}: column {column!r} has mixed types: its values read as {to} up to about "
        f"row {rows:,}, then {value!r} appears. Fix the data, declare the column's type in the "
        f"contract (contract: {{{column}: {{type: string}}}}), or coerce it with "
        f"`--coerce {column}` (values that do not parse become missing).",
        details={"column": column, "expected": to, "value": value, "after_row": rows},
    )


def _csv_error(source: Source, exc: pa.ArrowInvalid, *, rows_before: int) -> Invalid:
    message = str(exc)
    if "Empty CSV file" in message:
        head = _head(source).strip()
        if head and b"\n" not in head:  # a header line without a line break
            return Invalid(f"{source.uri} has a header but no rows; nothing to ingest.")
        return Invalid(f"{source.uri} has no header and no rows; nothing to ingest.")
    ragged = _RAGGED.search(message)
    if ragged:
        line = _first_ragged_line(source, int(ragged[1]))
        where = f"line {line}" if line else f"after row {rows_before:,}"
        return Invalid(
            f"{source.uri}: {where} has {ragged[2]} field(s) where the header has {ragged[1]} "
            "(a ragged row). Fix that line (quote values that contain the delimiter) and "
            "ingest again.",
            details={"line": line, "expected_fields": int(ragged[1]), "got": int(ragged[2])},
        )
    return Invalid(f"{source.uri}: cannot read as CSV: {message}")


def _head(source: Source) -> bytes:
    with pa.input_stream(source.uri, compression="detect") as fh:
        return bytes(fh.read(BLOCK_SIZE))


def _first_ragged_line(source: Source, expected: int) -> int | None:
    with (
        pa.input_stream(source.uri, compression="detect") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as fh,
    ):
        reader = csv.reader(fh, delimiter=source.delimiter)
        for record in reader:
            if len(record) != expected:
                return reader.line_num
    return None


# -- Parquet, JSON lines, SQL --------------------------------------------------------------------


def _parquet_batches(source: Source) -> Iterator[pa.RecordBatch]:
    try:
        file = pq.ParquetFile(source.uri)
    except (pa.ArrowInvalid, OSError) as exc:
        raise Invalid(f"{source.uri} is not a readable Parquet file: {exc}") from exc
    yield from file.iter_batches(batch_size=65_536)


def _jsonl_batches(source: Source) -> Iterator[pa.RecordBatch]:
    """JSON lines in blocks. A column whose type changes in a later block is widened as the
    CSV reader widens it (`TypeWiden`: empty at first → the later type; integers → float);
    any other change of type is an error naming the column."""
    schema = pa.schema(list(source.column_types.items())) if source.column_types else None
    rows, integers = 0, set()
    try:
        reader = pajson.open_json(
            source.uri,
            read_options=pajson.ReadOptions(block_size=BLOCK_SIZE),
            parse_options=pajson.ParseOptions(explicit_schema=schema),
        )
        integers = {f.name for f in reader.schema if pa.types.is_integer(f.type)}
        for batch in reader:
            rows += batch.num_rows
            yield batch
    except pa.ArrowInvalid as exc:
        raise _json_widen(source, str(exc), rows, integers - source.column_types.keys()) from exc


def _json_widen(source: Source, message: str, rows: int, integers: set[str]) -> Exception:
    """The `TypeWiden` a JSON reader error asks for, else the `Invalid` to raise."""
    changed = _JSON_CHANGED.search(message)
    if changed and "/" not in changed[1] and changed[1] not in source.column_types:
        column, before, after = changed[1], changed[2], changed[3]
        if before == "null" and after in _JSON_TYPES:
            return TypeWiden(column, _JSON_TYPES[after])
        return Invalid(
            f"{source.uri}: column {column!r} has mixed types: its values are JSON {before}s "
            f"up to about row {rows:,}, then a {after} appears. JSON lines are read with one "
            f"type per column: fix the data (write every {column!r} value as one type, e.g. "
            "quote them all as strings) and ingest again.",
            details={"column": column, "expected": before, "value": after, "after_row": rows},
        )
    converted = _JSON_CONVERT.search(message)
    if converted and converted[1].startswith(("int", "uint")) and integers:
        column = _non_integer_column(source, rows, integers)
        if column is not None:
            return TypeWiden(column, pa.float64())
    return Invalid(
        f"{source.uri}: cannot read as JSON lines (one object per line): {message}. "
        "Check that every line is a complete JSON object with consistent value types."
    )


def _non_integer_column(source: Source, rows: int, integers: set[str]) -> str | None:
    """Which of `integers` (columns read as integers so far) holds a number with a fraction or
    an exponent at or after line `rows`: pyarrow's message does not name it, so the lines from
    there are read again until one does."""
    with (
        pa.input_stream(source.uri, compression="detect") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as fh,
    ):
        for number, line in enumerate(fh):
            if number < rows or not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(record, dict):
                return None
            for name in integers:
                if type(record.get(name)) is float:
                    return name
    return None


def _sql_batches(source: Source) -> Iterator[pa.RecordBatch]:
    assert source.query is not None
    safe_url = mask_password(source.uri)
    try:
        engine = create_engine(source.uri)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise Invalid(
            f"SQL URL {safe_url!r} is not usable: {exc}. Use a SQLAlchemy URL such as "
            "postgresql://user@host/db or sqlite:///file.db."
        ) from exc
    try:
        conn = engine.connect()
    except OperationalError as exc:
        engine.dispose()
        raise Unavailable(
            f"cannot connect to {safe_url}: {exc.orig}. Check the URL, that the server is "
            "running, and the credentials."
        ) from exc
    # Connected: a failure now is the query's (SQLite reports syntax errors as
    # OperationalError), unless the connection itself was lost.
    try:
        query = text(source.query)
        with conn, conn.execution_options(stream_results=True).execute(query) as result:
            columns = list(result.keys())
            rows = 0
            while chunk := result.fetchmany(SQL_CHUNK):
                arrays = {c: [row[i] for row in chunk] for i, c in enumerate(columns)}
                rows += len(chunk)
                yield pa.RecordBatch.from_pydict(arrays)
            if not rows:  # no rows: keep the columns, so the error can say so
                yield pa.RecordBatch.from_pydict({c: [] for c in columns})
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable(
                f"lost the connection to {safe_url} while running the query: {exc.orig}. "
                "Check that the server is running and ingest again."
            ) from exc
        raise Invalid(
            f"the SQL query failed on {safe_url}: {exc.orig}. Check the query in a database "
            "client, then ingest again."
        ) from exc
    except SQLAlchemyError as exc:
        raise Invalid(f"the SQL query failed on {safe_url}: {exc}") from exc
    finally:
        engine.dispose()


def mask_password(url: str) -> str:
    """A URL with its password replaced by ***, for messages and lineage."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
