"""Schema inference from a profile, merged with the contract a user declares.

Inferred rules describe what the data looked like (ranges, closed category sets, no missing
values) and only warn when new data differs; declared rules (the spec's `contract:`) and the
structural rules (the id is unique and present, the target is present) block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shipyard.core.errors import Invalid
from shipyard.core.records import ColumnRole, ColumnSchema, DatasetSchema, Profile, Severity
from shipyard.core.spec import ColumnContract

CLOSED_SET_MAX = 50


def infer_schema(
    profile: Profile,
    *,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    sensitive: Sequence[str] = (),
    contract: Mapping[str, ColumnContract] | None = None,
) -> DatasetSchema:
    columns: list[ColumnSchema] = []
    for col in profile.columns:
        role: ColumnRole = "feature"
        if col.name == target:
            role = "target"
        elif col.name == id_column:
            role = "id"
        elif col.name == time_column:
            role = "time"
        elif col.name in sensitive:
            role = "sensitive"
        severity: dict[str, Severity] = {}
        values = None
        if (
            col.dtype in ("string", "bool")
            and col.distinct is not None
            and col.distinct <= CLOSED_SET_MAX
        ):
            values = sorted(col.top)
        numeric = col.dtype in ("int64", "float64")
        schema = ColumnSchema(
            name=col.name,
            dtype=col.dtype,
            role=role,
            nullable=col.missing > 0,
            unique=role == "id",
            min=col.min if numeric else None,
            max=col.max if numeric else None,
            values=values if role != "id" else None,
            severity=severity,
        )
        if role in ("id", "target"):
            schema = schema.model_copy(
                update={"nullable": False, "severity": {"nullable": "error", "unique": "error"}}
            )
        columns.append(schema)
    inferred = DatasetSchema(columns=columns)
    return apply_contract(inferred, contract or {})


def apply_contract(schema: DatasetSchema, contract: Mapping[str, ColumnContract]) -> DatasetSchema:
    """Overlay declared rules; each declared rule takes the contract's severity (error)."""
    unknown = sorted(set(contract) - set(schema.names))
    if unknown:
        raise Invalid(
            f"the contract names column(s) {unknown} that the data does not have; the columns "
            f"are {schema.names}. Fix the names in `contract:`."
        )
    columns = []
    for col in schema.columns:
        declared = contract.get(col.name)
        if declared is None:
            columns.append(col)
            continue
        update: dict[str, object] = {}
        severity = dict(col.severity)
        if declared.type is not None:
            update["dtype"] = declared.type
            severity["dtype"] = declared.severity
        if declared.min is not None or declared.max is not None:
            update["min"], update["max"] = declared.min, declared.max
            severity["range"] = declared.severity
        if declared.values is not None:
            update["values"] = declared.values
            severity["values"] = declared.severity
        if declared.nullable is not None:
            update["nullable"] = declared.nullable
            severity["nullable"] = declared.severity
        if declared.unique is not None:
            update["unique"] = declared.unique
            severity["unique"] = declared.severity
        update["severity"] = severity
        columns.append(col.model_copy(update=update))
    return DatasetSchema(columns=columns)


def declared_schema(
    names: Sequence[str], types: Mapping[str, str], contract: Mapping[str, ColumnContract]
) -> DatasetSchema:
    """A schema holding only the declared rules: what an ingest checks while it streams."""
    columns = [
        ColumnSchema(name=n, dtype=types[n], nullable=True)  # type: ignore[arg-type]
        for n in names
    ]
    return apply_contract(DatasetSchema(columns=columns), contract)
