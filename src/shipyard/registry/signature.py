"""A model's signature, built from the contract of the data it was trained on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shipyard.core.errors import Invalid
from shipyard.core.records import DatasetSchema, Signature, SignatureColumn

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
    """The inputs (type, nullability, range, allowed values) and output a model was trained for.

    >>> sig = signature_from_schema(version.schema_, ["income", "grade"],
    ...                             task="classification", classes=["no", "yes"])
    >>> sig.inputs[1].values
    ['A', 'B', 'C', 'D']
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
    return Signature(inputs=inputs, output=OUTPUTS[task], classes=labels)
