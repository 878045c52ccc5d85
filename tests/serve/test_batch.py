"""Batch scoring: files streamed in chunks give the same answers as scoring in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serve_cases import FEATURES, NUMERIC, add, frame
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from shipyard.cli.app import main
from shipyard.core.errors import Conflict, Invalid, NotFound
from shipyard.core.records import ColumnSchema, DatasetSchema
from shipyard.registry import load_model, register, signature_from_schema
from shipyard.serve.batch import score_file
from shipyard.store.workspace import Workspace


@pytest.fixture
def ws(workspace: Workspace, pipelines: dict[str, Pipeline]) -> Workspace:
    add(workspace, pipelines["a"])  # credit-risk@1
    add(workspace, pipelines["b"], failed=True)  # credit-risk@2, rejected
    add(workspace, pipelines["a"], nullable=False)  # credit-risk@3, no nulls allowed
    return workspace


def loans(n: int, seed: int = 5) -> pd.DataFrame:
    X, _ = frame(n, seed)
    X.insert(0, "loan_id", [f"L{i:06d}" for i in range(n)])
    X.loc[X.index[10:20], "score"] = np.nan  # missing values go through the imputer
    return X


def in_memory(ws: Workspace, X: pd.DataFrame) -> pd.DataFrame:
    model = load_model(ws, "credit-risk@1")
    proba = model.predict_proba(X[FEATURES])
    return pd.DataFrame(
        {
            "prediction": model.predict(X[FEATURES]),
            "probability_no": proba[:, 0],
            "probability_yes": proba[:, 1],
        }
    )


def test_a_large_csv_in_chunks_equals_in_memory_predictions(ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    loans(120_000).to_csv(source, index=False)
    seen: list[tuple[int, int | None]] = []
    result = score_file(
        ws,
        source,
        "credit-risk@1",
        tmp_path / "out" / "scores.parquet",
        chunk_rows=25_000,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (result.rows, result.chunks, result.model_ref) == (120_000, 5, "credit-risk@1")
    assert seen == [
        (25_000, None),
        (50_000, None),
        (75_000, None),
        (100_000, None),
        (120_000, None),
    ]

    scored = pq.read_table(tmp_path / "out" / "scores.parquet").to_pandas()
    assert list(scored.columns) == [
        "prediction",
        "probability_no",
        "probability_yes",
        "model_version",
    ]
    expected = in_memory(ws, pd.read_csv(source))
    assert (scored["prediction"].to_numpy() == expected["prediction"].to_numpy()).all()
    np.testing.assert_allclose(scored["probability_yes"], expected["probability_yes"], rtol=1e-12)
    assert set(scored["model_version"]) == {"credit-risk@1"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scores.parquet"]


def test_parquet_in_csv_out_with_an_id_kept(ws: Workspace, tmp_path: Path) -> None:
    X = loans(10_000)
    source = tmp_path / "loans.parquet"
    pq.write_table(pa.Table.from_pandas(X, preserve_index=False), source, row_group_size=3_000)
    seen: list[tuple[int, int | None]] = []
    out = tmp_path / "scores.csv"
    result = score_file(
        ws,
        source,
        "credit-risk@1",
        out,
        chunk_rows=4_000,
        keep=["loan_id", "grade", "loan_id"],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (result.rows, result.chunks) == (10_000, 3)
    assert seen == [(4_000, 10_000), (8_000, 10_000), (10_000, 10_000)]
    scored = pd.read_csv(out)
    assert list(scored.columns) == [
        "loan_id",
        "grade",
        "prediction",
        "probability_no",
        "probability_yes",
        "model_version",
    ]
    assert (scored["loan_id"] == X["loan_id"]).all()
    assert (scored["grade"] == X["grade"]).all()
    expected = in_memory(ws, X)
    assert (scored["prediction"].to_numpy() == expected["prediction"].to_numpy()).all()
    np.testing.assert_allclose(scored["probability_yes"], expected["probability_yes"], rtol=1e-9)


def test_a_missing_column_is_named_and_nothing_is_written(ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    loans(100).drop(columns=["score"]).to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    with pytest.raises(Invalid, match=r"loans.csv lacks column\(s\) 'score' that the model needs"):
        score_file(ws, source, "credit-risk@1", out)
    assert not out.exists()


@pytest.mark.parametrize("row", [5, 70_001])  # in the first block read, and far beyond it
def test_text_in_a_numeric_column_is_named_with_its_row(
    ws: Workspace, tmp_path: Path, row: int
) -> None:
    X = loans(90_000)
    X["income"] = X["income"].astype(object)
    X.loc[row - 1, "income"] = "lots"
    files = tmp_path / "files"
    files.mkdir()
    source = files / "loans.csv"
    X.to_csv(source, index=False)
    out = files / "scores.parquet"
    with pytest.raises(
        Invalid,
        match=rf"loans.csv: column 'income', row {row}: 'lots' is not a number \(the model "
        r"credit-risk@1 expects float64\)",
    ):
        score_file(ws, source, "credit-risk@1", out, chunk_rows=20_000)
    assert sorted(p.name for p in files.iterdir()) == ["loans.csv"]  # no partial output


def test_a_parquet_column_of_the_wrong_type_is_named_with_its_row(
    ws: Workspace, tmp_path: Path
) -> None:
    X = loans(50)
    X["age"] = X["age"].astype(str)
    X.loc[7, "age"] = "old"
    source = tmp_path / "loans.parquet"
    pq.write_table(pa.Table.from_pandas(X, preserve_index=False), source)
    with pytest.raises(Invalid, match=r"column 'age', row 8: 'old' is not a number"):
        score_file(ws, source, "credit-risk@1", tmp_path / "out.parquet")
    X = loans(50)
    X["score"] = pd.Timestamp("2025-01-01")
    pq.write_table(pa.Table.from_pandas(X, preserve_index=False), source)
    with pytest.raises(
        Invalid, match=r"column 'score' holds timestamp\[.*\] values, but the model"
    ):
        score_file(ws, source, "credit-risk@1", tmp_path / "out.parquet")


def test_an_empty_value_where_the_model_allows_none(ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    loans(100).to_csv(source, index=False)  # rows 11-20 have no score
    with pytest.raises(
        Invalid, match=r"column 'score', row 11 is empty, but the model credit-risk@3"
    ):
        score_file(ws, source, "credit-risk@3", tmp_path / "out.parquet")


def test_a_rejected_model_is_refused(ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    loans(10).to_csv(source, index=False)
    with pytest.raises(Conflict, match=r"credit-risk@2 was rejected by its gates \(f1 >= 0.9"):
        score_file(ws, source, "credit-risk@2", tmp_path / "out.parquet")


def test_bad_arguments(ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "loans.csv"
    loans(10).to_csv(source, index=False)
    with pytest.raises(Invalid, match=r"output file .*out.xlsx.*use one of .csv, .tsv, .parquet"):
        score_file(ws, source, "credit-risk@1", tmp_path / "out.xlsx")
    with pytest.raises(NotFound, match=r"does not exist"):
        score_file(ws, tmp_path / "nope.csv", "credit-risk@1", tmp_path / "out.csv")
    with pytest.raises(Invalid, match=r"--keep account: not a column of loans.csv"):
        score_file(ws, source, "credit-risk@1", tmp_path / "out.csv", keep=["account"])
    with pytest.raises(Invalid, match=r"--keep prediction: the output already has"):
        score_file(ws, source, "credit-risk@1", tmp_path / "out.csv", keep=["prediction"])
    with pytest.raises(Invalid, match=r"the output .* is the file being scored"):
        score_file(ws, source, "credit-risk@1", source)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(["loan_id", *FEATURES]) + "\n")
    with pytest.raises(Invalid, match=r"empty.csv has no data rows"):
        score_file(ws, header_only, "credit-risk@1", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


# -- the id kept, ranges as the server treats them (issue 17, items 8 and 11) -------------------

INCOME_MAX = 150_000.0


def register_loans(ws: Workspace, pipeline: Pipeline) -> str:
    """A model whose signature came from a data set declaring loan_id as its id, and the
    training range of income: what `shipyard train` registers."""
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="loan_id", dtype="string", role="id"),
            ColumnSchema(name="income", dtype="float64", min=0.0, max=INCOME_MAX),
            *(ColumnSchema(name=c, dtype="float64") for c in NUMERIC if c != "income"),
            ColumnSchema(name="grade", dtype="string", values=["A", "B", "C", "D"]),
        ]
    )
    sig = signature_from_schema(schema, FEATURES, task="classification", classes=["no", "yes"])
    return register(ws, "loans", pipeline, task="classification", signature=sig).ref


def test_the_data_sets_id_column_is_kept_without_asking(
    ws: Workspace, pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    ref = register_loans(ws, pipelines["a"])
    X = loans(500)
    source = tmp_path / "loans.csv"
    X.to_csv(source, index=False)
    result = score_file(ws, source, ref, tmp_path / "scores.parquet", keep=["grade"])
    scored = pq.read_table(tmp_path / "scores.parquet").to_pandas()
    assert list(scored.columns)[:3] == ["loan_id", "grade", "prediction"]
    assert (scored["loan_id"] == X["loan_id"]).all()
    assert result.kept == ["loan_id", "grade"]


def test_out_of_range_values_are_scored_and_counted_or_refused_when_strict(
    ws: Workspace, pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    ref = register_loans(ws, pipelines["a"])
    X = loans(300)
    X.loc[[2, 250], "income"] = INCOME_MAX * 2
    X.loc[7, "grade"] = "E"
    source = tmp_path / "loans.parquet"
    pq.write_table(pa.Table.from_pandas(X, preserve_index=False), source)
    out = tmp_path / "scores.parquet"
    result = score_file(ws, source, ref, out, chunk_rows=100)
    assert result.out_of_range == {"income": 2, "grade": 1}
    assert pq.read_table(out).num_rows == 300
    out.unlink()
    with pytest.raises(
        Invalid,
        match=r"^loans.parquet: column 'income', row 3: 300000.0 is outside the training data's "
        r"range \(0 to 150000\), and strict ranges refuse it. Score without --strict-ranges",
    ):
        score_file(ws, source, ref, out, chunk_rows=100, strict_ranges=True)
    assert not out.exists()


def test_predict_cli_keeps_the_id_and_a_comma_list_and_reports_unseen_values(
    ws: Workspace, pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    ref = register_loans(ws, pipelines["a"])
    X = loans(200)
    X.loc[5, "income"] = INCOME_MAX * 3
    source = tmp_path / "loans.csv"
    X.to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    home = str(ws.settings.home)
    args = ["--home", home, "predict", str(source), "--model", ref, "--out", str(out)]
    with CliRunner().isolation(env={"COLUMNS": "100"}) as (stdout, _stderr, _):
        try:
            main([*args, "--keep", "debt, grade"])
        except SystemExit as exc:
            assert exc.code == 0
        shown = stdout.getvalue().decode()
    assert list(pd.read_csv(out).columns)[:4] == ["loan_id", "debt", "grade", "prediction"]
    assert "columns kept: loan_id, debt, grade" in " ".join(shown.split())
    assert "! outside the training data, scored anyway: income 1\n" in shown
    assert "unknown categories; --strict-ranges refuses" in shown
    with CliRunner().isolation(env={"COLUMNS": "100"}) as (_stdout, stderr, _):
        with pytest.raises(SystemExit) as refused:
            main([*args, "--strict-ranges"])
        error = " ".join(stderr.getvalue().decode().split())
    assert refused.value.code == 2
    assert "column 'income', row 6: 450000.0 is outside the training data's range" in error
