"""Schema inference from a profile, merged with the contract a user declares.

Inferred rules describe what the data looked like (ranges, closed category sets, no missing
values) and only warn when new data differs; declared rules (the spec's `contract:`) and the
structural rules (the id is unique and present, the target is present) block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shipyard.core.errors import Invalid
from shipyard.core.records import ColumnRole, ColumnSchema, DatasetSchema, DType, Profile, Severity
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
        # Ids and times are new in every batch of data: a range on them would always warn.
        numeric = col.dtype in ("int64", "float64") and role not in ("id", "time")
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
        if role == "id":
            schema = schema.model_copy(
                update={"nullable": False, "severity": {"nullable": "error", "unique": "error"}}
            )
        elif role == "target":
            schema = schema.model_copy(
                update={"nullable": False, "severity": {"nullable": "error"}}
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


def ingest_rules(
    names: Sequence[str],
    types: Mapping[str, DType],
    contract: Mapping[str, ColumnContract],
    previous: DatasetSchema | None = None,
) -> DatasetSchema:
    """The rules an ingest checks while it streams. For a dataset's first version: the declared
    contract. For a new version: the previous version's schema, with the contract declared now
    on top, which are exactly the rules `shipyard data validate --against` the previous
    version checks: every column it had is present and keeps its type, its declared rules
    block, its inferred ones warn, and a column it did not have is an `extra` (a warning)."""
    if previous is None:
        columns = [ColumnSchema(name=n, dtype=types[n]) for n in names]
    else:
        columns = list(previous.columns) + [
            ColumnSchema(name=n, dtype=types[n])
            for n in names
            if previous.column(n) is None and n in contract
        ]
    return apply_contract(DatasetSchema(columns=columns), contract)


def next_contract(
    previous: DatasetSchema | None, names: Sequence[str], contract: Mapping[str, ColumnContract]
) -> dict[str, ColumnContract]:
    """The contract of a dataset's next version: what this ingest declares, over the declared
    rules of the previous version for the columns the data still has."""
    inherited = declared_contract(previous) if previous else {}
    return {**{c: v for c, v in inherited.items() if c in names}, **contract}


def declared_contract(schema: DatasetSchema) -> dict[str, ColumnContract]:
    """The blocking rules a stored schema carries, as a contract the next version inherits."""
    out: dict[str, ColumnContract] = {}
    for col in schema.columns:
        rules = {rule for rule, severity in col.severity.items() if severity == "error"}
        if col.role in ("id", "target"):
            rules -= {"nullable", "unique"}  # re-derived from the roles on every ingest
        rules.discard("dtype")  # the previous version's types are checked on their own
        if not rules:
            continue
        out[col.name] = ColumnContract(
            min=col.min if "range" in rules else None,
            max=col.max if "range" in rules else None,
            values=col.values if "values" in rules else None,
            nullable=col.nullable if "nullable" in rules else None,
            unique=col.unique if "unique" in rules else None,
        )
    return out
