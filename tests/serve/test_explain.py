"""Per-row explanations add up to the model's own raw output, on the request's columns.

Models are the serve suite's loan pipelines (four scaled numbers, a one-hot `grade`), saved and
loaded through the registry's bundles so LightGBM is the registry's NativeLightGBM, compiled by
`fastpath` as the server compiles them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from serve_cases import FEATURES, frame, prep, signature
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler

from shipyard.core.errors import Invalid, NotSupported
from shipyard.core.records import Signature
from shipyard.registry import LoadedModel, load_bundle, save_bundle
from shipyard.serve.explain import Explainer, explain
from shipyard.serve.fastpath import compile_predictor
from shipyard.serve.inputs import Batch, to_columns
from shipyard.store.workspace import Workspace

ESTIMATORS: dict[str, Any] = {
    "lightgbm": LGBMClassifier(n_estimators=30, num_leaves=15, random_state=0, verbosity=-1),
    "logistic": LogisticRegression(max_iter=1000),
    "hist_gb": HistGradientBoostingClassifier(max_iter=30, random_state=0),
}


@pytest.fixture(scope="module")
def fitted() -> dict[str, Pipeline]:
    X, y = frame(2_000, 3)
    return {
        name: Pipeline([("prep", prep()), ("model", estimator)]).fit(X[FEATURES], y)
        for name, estimator in ESTIMATORS.items()
    }


def _load(
    ws: Workspace, pipeline: Any, task: str = "classification", sig: Signature | None = None
) -> LoadedModel:
    digest, _flavor = save_bundle(ws, pipeline, task=task)
    return dataclasses.replace(load_bundle(ws, digest), signature=sig or signature())


def _rows(n: int = 30) -> pd.DataFrame:
    X, _ = frame(n, 9)
    X.loc[X.index[1], "income"] = np.nan  # imputed
    return X[FEATURES]


def _batch(model: LoadedModel, X: pd.DataFrame) -> Batch:
    assert model.signature is not None
    rows = [
        {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()}
        for r in X.to_dict(orient="records")
    ]
    return to_columns(model.signature, {"rows": rows}, strict_ranges=False)


def test_lightgbm_contributions_add_up_to_the_boosters_raw_score(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted["lightgbm"])
    assert model.flavor == "lightgbm"
    predictor = compile_predictor(model)
    X = _rows()

    result = explain(predictor, _batch(model, X), top=len(FEATURES))

    raw = fitted["lightgbm"].predict(X, raw_score=True)  # the original LGBMClassifier
    assert isinstance(result.base_value, float)
    assert result.contributions.shape == (len(X), len(FEATURES))
    np.testing.assert_allclose(result.contributions.sum(axis=1) + result.base, raw, atol=1e-6)
    listed = np.array([sum(item["contribution"] for item in row) for row in result.rows])
    np.testing.assert_allclose(listed + result.base_value, raw, atol=1e-6)
    assert result.output == "log-odds of class 'yes' (LightGBM TreeSHAP, pred_contrib)"


def test_logistic_contributions_add_up_to_the_decision_function_from_a_fixed_baseline(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    pipeline = fitted["logistic"]
    predictor = compile_predictor(_load(workspace, pipeline))
    model = _load(workspace, pipeline)
    X = _rows()
    explainer = Explainer(predictor)

    result = explainer(_batch(model, X), top=len(FEATURES))

    # The baseline is the encoded reference row: numbers at their training mean (0 once
    # scaled), grade's one-hot columns at 1/4 each.
    final = pipeline[-1]
    reference = np.r_[np.zeros(4), np.full(4, 0.25)]
    baseline = float(final.decision_function(reference[np.newaxis, :])[0])
    assert result.base_value == pytest.approx(baseline, abs=1e-12)
    np.testing.assert_allclose(
        result.contributions.sum(axis=1), pipeline.decision_function(X) - baseline, atol=1e-9
    )
    # A row's explanation does not depend on the rows sent with it.
    alone = explainer(_batch(model, X.iloc[[4]]), top=len(FEATURES))
    np.testing.assert_allclose(alone.contributions[0], result.contributions[4], atol=1e-12)
    assert result.output == "log-odds of class 'yes' (linear SHAP from the reference row)"


def test_hist_gradient_boosting_goes_through_shap_tree_explainer(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    pipeline = fitted["hist_gb"]
    model = _load(workspace, pipeline)
    X = _rows()

    result = explain(compile_predictor(model), _batch(model, X), top=len(FEATURES))

    np.testing.assert_allclose(
        result.contributions.sum(axis=1) + result.base, pipeline.decision_function(X), atol=1e-6
    )
    assert result.output == "log-odds of class 'yes' (shap.TreeExplainer)"


def test_a_forest_regressor_explains_its_prediction(workspace: Workspace) -> None:
    X, _ = frame(600, 4)
    target = X["debt"] / X["income"] * 10 + (X["grade"] == "D") * 2.0
    forest = RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0)
    pipeline = Pipeline([("prep", prep()), ("model", forest)]).fit(X[FEATURES], target)
    model = _load(
        workspace, pipeline, "regression", signature().model_copy(update={"classes": None})
    )
    rows = _rows(10)

    result = explain(compile_predictor(model), _batch(model, rows), top=len(FEATURES))

    np.testing.assert_allclose(
        result.contributions.sum(axis=1) + result.base, pipeline.predict(rows), atol=1e-6
    )
    assert result.output == "prediction (shap.TreeExplainer)"


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_top_feature_of_a_row_with_an_extreme_signal_is_that_feature(
    name: str, workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted[name])
    X = _rows(5)
    X.loc[X.index[2], "score"] = 250.0  # five standard deviations below the mean: defaults

    result = explain(compile_predictor(model), _batch(model, X), top=3)

    top = result.rows[2][0]
    assert top["feature"] == "score" and top["value"] == 250.0
    assert top["contribution"] > 0  # towards 'yes'
    assert all(len(row) == 3 for row in result.rows)
    magnitudes = [abs(item["contribution"]) for item in result.rows[2]]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_one_hot_columns_appear_under_their_input_column(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted["logistic"])
    predictor = compile_predictor(model)
    assert predictor.layout is not None
    assert predictor.layout.origins == (*FEATURES[:4], "grade", "grade", "grade", "grade")
    X = _rows(4)
    X["grade"] = ["A", "B", "D", "Z"]  # Z: unknown, no one-hot column set

    result = explain(predictor, _batch(model, X), top=len(FEATURES))

    assert result.features == tuple(FEATURES)
    for row, grade in zip(result.rows, ["A", "B", "D", "Z"], strict=True):
        assert sorted(item["feature"] for item in row) == sorted(FEATURES)
        assert {item["feature"]: item["value"] for item in row}["grade"] == grade
    incomes = {item["feature"]: item["value"] for item in result.rows[1]}
    assert incomes["income"] is None  # missing in the request: reported as such


def test_a_multiclass_model_explains_each_rows_predicted_class(workspace: Workspace) -> None:
    X, _ = frame(1_500, 5)
    y = pd.cut(X["score"], [-np.inf, 600, 700, np.inf], labels=["low", "mid", "high"]).astype(str)
    lgbm = LGBMClassifier(n_estimators=20, num_leaves=7, random_state=0, verbosity=-1)
    pipeline = Pipeline([("prep", prep()), ("model", lgbm)]).fit(X[FEATURES], y)
    classes = sorted(set(y))
    sig = signature().model_copy(update={"classes": classes})
    model = _load(workspace, pipeline, sig=sig)
    rows = _rows(12)

    result = explain(compile_predictor(model), _batch(model, rows), top=len(FEATURES))

    raw = pipeline.predict(rows, raw_score=True)
    chosen = raw[np.arange(len(rows)), raw.argmax(axis=1)]
    np.testing.assert_allclose(result.contributions.sum(axis=1) + result.base, chosen, atol=1e-6)
    assert isinstance(result.base_value, list) and len(result.base_value) == len(rows)
    assert result.output.startswith("raw score of each row's predicted class")


def test_a_model_that_was_not_compiled_is_not_supported(workspace: Workspace) -> None:
    X, y = frame(300, 6)
    pipeline = Pipeline([("prep", prep()), ("model", LogisticRegression())])
    pipeline[0].transformers[0] = ("num", make_pipeline(MinMaxScaler()), FEATURES[:4])
    pipeline.fit(X[FEATURES], y)
    predictor = compile_predictor(_load(workspace, pipeline))
    assert not predictor.fast

    with pytest.raises(NotSupported, match=r"this skops model was not compiled \(transformer"):
        Explainer(predictor)


def test_an_estimator_without_an_explainer_is_not_supported(workspace: Workspace) -> None:
    X, y = frame(300, 7)
    pipeline = Pipeline([("prep", prep()), ("model", KNeighborsClassifier())]).fit(X[FEATURES], y)
    predictor = compile_predictor(_load(workspace, pipeline))
    assert predictor.fast, predictor.reason

    with pytest.raises(
        NotSupported,
        match=r"not available for a skops model whose final estimator is a KNeighborsClassifier",
    ):
        Explainer(predictor)


@pytest.mark.parametrize("top", [0, -1, True, 2.5])
def test_top_must_be_a_positive_whole_number(
    top: Any, workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted["logistic"])
    explainer = Explainer(compile_predictor(model))

    with pytest.raises(Invalid, match=r"top must be a positive whole number of features, not"):
        explainer(_batch(model, _rows(2)), top=top)
