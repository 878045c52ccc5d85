"""Arrow types ↔ Shipyard's column types, and the normalisation every stored batch goes through."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.records import DType

ARROW: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def dtype_of(t: pa.DataType) -> DType:
    """Shipyard's name for an Arrow type (after normalisation)."""
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float64"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "string"


def storage_type(t: pa.DataType) -> pa.DataType:
    """The type a column is stored as: the six column types, timestamps keeping their zone."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_dictionary(t):
        return storage_type(t.value_type)
    return ARROW[dtype_of(t)]


def is_numeric(dtype: str) -> bool:
    return dtype in ("int64", "float64")


def normalise(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the stored schema (column order and types)."""
    arrays = []
    for f in schema:
        column = batch.column(batch.schema.get_field_index(f.name))
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        arrays.append(column if column.type == f.type else pc.cast(column, f.type, safe=False))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def as_float(column: pa.Array | pa.ChunkedArray, dtype: str) -> pa.Array | pa.ChunkedArray:
    """Numbers, booleans, dates and timestamps as float64 (epoch seconds for time types)."""
    if dtype == "timestamp":
        return pc.divide(
            pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64()).cast(pa.float64()), 1e6
        )
    if dtype == "date":
        return pc.multiply(
            pc.cast(pc.cast(column, pa.date32()), pa.int32()).cast(pa.float64()), 86400.0
        )
    return pc.cast(column, pa.float64())
