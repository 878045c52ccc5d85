"""Signatures built from the contract of the training data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from registry_cases import FEATURES, Fitted

from shipyard.core.errors import Invalid
from shipyard.core.records import ColumnSchema, DatasetSchema, SignatureColumn
from shipyard.data import ingest
from shipyard.registry import load_model, register, signature_from_schema, with_carried
from shipyard.store.workspace import Workspace

SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="income", dtype="float64", nullable=False, min=0, max=250_000),
        ColumnSchema(name="grade", dtype="string", values=["A", "B", "C", "D"]),
        ColumnSchema(name="loan_id", dtype="int64", role="id", unique=True),
        ColumnSchema(name="defaulted", dtype="int64", role="target", min=0, max=1),
    ]
)


def test_inputs_carry_type_nullability_range_and_values() -> None:
    sig = signature_from_schema(SCHEMA, ["income", "grade"], task="classification", classes=[0, 1])

    assert sig.inputs == [
        SignatureColumn(name="income", dtype="float64", nullable=False, min=0, max=250_000),
        SignatureColumn(name="grade", dtype="string", values=["A", "B", "C", "D"]),
    ]
    assert (sig.output, sig.classes, sig.names) == ("class", ["0", "1"], ["income", "grade"])


@pytest.mark.parametrize(("task", "output"), [("regression", "number"), ("clustering", "cluster")])
def test_the_output_follows_the_task(task: str, output: str) -> None:
    sig = signature_from_schema(SCHEMA, ["income"], task=task)
    assert (sig.output, sig.classes) == (output, None)


def test_a_signature_from_an_ingested_dataset(
    workspace: Workspace, data: tuple[pd.DataFrame, pd.Series, pd.Series], tmp_path: Path
) -> None:
    X, label, _ = data
    X.assign(diagnosis=label).to_csv(tmp_path / "cancer.csv", index=False)
    version = ingest(workspace, tmp_path / "cancer.csv", name="cancer", target="diagnosis").version

    sig = signature_from_schema(version.schema_, FEATURES, task="classification", classes=[0, 1])

    radius, grade = sig.inputs[0], sig.inputs[-1]
    assert sig.names == FEATURES
    assert (radius.dtype, radius.nullable) == ("float64", True)  # six radii are missing
    assert radius.min == pytest.approx(X["mean radius"].min())
    assert radius.max == pytest.approx(X["mean radius"].max())
    assert (grade.dtype, grade.values) == ("string", ["A", "B", "C", "D"])


@pytest.mark.parametrize(
    ("features", "task", "classes", "message"),
    [
        (
            ["income", "age"],
            "regression",
            None,
            r"feature 'age' is not a column of the training data \(it has income, grade, "
            r"loan_id, defaulted\); pass the columns the model was trained on",
        ),
        (["defaulted"], "regression", None, "feature 'defaulted' is the target column"),
        (["income", "income"], "regression", None, "income are listed more than once"),
        ([], "regression", None, "needs at least one feature column"),
        (["income"], "classification", None, "a classification signature needs the model's"),
        (["income"], "regression", [0, 1], r"a regression model has no classes, but classes"),
        (["income"], "ranking", None, "task 'ranking' is not one of classification"),
    ],
)
def test_wrong_inputs_are_refused(
    features: list[str], task: str, classes: list[int] | None, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        signature_from_schema(SCHEMA, features, task=task, classes=classes)


def test_the_id_and_sensitive_columns_are_carried_beside_the_inputs() -> None:
    schema = DatasetSchema(
        columns=[*SCHEMA.columns, ColumnSchema(name="sex", dtype="string", role="sensitive")]
    )
    sig = signature_from_schema(schema, ["income", "grade"], task="classification", classes=[0, 1])

    assert (sig.id_column, sig.target) == ("loan_id", "defaulted")
    assert sig.carried == [
        SignatureColumn(name="loan_id", dtype="int64"),
        SignatureColumn(name="sex", dtype="string"),
    ]
    allowed = signature_from_schema(schema, ["income", "sex"], task="regression")
    assert [c.name for c in allowed.carried or []] == ["loan_id"]  # sex is an input there


def test_a_version_registered_before_carried_columns_gets_them_from_its_training_data(
    workspace: Workspace,
    data: tuple[pd.DataFrame, pd.Series, pd.Series],
    fitted: dict[str, Fitted],
    tmp_path: Path,
) -> None:
    X, label, _ = data
    table = X.assign(diagnosis=label, patient=[f"P{i}" for i in range(len(X))])
    table.to_csv(tmp_path / "cancer.csv", index=False)
    dataset = ingest(
        workspace, tmp_path / "cancer.csv", name="cancer", target="diagnosis", id="patient"
    ).version
    old = signature_from_schema(
        dataset.schema_, FEATURES, task="classification", classes=[0, 1]
    ).model_copy(update={"id_column": None, "target": None, "carried": None})
    version = register(
        workspace,
        "cancer",
        fitted["logistic"].pipeline,
        task="classification",
        signature=old,
        dataset_version_id=dataset.id,
    )
    loaded = load_model(workspace, version.ref).signature
    assert loaded is not None
    assert (loaded.id_column, loaded.target) == ("patient", "diagnosis")
    assert loaded.carried == [SignatureColumn(name="patient", dtype="string")]
    assert with_carried(workspace, version, loaded) is loaded  # nothing left to fill
