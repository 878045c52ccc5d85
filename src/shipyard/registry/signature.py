"""A model's signature, built from the contract of the data it was trained on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shipyard.core.errors import Invalid
from shipyard.core.records import DatasetSchema, ModelVersion, Signature, SignatureColumn
from shipyard.store.tables import DatasetVersionRow
from shipyard.store.workspace import Workspace

OUTPUTS: dict[str, Literal["class", "number", "cluster"]] = {
    "classification": "class",
    "regression": "number",
    "clustering": "cluster",
}


def signature_from_schema(
    schema: DatasetSchema,
    features: Sequence[str],
    *,
    task: str,
    classes: Sequence[object] | None = None,
) -> Signature:
    """The inputs (type, nullability, range, allowed values) and output a model was trained for,
    and the columns a request may carry beside them (the schema's id and sensitive columns).

    >>> sig = signature_from_schema(version.schema_, ["income", "grade"],
    ...                             task="classification", classes=["no", "yes"])
    >>> sig.inputs[1].values
    ['A', 'B', 'C', 'D']
    >>> sig.id_column, [c.name for c in sig.carried]
    ('loan_id', ['loan_id', 'sex'])
    """
    if task not in OUTPUTS:
        raise Invalid(f"task {task!r} is not one of {', '.join(OUTPUTS)}.")
    if not features:
        raise Invalid("a signature needs at least one feature column; none were given.")
    duplicated = sorted({f for f in features if list(features).count(f) > 1})
    if duplicated:
        raise Invalid(f"feature column(s) {', '.join(duplicated)} are listed more than once.")
    inputs = []
    for name in features:
        column = schema.column(name)
        if column is None:
            raise Invalid(
                f"feature {name!r} is not a column of the training data (it has "
                f"{', '.join(schema.names)}); pass the columns the model was trained on."
            )
        if column.role == "target":
            raise Invalid(f"feature {name!r} is the target column; a model cannot take it.")
        inputs.append(
            SignatureColumn(
                name=column.name,
                dtype=column.dtype,
                nullable=column.nullable,
                min=column.min,
                max=column.max,
                values=list(column.values) if column.values is not None else None,
            )
        )
    labels = [str(c) for c in classes] if classes is not None else None
    if task == "classification" and not labels:
        raise Invalid(
            "a classification signature needs the model's classes (e.g. pipeline.classes_); "
            "none were given."
        )
    if task != "classification" and labels:
        raise Invalid(f"a {task} model has no classes, but classes {labels} were given.")
    id_column, carried = _carried(schema, features)
    return Signature(
        inputs=inputs,
        output=OUTPUTS[task],
        classes=labels,
        id_column=id_column,
        target=_target(schema),
        carried=carried,
    )


def _target(schema: DatasetSchema) -> str | None:
    return next((c.name for c in schema.columns if c.role == "target"), None)


def _carried(
    schema: DatasetSchema, features: Sequence[str]
) -> tuple[str | None, list[SignatureColumn]]:
    """The id column's name and the id and sensitive columns that are not features: values a
    request may carry (rows taken from the training data do) that never reach the model."""
    id_column = next((c.name for c in schema.columns if c.role == "id"), None)
    carried = [
        SignatureColumn(name=c.name, dtype=c.dtype)
        for c in sorted(schema.columns, key=lambda c: c.role != "id")  # the id first
        if c.role in ("id", "sensitive") and c.name not in features
    ]
    return id_column, carried


def with_carried(ws: Workspace, version: ModelVersion, signature: Signature) -> Signature:
    """`signature` with its carried columns, taken from the training data's schema where the
    model was registered before signatures recorded them (or unchanged)."""
    if signature.carried is not None or version.dataset_version_id is None:
        return signature
    with ws.db.read() as s:
        row = s.get(DatasetVersionRow, version.dataset_version_id)
        if row is None:
            return signature
        schema = DatasetSchema.model_validate(row.schema)
    id_column, carried = _carried(schema, signature.names)
    update = {"id_column": id_column, "carried": carried, "target": _target(schema)}
    return signature.model_copy(update=update)
