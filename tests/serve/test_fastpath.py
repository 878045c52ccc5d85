"""The compiled predictor equals the pipeline it was compiled from, on real data and models.

Data: scikit-learn's breast-cancer table plus two synthetic categorical columns, `grade` (four
categories) and `region` (40 categories, Zipf-skewed, so the trainer's `max_categories=30`
groups the rarest as infrequent), with missing values in numbers and categories. Pipelines are
built by `shipyard.train.preprocess.build_pipeline`, saved and loaded through the registry's
bundles, and compared on held-out rows that add unknown categories and more missing values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_info

from shipyard.core.errors import Invalid
from shipyard.core.records import Signature, SignatureColumn
from shipyard.registry import LoadedModel, load_bundle, save_bundle
from shipyard.serve import fastpath, hgb
from shipyard.serve.fastpath import Output, compile_predictor
from shipyard.serve.inputs import Batch, to_columns
from shipyard.store.workspace import Workspace
from shipyard.train.preprocess import FeaturePlan, build_pipeline

NUMERIC = ["mean radius", "mean texture", "mean smoothness", "mean compactness", "worst area"]
CATEGORICAL = ["grade", "region"]
PLAN = FeaturePlan(numeric=NUMERIC, categorical=CATEGORICAL)
REGIONS = [f"r{i:02d}" for i in range(40)]
TRAIN = 400


def _table() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(X, binary target, numeric target) for all 569 rows."""
    table = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(11)
    X = table[NUMERIC].copy()
    X["grade"] = rng.choice(["A", "B", "C", "D"], size=len(X))
    weights = 1.0 / np.arange(1, len(REGIONS) + 1)
    X["region"] = rng.choice(REGIONS, size=len(X), p=weights / weights.sum())
    for column, share in (("mean radius", 0.05), ("worst area", 0.03), ("grade", 0.04)):
        X.loc[rng.random(len(X)) < share, column] = None
    X.loc[rng.random(len(X)) < 0.03, "region"] = None
    return X, table["target"], table["mean area"]


def _held_out(X: pd.DataFrame) -> pd.DataFrame:
    """The rows after TRAIN, with unknown categories and extra missing values mixed in."""
    test = X.iloc[TRAIN:].copy().reset_index(drop=True)
    test.loc[::7, "grade"] = "Z"  # never seen, and grade has no infrequent column
    test.loc[3::11, "region"] = "r99"  # never seen: the infrequent column
    test.loc[5::13, "mean texture"] = np.nan
    test.loc[6::17, ["mean smoothness", "region"]] = [np.nan, None]
    return test


