"""evaluate_model on real models: figures equal scikit-learn's and fairlearn's own, slices add
up, explanations land on the original columns, and bad input is refused with a clear message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from lightgbm import LGBMClassifier
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import calibration_curve
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard.evaluate
from shipyard.core.errors import Invalid
from shipyard.evaluate import EvaluationReport, compute, evaluate_model
from shipyard.evaluate.slices import groups

if TYPE_CHECKING:
    from conftest import Case


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.evaluate.__all__) == [
        "Calibration",
        "EvaluationReport",
        "GroupFairness",
        "MetricScorer",
        "ParsedGate",
        "Residuals",
        "RocCurve",
        "SliceRow",
        "check_gates",
        "check_metric",
        "compute",
        "evaluate_model",
        "feature_importance",
        "greater_is_better",
        "metric_names",
        "model_card",
        "parse_gate",
        "positive_class",
        "report_html",
        "run_tests",
        "sklearn_scorer",
        "validate_gates",
    ]


# -- classification -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer_report(cancer: Case) -> EvaluationReport:
    return evaluate_model(cancer.model, cancer.X_test, cancer.y_test, task="classification")


def test_metrics_confusion_and_curves_equal_sklearn(
    cancer: Case, cancer_report: EvaluationReport
) -> None:
    report, y = cancer_report, cancer.y_test.to_numpy()
    pred = cancer.model.predict(cancer.X_test)
    proba = cancer.model.predict_proba(cancer.X_test)[:, 1]
    assert report.rows == len(y)
    assert report.metrics == compute("classification", y, pred, proba)
    assert report.labels == ["0", "1"]
    assert report.confusion_matrix == skm.confusion_matrix(y, pred).tolist()
    assert sum(map(sum, report.confusion_matrix)) == report.rows

    assert report.roc is not None
    assert report.roc.auc == pytest.approx(skm.roc_auc_score(y, proba))
    assert report.roc.auc == pytest.approx(report.metrics["roc_auc"])
    assert len(report.roc.fpr) == len(report.roc.tpr) <= 200
    assert (report.roc.fpr[0], report.roc.tpr[-1]) == (0.0, 1.0)

    cal = report.calibration
    assert cal is not None and cal.kind == "positive class"
    assert len(cal.prob_pred) == len(cal.prob_true) == len(cal.counts) == 10
    assert sum(cal.counts) == report.rows
    prob_true, prob_pred = calibration_curve(y, proba, n_bins=10)
    assert [t for t in cal.prob_true if t is not None] == pytest.approx(prob_true)
    assert [p for p in cal.prob_pred if p is not None] == pytest.approx(prob_pred)
    assert cal.brier == pytest.approx(skm.brier_score_loss(y, proba))


def test_the_roc_curve_is_downsampled_to_200_points(loans: Case, make_loans: Callable) -> None:
    X, y = make_loans(6000, seed=3)
    report = evaluate_model(loans.model, X, y, task="classification", explain=False)
    assert report.roc is not None
    full_fpr, _, _ = skm.roc_curve(y == "yes", loans.model.predict_proba(X[X.columns[:5]])[:, 1])
    assert len(full_fpr) > 200
    assert len(report.roc.fpr) == 200
    assert report.roc.fpr == sorted(report.roc.fpr)
    assert (report.roc.fpr[0], report.roc.fpr[-1], report.roc.tpr[-1]) == (0.0, 1.0, 1.0)


def test_the_report_round_trips_through_json(loans_report: EvaluationReport) -> None:
    text = loans_report.model_dump_json()
    assert EvaluationReport.model_validate_json(text) == loans_report
    with pytest.raises(ValueError, match="frozen"):
        loans_report.rows = 1  # type: ignore[misc]


def test_string_labels_and_columns_the_model_does_not_know(
    loans: Case, loans_report: EvaluationReport
) -> None:
    # X_test carries `sex`, which the pipeline was not trained on: it is dropped to predict.
    assert "sex" in loans.X_test.columns
    assert loans_report.labels == ["no", "yes"]  # positive class: "yes"
    features = loans.X_test[list(loans.model.feature_names_in_)]
    pred, proba = loans.model.predict(features), loans.model.predict_proba(features)
    y = loans.y_test.to_numpy()
    assert loans_report.metrics["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="yes"))
    assert loans_report.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y == "yes", proba[:, 1])
    )
    assert loans_report.confusion_matrix == skm.confusion_matrix(y, pred).tolist()
    assert loans_report.missing == {"income": pytest.approx(loans.X_test["income"].isna().mean())}


def test_slices_add_up_and_equal_metrics_on_the_subset(
    loans: Case, loans_report: EvaluationReport
) -> None:
    X, y = loans.X_test, loans.y_test.to_numpy()
    pred = loans.model.predict(X[list(loans.model.feature_names_in_)])
    proba = loans.model.predict_proba(X[list(loans.model.feature_names_in_)])
    sex = loans_report.slices["sex"]
    assert [s.value for s in sex] == ["m", "f"]  # largest group first
    assert sum(s.rows for s in sex) == loans_report.rows
    for row in sex:
        mask = (X["sex"] == row.value).to_numpy()
        expected = compute("classification", y[mask], pred[mask], proba[mask], labels=["no", "yes"])
        assert row.metrics == pytest.approx(expected)

    age = loans_report.slices["age"]  # numeric: at most five quantile bins, in order
    assert 2 <= len(age) <= 5
    assert age[0].value.startswith("[18, ")
    assert age[-1].value.endswith("79]")
    assert sum(s.rows for s in age) == loans_report.rows
    assert min(s.rows for s in age) > loans_report.rows / 10


def test_numeric_bins_and_missing_values_form_groups() -> None:
    values = pd.Series([23, 35, 47, 62, 80, None, 29, 41, 55, 70])
    assert groups(values).tolist() == [
        "[23, 32.6)",
        "[32.6, 42.2)",
        "[42.2, 53.4)",
        "[53.4, 65.2)",
        "[65.2, 80]",
        "(missing)",
        "[23, 32.6)",
        "[32.6, 42.2)",
        "[53.4, 65.2)",
        "[65.2, 80]",
    ]
    # Edges that agree to three digits get more, so no two bins share a label.
    close = groups(pd.Series([1.0001, 1.0002, 1.0003, 1.0004, 1.0005, 1.0006, 1.0007]))
    assert close.iloc[0] == "[1.0001, 1.0002)" and close.nunique() == 5
    assert groups(pd.Series([0, 1, 1, 0])).tolist() == ["0", "1", "1", "0"]  # few values: as is
    assert groups(pd.Series([0, 1.0, None])).tolist() == ["0", "1", "(missing)"]
    assert groups(pd.Series(["a", None, "b"])).tolist() == ["a", "(missing)", "b"]


def test_fairness_equals_fairlearn(loans: Case, loans_report: EvaluationReport) -> None:
    X = loans.X_test
    y = (loans.y_test == "yes").to_numpy()
    pred = loans.model.predict(X[list(loans.model.feature_names_in_)]) == "yes"
    for column, sensitive in (("sex", X["sex"]), ("age", groups(X["age"]))):
        got = loans_report.fairness[column]
        assert got.demographic_parity_difference == pytest.approx(
            demographic_parity_difference(y, pred, sensitive_features=sensitive), abs=1e-12
        )
        assert got.equalized_odds_difference == pytest.approx(
            equalized_odds_difference(y, pred, sensitive_features=sensitive), abs=1e-12
        )


def test_worst_slice_picks_the_lowest_score_or_highest_loss(
    loans_report: EvaluationReport,
) -> None:
    _, row = loans_report.worst_slice("f1") or ("", None)
    every = [(c, r) for c, rows in loans_report.slices.items() for r in rows]
    assert row is not None and row.metrics["f1"] == min(r.metrics["f1"] for _, r in every)
    worst_loss = loans_report.worst_slice("log_loss", "sex")
    assert worst_loss is not None and worst_loss[0] == "sex"
    assert worst_loss[1].metrics["log_loss"] == max(
        r.metrics["log_loss"] for r in loans_report.slices["sex"]
    )
    assert loans_report.worst_slice("f1", "nowhere") is None


def test_multiclass_report() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    names = np.array(["setosa", "versicolor", "virginica"])
    y = pd.Series(names[y.to_numpy()])
    X = X.assign(site=np.where(np.arange(len(X)) % 3 == 0, "north", "south"))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(X.iloc[::2, :4], y.iloc[::2])
    X_test, y_test = X.iloc[1::2], y.iloc[1::2]
    report = evaluate_model(model, X_test, y_test, task="classification", sensitive=["site"])
    proba = model.predict_proba(X_test.iloc[:, :4])
    assert report.labels == list(names)
    assert np.array(report.confusion_matrix).shape == (3, 3)
    assert report.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_test, proba, multi_class="ovr")
    )
    assert report.roc is not None and report.roc.average == "micro"
    assert report.calibration is not None and report.calibration.kind == "confidence"
    assert report.calibration.brier == pytest.approx(skm.brier_score_loss(y_test, proba))
    assert report.fairness == {}
    assert "fairness measures are computed for binary classification only" in report.notes
    assert report.importance_method.startswith("linear SHAP")


# -- explanations -------------------------------------------------------------------------------


def test_shap_ranks_signal_over_noise_on_original_columns(
    loans_report: EvaluationReport,
) -> None:
    importance = loans_report.importance
    assert loans_report.importance_method == "shap.TreeExplainer on 500 rows"
    # One-hot columns (cat__color_red, ...) are summed back onto `color`; `sex` is not a feature.
    assert set(importance) == {"signal", "noise", "color", "age", "income"}
    assert list(importance)[:2] == ["signal", "color"]
    assert importance["signal"] > 5 * importance["noise"]
    assert list(importance.values()) == sorted(importance.values(), reverse=True)


@pytest.mark.parametrize(
    ("estimator", "method"),
    [
        (LogisticRegression(max_iter=500), "linear SHAP"),
        (
            RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0),
            "shap.TreeExplainer",
        ),
        (
            KNeighborsClassifier(n_neighbors=15),
            "shap.KernelExplainer over the whole model on 50 rows",
        ),
    ],
    ids=["linear", "forest", "model-agnostic"],
)
def test_each_explainer_maps_back_to_original_columns(
    loans: Case, loan_pipeline: Callable, estimator: Any, method: str
) -> None:
    features = list(loans.model.feature_names_in_)
    model = loan_pipeline(estimator).fit(loans.X_train[features], loans.y_train)
    X, y = loans.X_test.head(300), loans.y_test.head(300)
    report = evaluate_model(model, X, y, task="classification", sensitive=["sex"], seed=1)
    assert report.importance_method.startswith(method)
    assert set(report.importance) == set(features)
    assert report.importance["signal"] > report.importance["noise"]
    assert report.importance["color"] > report.importance["noise"]


def test_a_plain_estimator_fitted_on_an_array(cancer: Case) -> None:
    # Fitted without column names: it gets an array (a DataFrame would make sklearn warn).
    model = RandomForestClassifier(n_estimators=20, random_state=0)
    model.fit(cancer.X_train.to_numpy(), cancer.y_train)
    X = cancer.X_test.assign(site=np.where(np.arange(len(cancer.X_test)) % 2, "a", "b"))
    report = evaluate_model(model, X, cancer.y_test, task="classification", sensitive=["site"])
    assert report.metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(cancer.y_test, model.predict(cancer.X_test.to_numpy()))
    )
    assert set(report.importance) == set(cancer.X_test.columns)
    assert report.importance_method.startswith("shap.TreeExplainer")


class _MismatchedLinear(ClassifierMixin, BaseEstimator):
    """A user's model whose `coef_` describes its own expanded features, not its inputs."""

    def fit(self, X: Any, y: Any) -> _MismatchedLinear:
        self.inner_ = LogisticRegression(max_iter=1000).fit(self._expand(X), y)
        self.coef_, self.intercept_ = self.inner_.coef_, self.inner_.intercept_
        self.classes_ = self.inner_.classes_
        return self

    def _expand(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return np.c_[X, X**2]

    def predict(self, X: Any) -> np.ndarray:
        return self.inner_.predict(self._expand(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.inner_.predict_proba(self._expand(X))


def test_when_shap_fails_permutation_importance_says_so(cancer: Case) -> None:
    columns = ["mean radius", "mean texture", "mean smoothness", "worst area"]
    X = cancer.X_train[columns] / cancer.X_train[columns].std()
    model = _MismatchedLinear().fit(X, cancer.y_train)
    X_test = cancer.X_test[columns] / cancer.X_train[columns].std()
    report = evaluate_model(model, X_test, cancer.y_test, task="classification")
    assert report.importance_method.startswith(
        "permutation importance (accuracy drop, 5 repeats on 171 rows) (SHAP failed: ValueError"
    )
    assert set(report.importance) == set(columns)


def test_y_is_matched_to_x_by_position_and_one_sensitive_name_is_enough(loans: Case) -> None:
    X, y = loans.X_test.head(600), loans.y_test.head(600).reset_index(drop=True)
    assert not X.index.equals(y.index)
    report = evaluate_model(
        loans.model, X, y, task="classification", sensitive="sex", max_explain_rows=100
    )
    assert list(report.slices) == ["sex"]
    assert report.importance_method == "shap.TreeExplainer on 100 rows"
    assert (
        report.metrics
        == evaluate_model(
            loans.model, X, y.set_axis(X.index), task="classification", explain=False
        ).metrics
    )


def test_explain_false_skips_explanations(cancer: Case) -> None:
    report = evaluate_model(
        cancer.model, cancer.X_test, cancer.y_test, task="classification", explain=False
    )
    assert report.importance == {}
    assert report.importance_method == "not computed (explain=False)"


# -- regression and clustering ------------------------------------------------------------------


def test_regression_report(diabetes: Case, diabetes_report: EvaluationReport) -> None:
    y = diabetes.y_test.to_numpy()
    pred = diabetes.model.predict(diabetes.X_test)
    assert diabetes_report.metrics == compute("regression", y, pred)
    res = diabetes_report.residuals
    assert res is not None
    assert res.mean == pytest.approx(np.mean(y - pred))
    assert res.quantiles["p50"] == pytest.approx(np.median(y - pred))
    assert sum(res.counts) == len(y) and len(res.edges) == len(res.counts) + 1
    assert diabetes_report.confusion_matrix is None and diabetes_report.roc is None
    assert [s.rows for s in diabetes_report.slices["sex"]] == [
        int(n) for n in diabetes.X_test["sex"].value_counts()
    ]
    assert diabetes_report.importance_method == f"shap.TreeExplainer on {len(y)} rows"
    assert next(iter(diabetes_report.importance)) in {"bmi", "s5"}


def test_clustering_report() -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), KMeans(n_clusters=3, n_init=3, random_state=0)).fit(X)
    report = evaluate_model(model, X, None, task="clustering")
    labels = model.predict(X)
    scaled = model[:-1].transform(X)
    assert report.metrics["silhouette"] == pytest.approx(skm.silhouette_score(scaled, labels))
    assert report.metrics["davies_bouldin"] == pytest.approx(
        skm.davies_bouldin_score(scaled, labels)
    )
    assert report.cluster_sizes is not None and sum(report.cluster_sizes.values()) == len(X)
    assert report.importance == {}
    assert report.importance_method == (
        "not computed: clustering models have no prediction score to attribute"
    )


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_to_do(loans: Case, cancer: Case) -> None:
    X, y = loans.X_test, loans.y_test
    with pytest.raises(Invalid, match=r"sensitive column\(s\) 'race' are not in the data; pass"):
        evaluate_model(loans.model, X, y, task="classification", sensitive=["race"])
    with pytest.raises(Invalid, match="classification needs the true target values: pass y"):
        evaluate_model(loans.model, X, None, task="classification")
    with pytest.raises(Invalid, match=r"the model needs column\(s\) 'income' that the data does"):
        evaluate_model(loans.model, X.drop(columns=["income"]), y, task="classification")
    with pytest.raises(Invalid, match=r"label\(s\) \['maybe'\] the model never saw"):
        evaluate_model(loans.model, X, y.replace({"no": "maybe"}), task="classification")
    with pytest.raises(Invalid, match="task 'ranking' is not known"):
        evaluate_model(loans.model, X, y, task="ranking")
    with pytest.raises(Invalid, match="X has 240 rows but y has 10"):
        evaluate_model(cancer.model, X.head(240), y.head(10), task="classification")
    with pytest.raises(Invalid, match=r"y has 1 missing value\(s\); evaluate on labelled rows"):
        evaluate_model(loans.model, X, y.mask(y.index == y.index[3]), task="classification")
    with pytest.raises(Invalid, match="X must be a pandas DataFrame, got ndarray"):
        evaluate_model(cancer.model, cancer.X_test.to_numpy(), y, task="classification")


def test_a_50k_row_holdout_evaluates_in_seconds(
    loans: Case, make_loans: Callable, loan_pipeline: Callable
) -> None:
    X, y = make_loans(50_000, seed=7)
    evaluate_model(loans.model, X.head(500), y.head(500), task="classification", sensitive=["sex"])
    started = time.perf_counter()
    report = evaluate_model(
        loans.model, X, y, task="classification", sensitive=["sex", "age"], seed=0
    )
    elapsed = time.perf_counter() - started
    assert report.rows == 50_000
    assert elapsed < 10, f"evaluating 50k rows took {elapsed:.1f}s"


def test_lightgbm_without_preprocessing_uses_category_columns(loans: Case) -> None:
    features = ["signal", "noise", "color", "age"]
    X_train = loans.X_train[features].astype({"color": "category"})
    model = LGBMClassifier(n_estimators=30, verbose=-1, random_state=0).fit(X_train, loans.y_train)
    X = loans.X_test.astype({"color": "category"})
    report = evaluate_model(model, X, loans.y_test, task="classification", sensitive=["sex"])
    assert report.importance_method.startswith("shap.TreeExplainer")
    assert set(report.importance) == set(features)
    assert report.importance["color"] > report.importance["noise"]
