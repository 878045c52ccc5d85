"""The metric catalogue against scikit-learn's own functions on real models and data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from shipyard.core.errors import Invalid
from shipyard.evaluate import (
    check_metric,
    compute,
    greater_is_better,
    metric_names,
    positive_class,
    sklearn_scorer,
)

if TYPE_CHECKING:
    from conftest import Case


def test_the_catalogue_per_task() -> None:
    assert metric_names("classification") == (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
    )
    assert metric_names("regression") == ("rmse", "mae", "r2", "mape")
    assert metric_names("clustering") == ("silhouette", "calinski_harabasz", "davies_bouldin")
    assert not greater_is_better("davies_bouldin")  # 0 is best
    assert greater_is_better("f1") and greater_is_better("r2") and greater_is_better("silhouette")
    assert not any(greater_is_better(m) for m in ("log_loss", "rmse", "mae", "mape"))


def test_an_unknown_metric_names_the_task_and_the_choices() -> None:
    assert check_metric("classification", "f1") == "f1"
    with pytest.raises(
        Invalid,
        match=r"metric 'f2' does not exist for classification; choose one of accuracy, "
        r"balanced_accuracy, precision, recall, f1, roc_auc, log_loss\.",
    ):
        check_metric("classification", "f2")
    with pytest.raises(Invalid, match=r"metric 'f1' does not exist for regression; .* rmse, mae"):
        check_metric("regression", "f1")
    with pytest.raises(Invalid, match=r"metric 'auc' does not exist; choose one of accuracy"):
        greater_is_better("auc")
    with pytest.raises(Invalid, match=r"task 'ranking' is not known; choose one of class"):
        metric_names("ranking")


def test_binary_metrics_equal_sklearn(cancer: Case) -> None:
    y, pred = cancer.y_test, cancer.model.predict(cancer.X_test)
    proba = cancer.model.predict_proba(cancer.X_test)
    got = compute("classification", y, pred, proba)
    assert got == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
            "log_loss": skm.log_loss(y, proba),
        },
        rel=1e-12,
    )
    # The positive class's probability alone gives the same figures.
    assert compute("classification", y, pred, proba[:, 1]) == pytest.approx(got, rel=1e-12)


def test_the_positive_class_is_the_second_sorted_label(cancer: Case) -> None:
    names = np.array(["malignant", "benign"])  # sklearn's coding: 0 malignant, 1 benign
    y = names[cancer.y_test.to_numpy()]
    pred = names[cancer.model.predict(cancer.X_test)]
    proba = cancer.model.predict_proba(cancer.X_test)[:, ::-1]  # columns: benign, malignant
    assert positive_class(["malignant", "benign"]) == "malignant"
    got = compute("classification", y, pred, proba, labels=["benign", "malignant"])
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="malignant"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="malignant"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "malignant", proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["benign", "malignant"]))


def test_multiclass_metrics_are_macro_and_one_vs_rest() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X[::2], y[::2])
    X_test, y_test = X[1::2], y[1::2]
    pred, proba = model.predict(X_test), model.predict_proba(X_test)
    got = compute("classification", y_test, pred, proba, labels=list(model.classes_))
    assert got == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y_test, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_test, pred),
            "precision": skm.precision_score(y_test, pred, average="macro"),
            "recall": skm.recall_score(y_test, pred, average="macro"),
            "f1": skm.f1_score(y_test, pred, average="macro"),
            "roc_auc": skm.roc_auc_score(y_test, proba, multi_class="ovr", average="macro"),
            "log_loss": skm.log_loss(y_test, proba),
        },
        rel=1e-12,
    )


def test_regression_metrics_equal_sklearn(diabetes: Case) -> None:
    y, pred = diabetes.y_test, diabetes.model.predict(diabetes.X_test)
    assert compute("regression", y, pred) == pytest.approx(
        {
            "rmse": skm.root_mean_squared_error(y, pred),
            "mae": skm.mean_absolute_error(y, pred),
            "r2": skm.r2_score(y, pred),
            "mape": skm.mean_absolute_percentage_error(y, pred),
        },
        rel=1e-12,
    )


def test_clustering_metrics_equal_sklearn() -> None:
    X, _ = load_iris(return_X_y=True)
    labels = KMeans(n_clusters=3, n_init=3, random_state=0).fit_predict(X)
    got = compute("clustering", None, labels, X=X)
    assert got == {
        "silhouette": pytest.approx(skm.silhouette_score(X, labels)),
        "calinski_harabasz": pytest.approx(skm.calinski_harabasz_score(X, labels)),
        "davies_bouldin": pytest.approx(skm.davies_bouldin_score(X, labels)),
    }
    only = compute("clustering", None, labels, X=X, only="davies_bouldin")
    assert only == {"davies_bouldin": got["davies_bouldin"]}
    assert compute("clustering", None, np.zeros(len(X)), X=X) == {}  # one cluster: undefined
    with pytest.raises(Invalid, match=r"clustering metrics need the data .* pass X"):
        compute("clustering", None, labels)


def test_undefined_metrics_are_left_out_not_warned() -> None:
    # One class in y_true: ROC-AUC is undefined; sklearn would raise or warn.
    got = compute("classification", [1, 1, 1], [1, 0, 1], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]],
                  labels=[0, 1])  # fmt: skip
    assert "roc_auc" not in got
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["precision"] == 1.0
    assert "r2" not in compute("regression", [3.0], [2.5])


def test_bad_inputs_say_what_to_pass() -> None:
    with pytest.raises(Invalid, match=r"y_score has shape \(2, 3\) but there are 2 classes"):
        compute("classification", [0, 1], [0, 1], np.ones((2, 3)) / 3)
    with pytest.raises(Invalid, match=r"y_true holds label\(s\) '7' that are not among the class"):
        compute("classification", [0, 7], [0, 1], labels=[0, 1])
    with pytest.raises(Invalid, match=r"y_true has 3 rows but y_pred has 2"):
        compute("regression", [1, 2, 3], [1, 2])
    with pytest.raises(Invalid, match="no rows to evaluate"):
        compute("regression", [], [])


def test_the_scorer_gives_the_catalogue_metric_negated_for_losses(cancer: Case) -> None:
    model, X, y = cancer.model, cancer.X_test, cancer.y_test
    expected = compute("classification", y, model.predict(X), model.predict_proba(X))
    assert sklearn_scorer("classification", "f1")(model, X, y) == pytest.approx(expected["f1"])
    loss = sklearn_scorer("classification", "log_loss")(model, X, y)
    assert loss == pytest.approx(-expected["log_loss"])
    assert repr(sklearn_scorer("classification", "f1")) == "MetricScorer('classification', 'f1')"


def test_the_scorer_works_in_cross_validation_with_string_labels(cancer: Case) -> None:
    # sklearn's own "f1" scorer assumes pos_label=1 and fails on string labels.
    y = np.where(cancer.y_train == 1, "benign", "malignant")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    scores = cross_val_score(
        model, cancer.X_train, y, cv=3, scoring=sklearn_scorer("classification", "f1")
    )
    manual = cross_val_score(
        model,
        cancer.X_train,
        y,
        cv=3,
        scoring=skm.make_scorer(skm.f1_score, pos_label="malignant"),
    )
    assert scores == pytest.approx(manual)
    rmse = cross_val_score(
        Ridge(), cancer.X_train, cancer.y_train.astype(float), cv=3,
        scoring=sklearn_scorer("regression", "rmse"),
    )  # fmt: skip
    assert (rmse < 0).all()


def test_the_scorer_refuses_what_it_cannot_compute(cancer: Case) -> None:
    with pytest.raises(Invalid, match="metric 'f2' does not exist for classification"):
        sklearn_scorer("classification", "f2")
    svc = make_pipeline(StandardScaler(), LinearSVC()).fit(cancer.X_train, cancer.y_train)
    with pytest.raises(Invalid, match=r"'roc_auc' needs class probabilities but Pipeline has no"):
        sklearn_scorer("classification", "roc_auc")(svc, cancer.X_test, cancer.y_test)