def _signature(task: str, classes: list[str] | None = None) -> Signature:
    return Signature(
        inputs=[
            *(SignatureColumn(name=c, dtype="float64") for c in NUMERIC),
            SignatureColumn(name="grade", dtype="string", values=["A", "B", "C", "D"]),
            SignatureColumn(name="region", dtype="string", values=REGIONS),
        ],
        output="class" if task == "classification" else "number",
        classes=classes,
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: JSON values, null for missing."""
    return [
        {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in r}
        for r in (row.items() for _, row in frame.astype(object).iterrows())
    ]


CASES: dict[str, tuple[Any, str, str]] = {
    "logistic": (LogisticRegression(max_iter=5000), "classification", "skops"),
    "hist_gb": (
        HistGradientBoostingClassifier(max_iter=30, random_state=0),
        "classification",
        "skops",
    ),
    "forest_regressor": (
        RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0),
        "regression",
        "skops",
    ),
    "lightgbm": (
        LGBMClassifier(n_estimators=40, random_state=0, verbosity=-1),
        "classification",
        "lightgbm",
    ),
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return _table()


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, pd.Series, pd.Series]) -> dict[str, Pipeline]:
    X, label, area = data
    out = {}
    for name, (estimator, task, _flavor) in CASES.items():
        target = label if task == "classification" else area
        out[name] = build_pipeline(PLAN, estimator).fit(X.iloc[:TRAIN], target.iloc[:TRAIN])
    return out


def _load(ws: Workspace, pipeline: Any, task: str, signature: Signature) -> LoadedModel:
    digest, _flavor = save_bundle(ws, pipeline, task=task)
    return dataclasses.replace(load_bundle(ws, digest), signature=signature)


def _request(model: LoadedModel, frame: pd.DataFrame) -> Batch:
    """The batch serving would build from `frame`'s rows sent as JSON records."""
    assert model.signature is not None
    return to_columns(model.signature, {"rows": _records(frame)}, strict_ranges=False)


def _check(output: Output, model: LoadedModel, frame: pd.DataFrame) -> None:
    lightgbm = model.flavor == "lightgbm"
    if model.task == "classification":
        expected = model.predict_proba(frame)
        assert output.probabilities is not None
        if lightgbm:
            np.testing.assert_allclose(output.probabilities, expected, rtol=1e-12, atol=0)
        else:
            np.testing.assert_allclose(output.probabilities, expected, rtol=0, atol=1e-9)
        assert output.classes == ["0", "1"]
    else:
        assert output.probabilities is None and output.classes is None
    labels = model.predict(frame)
    if labels.dtype.kind == "f":
        np.testing.assert_allclose(output.labels, labels, rtol=1e-12, atol=1e-9)
    else:
        np.testing.assert_array_equal(output.labels, labels)


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_predictions_equal_the_pipeline(
    case: str,
    workspace: Workspace,
    fitted: dict[str, Pipeline],
    data: tuple[pd.DataFrame, pd.Series, pd.Series],
) -> None:
    _estimator, task, flavor = CASES[case]
    classes = ["0", "1"] if task == "classification" else None
    model = _load(workspace, fitted[case], task, _signature(task, classes))
    assert model.flavor == flavor
    test = _held_out(data[0])
    batch = _request(model, test)
    assert {(w["column"], w["rule"]) for w in batch.warnings} == {
        ("grade", "category"),
        ("region", "category"),
    }

    predictor = compile_predictor(model)

    assert predictor.fast, predictor.reason
    assert predictor.reason.startswith("compiled: 5 numeric, 2 categorical columns")
    # NumPy and scikit-learn on small arrays, and LightGBM's Python wrapper around its C call:
    # the batcher runs these on the event loop for longer (only ONNX Runtime lets the lock go).
    assert predictor.holds_gil
    np.testing.assert_array_equal(predictor.transform(batch), model.transform(test))
    _check(predictor.predict(batch), model, test)
    for i in (0, 3, 7, 17):  # one row at a time: unknown grade, unknown region, missing values
        one = _request(model, test.iloc[[i]])
        _check(predictor.predict(one), model, test.iloc[[i]].reset_index(drop=True))


def test_one_hot_maps_unknown_infrequent_and_missing_categories(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted["logistic"], "classification", _signature("classification"))
    encoder = fitted["logistic"][0].named_transformers_["cat"][-1]
    grade_cats, region_cats = encoder.categories_
    rare = set(encoder.infrequent_categories_[1].tolist())
    assert encoder.infrequent_categories_[0] is None and len(rare) >= 5
    assert "(missing)" in set(grade_cats) and "(missing)" in set(region_cats)
    grade_at = len(NUMERIC)
    region_at = grade_at + len(grade_cats)
    infrequent_at = region_at + len(region_cats) - len(rare)  # the last column of X
    predictor = compile_predictor(model)
    rows = [
        {"grade": "Z", "region": "r99"},  # unknown, unknown
        {"grade": None, "region": sorted(rare)[0]},  # missing, infrequent
        {"grade": "B", "region": None},  # known, missing
    ]
    numbers = {c: 1.0 for c in NUMERIC}
    batch = _request(model, pd.DataFrame([{**numbers, **r} for r in rows]))

    X = predictor.transform(batch)

    assert X.shape == (3, infrequent_at + 1)
    assert X[0, grade_at:region_at].sum() == 0  # no infrequent column for grade: all zeros
    assert X[0, region_at:].tolist() == [0.0] * (infrequent_at - region_at) + [1.0]
    assert X[1, grade_at + list(grade_cats).index("(missing)")] == 1.0
    assert X[1, infrequent_at] == 1.0
    assert X[2, grade_at + list(grade_cats).index("B")] == 1.0
    assert X[2, region_at + list(region_cats).index("(missing)")] == 1.0
    assert X[:, grade_at:].sum(axis=1).tolist() == [1.0, 2.0, 2.0]
    frame = pd.DataFrame([{**numbers, **r} for r in rows])
    np.testing.assert_array_equal(X, model.transform(frame))


def test_booleans_travel_as_text_and_match_the_pipeline(workspace: Workspace) -> None:
    X, label, _area = _table()
    X["flag"] = X["mean radius"].fillna(0) > 14
    plan = FeaturePlan(numeric=NUMERIC, categorical=[*CATEGORICAL, "flag"])
    pipeline = build_pipeline(plan, LogisticRegression(max_iter=5000)).fit(X, label)
    signature = _signature("classification", ["0", "1"])
    signature = signature.model_copy(
        update={"inputs": [*signature.inputs, SignatureColumn(name="flag", dtype="bool")]}
    )
    model = _load(workspace, pipeline, "classification", signature)
    rows = _records(X.iloc[:50])
    assert {type(r["flag"]) for r in rows} == {bool}
    batch = to_columns(signature, {"rows": rows})
    assert set(batch.columns["flag"].tolist()) == {"True", "False"}

    predictor = compile_predictor(model)

    assert predictor.fast, predictor.reason
    _check(predictor.predict(batch), model, X.iloc[:50])


def test_other_pipelines_fall_back_to_the_dataframe(
    workspace: Workspace, data: tuple[pd.DataFrame, pd.Series, pd.Series]
) -> None:
    X, label, _area = data
    pipeline = build_pipeline(PLAN, LogisticRegression(max_iter=5000))
    pipeline[0].transformers[0] = ("num", make_pipeline(MinMaxScaler()), NUMERIC)
    pipeline.fit(X.iloc[:TRAIN].fillna({c: 0.0 for c in NUMERIC}), label.iloc[:TRAIN])
    model = _load(workspace, pipeline, "classification", _signature("classification", ["0", "1"]))
    test = _held_out(X).fillna({c: 0.0 for c in NUMERIC})
    batch = _request(model, test)

    predictor = compile_predictor(model)

    assert not predictor.fast
    assert predictor.reason == (
        "not compiled (transformer 'num' is MinMaxScaler, not SimpleImputer + StandardScaler or "
        "SimpleImputer + OneHotEncoder); the pipeline is called on a DataFrame"
    )
    _check(predictor.predict(batch), model, test)
    with pytest.raises(Invalid, match=r"no compiled transform: it was not compiled \(transf"):
        predictor.transform(batch)


def test_a_compiled_predictor_that_disagrees_on_the_probe_rows_is_not_used(
    workspace: Workspace, fitted: dict[str, Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _load(workspace, fitted["logistic"], "classification", _signature("classification"))
    original = fastpath._Prep.transform
    monkeypatch.setattr(fastpath._Prep, "transform", lambda self, b: original(self, b) * 1.001)

    predictor = compile_predictor(model)

    assert not predictor.fast
    assert predictor.reason.startswith(
        "not compiled (its compiled preprocessing differs from the pipeline on probe rows)"
    )


def test_a_batch_without_a_model_column_is_refused(
    workspace: Workspace, fitted: dict[str, Pipeline]
) -> None:
    model = _load(workspace, fitted["lightgbm"], "classification", _signature("classification"))
    predictor = compile_predictor(model)
    batch = Batch(1, {c: np.array([1.0]) for c in NUMERIC})

    with pytest.raises(Invalid, match=r"the batch has no column 'grade', which the model needs"):
        predictor.predict(batch)


def test_threads_must_be_positive(workspace: Workspace, fitted: dict[str, Pipeline]) -> None:
    model = _load(workspace, fitted["lightgbm"], "classification", _signature("classification"))

    with pytest.raises(Invalid, match="threads must be a positive number or None, not 0"):
        compile_predictor(model, threads=0)


# -- native thread pools ---------------------------------------------------------------------------

SEEN: list[list[int]] = []


class OpenMPRecorder(ClassifierMixin, BaseEstimator):
    """Predicts the prior; records the OpenMP thread counts it runs under."""

    def fit(self, X: Any, y: Any) -> OpenMPRecorder:
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        SEEN.append(_openmp_threads())
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _openmp_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"]


@pytest.mark.parametrize("threads", [1, None])
def test_native_thread_pools_are_limited_during_the_call_and_restored(
    threads: int | None,
    workspace: Workspace,
    data: tuple[pd.DataFrame, pd.Series, pd.Series],
) -> None:
    X, label, _area = data
    pipeline = build_pipeline(PLAN, OpenMPRecorder()).fit(X.iloc[:TRAIN], label.iloc[:TRAIN])
    model = _load(workspace, pipeline, "classification", _signature("classification"))
    assert model.flavor == "pickle"
    predictor = compile_predictor(model, threads=threads)
    assert predictor.fast, predictor.reason
    before = _openmp_threads()
    SEEN.clear()

    predictor.predict(_request(model, X.iloc[:3]))

    assert [[1] * len(before) if threads == 1 else before] == SEEN
    assert _openmp_threads() == before


def test_handle_unknown_ignore_sets_no_column_for_unknown_categories(
    workspace: Workspace, data: tuple[pd.DataFrame, pd.Series, pd.Series]
) -> None:
    X, label, _area = data
    pipeline = build_pipeline(PLAN, LogisticRegression(max_iter=5000))
    pipeline.set_params(prep__cat__onehotencoder__handle_unknown="ignore")
    pipeline.fit(X.iloc[:TRAIN], label.iloc[:TRAIN])
    model = _load(workspace, pipeline, "classification", _signature("classification"))
    test = _held_out(X)
    batch = _request(model, test)

    predictor = compile_predictor(model)

    assert predictor.fast, predictor.reason
    X_fast = predictor.transform(batch)
    np.testing.assert_array_equal(X_fast, model.transform(test))
    region_at = len(NUMERIC) + len(pipeline[0].named_transformers_["cat"][-1].categories_[0])
    unknown_region = (test["region"] == "r99").to_numpy()
    assert unknown_region.any()
    assert X_fast[unknown_region, region_at:].sum() == 0  # not the infrequent column
    assert (X_fast[~unknown_region, region_at:].sum(axis=1) == 1).all()
    _check(predictor.predict(batch), model, test)


def test_columns_chosen_by_position_fall_back(
    workspace: Workspace, data: tuple[pd.DataFrame, pd.Series, pd.Series]
) -> None:
    X, label, _area = data
    pipeline = build_pipeline(PLAN, LogisticRegression(max_iter=5000))
    pipeline[0].transformers[0] = ("num", pipeline[0].transformers[0][1], [0, 1, 2, 3, 4])
    pipeline.fit(X.iloc[:TRAIN], label.iloc[:TRAIN])
    model = _load(workspace, pipeline, "classification", _signature("classification"))
    test = _held_out(X)

    predictor = compile_predictor(model)

    assert not predictor.fast
    assert "transformer 'num' selects columns by other than name" in predictor.reason
    _check(predictor.predict(_request(model, test)), model, test)


# -- HistGradientBoosting: trees compiled to NumPy (shipyard.serve.hgb) ----------------------------


def _hgb_target(task: str, label: pd.Series, area: pd.Series) -> pd.Series:
    if task == "multiclass":
        return pd.qcut(area, 3, labels=["small", "medium", "large"]).astype(str)
    return area if task == "regression" else label


def _hgb(task: str) -> Any:
    if task == "regression":
        return HistGradientBoostingRegressor(max_iter=60, random_state=0)
    return HistGradientBoostingClassifier(max_iter=60, random_state=0)


@pytest.mark.parametrize("imputed", [True, False], ids=["imputed", "nan-to-trees"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_hist_gradient_boosting_runs_on_its_compiled_trees_and_equals_the_pipeline(
    task: str,
    imputed: bool,
    workspace: Workspace,
    data: tuple[pd.DataFrame, pd.Series, pd.Series],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, label, area = data
    target = _hgb_target(task, label, area)
    pipeline = build_pipeline(PLAN, _hgb(task))
    if not imputed:  # missing numbers reach the trees as NaN: missing_go_to_left decides
        pipeline[0].transformers[0] = ("num", make_pipeline(StandardScaler()), NUMERIC)
    pipeline.fit(X.iloc[:TRAIN], target.iloc[:TRAIN])
    kind = "regression" if task == "regression" else "classification"
    classes = None if kind == "regression" else [str(c) for c in pipeline.classes_]
    model = _load(workspace, pipeline, kind, _signature(kind, classes))
    test = _held_out(X)
    assert np.isnan(model.transform(test)).any() != imputed

    frames = [test] + [test.iloc[[i]].reset_index(drop=True) for i in (0, 3, 5, 6, 7, 17)]
    if kind == "classification":
        expected = [(model.predict(f), model.predict_proba(f)) for f in frames]
    else:
        expected = [(model.predict(f), None) for f in frames]
    batches = [_request(model, f) for f in frames]  # all held-out rows, then one at a time

    predictor = compile_predictor(model)
    served = model.pipeline[-1]
    for method in ("predict_proba", "predict", "_raw_predict"):  # the compiled trees only
        if hasattr(served, method):
            monkeypatch.setattr(served, method, _refuse)
    outputs = [predictor.predict(b) for b in batches]

    assert predictor.fast, predictor.reason
    assert f"; {type(served).__name__} trees compiled to NumPy (" in predictor.reason
    for output, (labels, probabilities) in zip(outputs, expected, strict=True):
        if probabilities is None:
            assert output.probabilities is None
            np.testing.assert_allclose(output.labels, labels, rtol=1e-9, atol=0)
        else:
            assert output.probabilities is not None and output.classes == classes
            np.testing.assert_allclose(output.probabilities, probabilities, rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(output.labels, labels)


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("the compiled predictor called the estimator")


@pytest.mark.parametrize(
    ("task", "estimator"),
    [
        ("binary", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ("multiclass", HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0)),
        ("regression", HistGradientBoostingRegressor(max_iter=40, random_state=0)),
        ("regression", HistGradientBoostingRegressor(loss="poisson", max_iter=40, random_state=0)),
    ],
    ids=["binary", "multiclass-shallow", "squared-error", "poisson"],
)
def test_forest_equals_the_estimator_on_every_row_with_missing_values(
    task: str, estimator: Any
) -> None:
    X, label, area = _table()
    matrix = X[NUMERIC].to_numpy(np.float64, copy=True)  # 5% / 3% missing in two columns
    matrix[::29, 1] = np.nan  # and in a column that had none in training
    matrix[TRAIN + 3, 2], matrix[TRAIN + 4, 3] = -np.inf, np.inf  # after training
    estimator.fit(matrix[:TRAIN], _hgb_target(task, label, area).iloc[:TRAIN])
    forest = hgb.Forest(estimator)
    method = "predict_proba" if hasattr(estimator, "predict_proba") else "predict"
    expected = getattr(estimator, method)(matrix)

    rows = [getattr(forest, method)(matrix[i : i + 1]) for i in range(len(matrix))]

    np.testing.assert_allclose(np.concatenate(rows), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(getattr(forest, method)(matrix), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(forest.raw(matrix[:64]), estimator._raw_predict(matrix[:64]))
    # The batch walk drops finished pairs at chosen levels; any choice gives the same leaves.
    for levels in (frozenset(), frozenset(range(1, forest.depth)), frozenset({2})):
        forest.compact_at = levels
        np.testing.assert_allclose(getattr(forest, method)(matrix), expected, rtol=1e-12)
    if method == "predict_proba":  # labels too (a regressor's predict is checked above)
        np.testing.assert_array_equal(forest.predict(matrix), estimator.predict(matrix))
    with pytest.raises(ValueError, match=r"X has shape \(1, 4\), the model takes 5 features"):
        forest.raw(matrix[:1, :4])


def test_forest_drops_finished_pairs_where_the_training_rows_say_it_pays() -> None:
    X, label, _area = _table()
    matrix = X[NUMERIC].to_numpy(np.float64, copy=True)
    deep = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=63, random_state=0)
    deep.fit(matrix[:TRAIN], label.iloc[:TRAIN])
    shallow = HistGradientBoostingClassifier(max_iter=10, max_depth=2, random_state=0)
    shallow.fit(matrix[:TRAIN], label.iloc[:TRAIN])

    forest = hgb.Forest(deep)

    assert forest.depth > 6 and forest.compact_at  # a deep forest drops pairs somewhere …
    assert all(0 < level < forest.depth for level in forest.compact_at)
    assert hgb.Forest(shallow).compact_at == frozenset()  # … two levels are not worth a drop
    np.testing.assert_allclose(forest.predict_proba(matrix), deep.predict_proba(matrix))


def test_hist_gradient_boosting_with_categorical_features_calls_the_estimator(
    workspace: Workspace, data: tuple[pd.DataFrame, pd.Series, pd.Series]
) -> None:
    X, label, _area = data
    # Matrix columns 5-9 are grade's one-hot block: split as categories, not thresholds.
    estimator = HistGradientBoostingClassifier(
        max_iter=30, categorical_features=[5, 6, 7, 8, 9], random_state=0
    )
    pipeline = build_pipeline(PLAN, estimator).fit(X.iloc[:TRAIN], label.iloc[:TRAIN])
    assert any(t.nodes["is_categorical"].any() for it in estimator._predictors for t in it)
    model = _load(workspace, pipeline, "classification", _signature("classification"))
    test = _held_out(X)

    predictor = compile_predictor(model)

    assert predictor.fast, predictor.reason
    assert predictor.reason.endswith(
        "; HistGradientBoostingClassifier.predict_proba on the matrix (trees not compiled: "
        "HistGradientBoostingClassifier has categorical features, whose splits are not compiled)"
    )
    _check(predictor.predict(_request(model, test)), model, test)
    assert hgb.unsupported(estimator) is not None
    with pytest.raises(ValueError, match="has categorical features"):
        hgb.Forest(estimator)
