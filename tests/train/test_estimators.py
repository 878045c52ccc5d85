"""Bad input to training: estimators, their parameters, the metric and the target.

Each is refused up front with a message naming the thing and the fix, and nothing is recorded:
no search run, no trial run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from projects import LABEL, LOGISTIC, TREE, customers, ingest_project, write_project
from shipyard.core.errors import Invalid
from shipyard.core.spec import Candidate, ParamRange
from shipyard.store.workspace import Workspace
from shipyard.train import check_spec, search_runs, train
from shipyard.train.estimators import (
    accepted_params,
    check_candidate,
    import_estimator,
    make_estimator,
    suggest,
)

LR = "sklearn.linear_model.LogisticRegression"


def _refused_before_any_run(ws: Workspace, tmp_path: Path, match: str, **options: Any) -> None:
    """Training the project raises `Invalid` matching `match`, and records no run at all."""
    project = write_project(tmp_path / "project", **options)
    version = ingest_project(ws, project.spec)
    with pytest.raises(Invalid, match=match):
        train(ws, project.spec, version)
    assert search_runs(ws, limit=None) == []


BAD_CANDIDATES = [
    pytest.param(
        {"estimator": "sklearn.linaer_model.LogisticRegression"},
        r"^estimator 'sklearn\.linaer_model\.LogisticRegression' does not import: No module "
        r"named 'sklearn\.linaer_model'\. Check the spelling, or install the package that "
        r"provides it\.$",
        id="module missing",
    ),
    pytest.param(
        {"estimator": "no_such_package.Model"},
        r"^estimator 'no_such_package\.Model' does not import: No module named "
        r"'no_such_package' \(looked for no_such_package\.py in the project directory .* and in "
        r"the installed packages\)\. .*install the package",
        id="package not installed",
    ),
    pytest.param(
        {"estimator": "sklearn.linear_model.logisticRegression"},
        r"^estimator 'sklearn\.linear_model\.logisticRegression' does not import: "
        r"sklearn\.linear_model has no 'logisticRegression'\. Did you mean "
        r"sklearn\.linear_model\.LogisticRegression\?$",
        id="class case typo",
    ),
    pytest.param(
        {"estimator": "sklearn.linear_model.Nope"},
        r"^estimator 'sklearn\.linear_model\.Nope' does not import: sklearn\.linear_model has "
        r"no 'Nope'\. Check the class name and the module it is in\.$",
        id="class missing",
    ),
    pytest.param(
        {"estimator": "LogisticRegression"},
        r"^estimator 'LogisticRegression' is not an import path; write e\.g\. "
        r"sklearn\.linear_model\.LogisticRegression\.$",
        id="not a path",
    ),
    pytest.param(
        {"estimator": "json.JSONDecoder"},
        r"^'json\.JSONDecoder' is not an estimator class with a fit\(\) method; name a "
        r"scikit-learn compatible estimator, e\.g\. sklearn\.linear_model\.LogisticRegression\.$",
        id="class without fit",
    ),
    pytest.param(
        {"estimator": "sklearn.metrics.f1_score"},
        r"^'sklearn\.metrics\.f1_score' is not an estimator class",
        id="a function",
    ),
    pytest.param(
        {"estimator": LR, "params": {"Cee": 1.0, "C": 1.0}},
        rf"^estimator {LR} does not accept parameter\(s\) \['Cee'\]; it accepts: C, "
        r"class_weight, dual, fit_intercept, .*max_iter, .*solver, tol, verbose, warm_start\.$",
        id="unknown param",
    ),
    pytest.param(
        {"estimator": LR, "params": {"C": []}},
        rf"^{LR} parameter 'C': the list of choices is empty; list at least one value or leave "
        r"the parameter out\.$",
        id="empty choices",
    ),
    pytest.param(
        {"estimator": LR, "params": {"C": {"low": 0, "high": 10, "log": True}}},
        rf"^{LR} parameter 'C': a log range needs low > 0, got 0\.0; raise low or drop log: "
        r"true\.$",
        id="log range from 0",
    ),
    pytest.param(
        {"estimator": LR, "params": {"C": {"low": -1, "high": 1, "log": True}}},
        r"a log range needs low > 0, got -1\.0",
        id="log range below 0",
    ),
    pytest.param(
        {"estimator": LR, "params": {"C": {"low": 5, "high": 1}}},
        rf"^{LR} parameter 'C': low \(5\.0\) must be below high \(1\.0\)\.$",
        id="empty range",
    ),
]


@pytest.mark.parametrize(("candidate", "match"), BAD_CANDIDATES)
def test_a_bad_candidate_is_refused_before_anything_is_recorded(
    workspace: Workspace, tmp_path: Path, candidate: dict[str, Any], match: str
) -> None:
    # The good candidate first: every candidate is checked, not only the first.
    _refused_before_any_run(workspace, tmp_path, match, candidates=[TREE, candidate])


@pytest.mark.parametrize("metric", ["auc", "rmse", "F1"])
def test_a_metric_the_task_does_not_have_lists_the_ones_it_has(
    workspace: Workspace, tmp_path: Path, metric: str
) -> None:
    _refused_before_any_run(
        workspace,
        tmp_path,
        rf"^metric '{metric}' does not exist for classification; choose one of accuracy, "
        r"balanced_accuracy, precision, recall, f1, roc_auc, log_loss\.$",
        metric=metric,
    )


def test_the_default_metric_needs_no_declaration(tmp_path: Path) -> None:
    assert check_spec(write_project(tmp_path, metric=None).spec) == "f1"


def test_no_candidates_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match=r"no train\.candidates; list at least one estimator"):
        check_spec(write_project(tmp_path, candidates=[]).spec)


# -- the target ---------------------------------------------------------------------------------


def test_a_target_with_one_class_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    frame = customers(labels=["no"] * 200)
    project = write_project(tmp_path / "project", frame)
    version = ingest_project(workspace, project.spec)

    with pytest.raises(
        Invalid,
        match=rf"^the target '{LABEL}' has one class \('no'\); a classifier needs at least two\. "
        r"Check the data, or use task: regression\.$",
    ):
        train(workspace, project.spec, version)
    assert search_runs(workspace, limit=None) == []


def test_a_class_rarer_than_the_folds_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    frame = customers(labels=["no"] * 198 + ["yes"] * 2)
    project = write_project(tmp_path / "project", frame, time=False, cv=3)
    version = ingest_project(workspace, project.spec)

    with pytest.raises(
        Invalid,
        match=rf"^the target '{LABEL}' class\(es\) \['yes'\] have fewer rows than the 3 folds "
        r"of cross-validation; lower train\.search\.cv or get more data\.$",
    ):
        train(workspace, project.spec, version)
    assert search_runs(workspace, limit=None) == []


def test_a_dataset_without_a_target_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", target=None)
    version = ingest_project(workspace, project.spec)

    with pytest.raises(
        Invalid, match=r"^a classification model needs a target: set data\.target in shipyard"
    ):
        train(workspace, project.spec, version)
    assert search_runs(workspace, limit=None) == []


# -- building estimators and drawing parameters -------------------------------------------------


def test_make_estimator_seeds_what_takes_a_seed_and_quiets_lightgbm() -> None:
    tree = make_estimator(TREE["estimator"], {"max_depth": 3}, seed=5)
    assert (tree.max_depth, tree.random_state) == (3, 5)
    lgbm = make_estimator("lightgbm.LGBMClassifier", {"n_estimators": 10}, seed=5)
    assert lgbm.get_params()["verbosity"] == -1
    assert lgbm.get_params()["random_state"] == 5
    knn = make_estimator("sklearn.neighbors.KNeighborsClassifier", {"n_neighbors": 3}, seed=5)
    assert "random_state" not in knn.get_params()
    assert "C" in accepted_params(make_estimator(LR, {}, seed=0).__class__)


def test_suggest_draws_from_the_declared_space() -> None:
    candidates = [
        Candidate(
            estimator=LR,
            params={
                "C": ParamRange(low=0.01, high=10, log=True),
                "class_weight": [None, "balanced"],
                "max_iter": 500,
            },
        ),
        Candidate(
            estimator=TREE["estimator"],
            params={"max_depth": ParamRange(low=2, high=8, step=2), "criterion": ["gini"]},
        ),
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn: dict[str, list[dict[str, Any]]] = {LR: [], TREE["estimator"]: []}
    for _ in range(40):
        candidate, params = suggest(study.ask(), candidates)
        drawn[candidate.estimator].append(params)

    assert drawn[LR] and drawn[TREE["estimator"]]
    for params in drawn[LR]:
        assert isinstance(params["C"], float) and 0.01 <= params["C"] <= 10
        assert params["class_weight"] in (None, "balanced")
        assert params["max_iter"] == 500
    assert {p["class_weight"] for p in drawn[LR]} == {None, "balanced"}
    for params in drawn[TREE["estimator"]]:
        assert params["max_depth"] in (2, 4, 6, 8)
        assert isinstance(params["max_depth"], int)
        assert params["criterion"] == "gini"


def test_the_only_candidate_is_not_a_search_parameter() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    candidate, params = suggest(trial, [Candidate.model_validate(LOGISTIC)])
    assert candidate.estimator == LR
    assert set(trial.params) == {"LogisticRegression.C"}
    assert set(params) == {"C"}


# -- the project's own estimator modules --------------------------------------------------------


def test_a_module_next_to_the_spec_imports_without_pythonpath_and_leaves_the_path_alone(
    tmp_path: Path,
) -> None:
    module = f"shipyard_test_own_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n\n"
        "class Logistic(LogisticRegression):\n"
        '    """The project\'s own classifier."""\n'
    )
    before = list(sys.path)

    cls = import_estimator(f"{module}.Logistic", project_dir=tmp_path)

    assert cls.__name__ == "Logistic" and hasattr(cls, "fit")
    assert sys.path == before  # the project directory was on the path only while importing
    with pytest.raises(
        Invalid,
        match=rf"^estimator 'nowhere_{module}\.Model' does not import: No module named "
        rf"'nowhere_{module}' \(looked for nowhere_{module}\.py in the project directory "
        rf"{re.escape(str(tmp_path))} and in the installed packages\)\. Check the spelling",
    ):
        import_estimator(f"nowhere_{module}.Model", project_dir=tmp_path)
    assert sys.path == before


def test_a_clusterer_that_cannot_predict_is_refused_for_clustering() -> None:
    with pytest.raises(
        Invalid,
        match=r"^estimator sklearn\.cluster\.AgglomerativeClustering has no predict\(\): it "
        r"labels only the rows it was fitted on, .* e\.g\. sklearn\.cluster\.KMeans",
    ):
        check_candidate(
            Candidate(estimator="sklearn.cluster.AgglomerativeClustering"), task="clustering"
        )
    assert check_candidate(Candidate(estimator="sklearn.cluster.KMeans"), task="clustering")
