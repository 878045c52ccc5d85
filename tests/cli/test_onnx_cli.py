"""`shipyard models onnx`: compile a registered version against held-out rows from a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_cli import run

from shipyard.core.records import ColumnSchema, DatasetSchema
from shipyard.core.settings import Settings
from shipyard.registry import get_version, register, signature_from_schema
from shipyard.store.workspace import Workspace

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")


def rows(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"income": rng.normal(50, 10, n), "region": rng.choice(["n", "s"], n)})
    y = (X["income"] + (X["region"] == "n") * 5 > 52).to_numpy().astype(int)
    return X, y


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    assert run("--home", str(home), "init").exit_code == 0
    X, y = rows(300)
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["income"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False),
                ),
                ["region"],
            ),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(X, y)
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="income", dtype="float64"),
            ColumnSchema(name="region", dtype="string", values=["n", "s"]),
        ]
    )
    sig = signature_from_schema(schema, ["income", "region"], task="classification", classes=[0, 1])
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        register(ws, "loans", pipeline, task="classification", signature=sig)
    finally:
        ws.close()
    return home


def test_models_onnx_prints_the_verdict_and_keeps_an_exact_graph(
    home: Path, tmp_path: Path
) -> None:
    check = tmp_path / "holdout.parquet"
    rows(80)[0].to_parquet(check)

    done = run("--home", str(home), "models", "onnx", "loans@1", "--check", str(check))

    assert done.exit_code == 0, done.stderr
    assert "ONNX accepted: max |diff|" in done.stdout
    assert "on 80 rows (tolerance 1e-05)" in done.stdout
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        assert "model.onnx" in get_version(ws, "loans@1").documents
    finally:
        ws.close()


def test_models_onnx_json_reports_a_rejection(home: Path, tmp_path: Path) -> None:
    check = tmp_path / "holdout.csv"
    rows(50)[0].to_csv(check, index=False)

    done = run(
        "--home",
        str(home),
        "models",
        "onnx",
        "loans@1",
        "--check",
        str(check),
        "--tolerance",
        "0",
        "--json",
    )

    assert done.exit_code == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["accepted"] is False and verdict["rows"] == 50
    assert verdict["max_abs_diff"] > 0


def test_models_onnx_refuses_a_file_it_cannot_read(home: Path, tmp_path: Path) -> None:
    done = run(
        "--home", str(home), "models", "onnx", "loans@1", "--check", str(tmp_path / "x.json")
    )

    assert done.exit_code != 0
    assert "give a .csv or .parquet" in done.stderr
