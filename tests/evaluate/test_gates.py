"""Gates: parsing with pinned error messages, pass/fail on both sides of each threshold, and
the user's prediction tests (including every way they can go wrong)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shipyard.core import spec
from shipyard.core.errors import SpecError
from shipyard.evaluate import (
    EvaluationReport,
    ParsedGate,
    check_gates,
    evaluate_model,
    parse_gate,
    validate_gates,
)

if TYPE_CHECKING:
    from conftest import Case

EXAMPLE = r"for example 'f1 >= 0\.60'"

# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "task", "expected"),
    [
        ("f1 >= 0.60", "classification", ("metric", "f1", ">=", 0.6, None)),
        ("log_loss < 0.5", "classification", ("metric", "log_loss", "<", 0.5, None)),
        ("  roc_auc>.8 ", "classification", ("metric", "roc_auc", ">", 0.8, None)),
        ("recall[sex] >= 0.5", "classification", ("metric", "recall", ">=", 0.5, "sex")),
        ("recall[ 'sex' ] >= 0.5", "classification", ("metric", "recall", ">=", 0.5, "sex")),
        (
            "demographic_parity_difference(sex) <= 0.1",
            "classification",
            ("fairness", "demographic_parity_difference", "<=", 0.1, "sex"),
        ),
        (
            "equalized_odds_difference( age ) < 1e-1",
            "classification",
            ("fairness", "equalized_odds_difference", "<", 0.1, "age"),
        ),
        ("rmse <= 55", "regression", ("metric", "rmse", "<=", 55.0, None)),
        ("r2 > -0.5", "regression", ("metric", "r2", ">", -0.5, None)),
        ("silhouette >= 0.3", "clustering", ("metric", "silhouette", ">=", 0.3, None)),
    ],
)
def test_valid_gates_parse(text: str, task: str, expected: tuple[Any, ...]) -> None:
    gate = parse_gate(text, task)
    assert (gate.kind, gate.name, gate.op, gate.threshold, gate.column) == expected
    assert gate.text == text


@pytest.mark.parametrize(
    ("text", "task", "message"),
    [
        (
            "f2 >= 0.5",
            "classification",
            r"gate 'f2 >= 0\.5': metric 'f2' does not exist for classification; choose one of "
            r"accuracy, balanced_accuracy, precision, recall, f1, roc_auc, log_loss or a "
            r"fairness measure \(demographic_parity_difference, equalized_odds_difference\); "
            + EXAMPLE,
        ),
        (
            "f1 >= 0.5",
            "regression",
            r"metric 'f1' does not exist for regression; choose one of rmse, mae, r2, mape",
        ),
        (
            "f1 is at least 0.6",
            "classification",
            r"gate 'f1 is at least 0\.6' is not of the form METRIC OP NUMBER, METRIC\[column\] OP "
            r"NUMBER or FAIRNESS\(column\) OP NUMBER with OP one of >=, <=, >, <; " + EXAMPLE,
        ),
        ("f1 >= high", "classification", "is not of the form METRIC OP NUMBER"),
        ("f1 >= 0.6 and f1 < 1", "classification", "is not of the form METRIC OP NUMBER"),
        (
            "f1 == 0.6",
            "classification",
            r"gate 'f1 == 0\.6': operator '==' is not supported; use one of >=, <=, >, <",
        ),
        ("f1 => 0.6", "classification", "operator '=>' is not supported"),
        ("f1 >= 60%", "classification", r"write the threshold as a fraction, not a percentage"),
        ("", "classification", r"gate '' is empty; write a comparison, " + EXAMPLE),
        (
            "demographic_parity_difference <= 0.1",
            "classification",
            r"demographic_parity_difference needs a sensitive column in parentheses, for "
            r"example 'demographic_parity_difference\(sex\) <= 0\.1'",
        ),
        (
            "demographic_parity_difference[sex] <= 0.1",
            "classification",
            "needs a sensitive column in parentheses",
        ),
        (
            "demographic_parity_difference(sex) <= 0.1",
            "regression",
            r"demographic_parity_difference is defined for classification, not regression; use "
            r"a metric gate such as 'rmse <= \.\.\.'",
        ),
        (
            "f1(sex) >= 0.5",
            "classification",
            r"parentheses are for fairness measures; for f1 on the worst slice of a column "
            r"write 'f1\[sex\] >= 0\.5'",
        ),
        ("f1[] >= 0.5", "classification", "the column name is empty"),
    ],
)
def test_invalid_gates_say_what_is_wrong(text: str, task: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_gate(text, task)


def test_odd_input_is_refused() -> None:
    with pytest.raises(SpecError, match=r"gate 0\.6 is a float; write it as text, for example"):
        parse_gate(0.6, "classification")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="is not of the form METRIC OP NUMBER"):
        parse_gate("f1 >= \u0663", "classification")  # an Arabic-Indic three


def test_columns_must_be_sensitive_when_the_list_is_given() -> None:
    assert parse_gate("f1[sex] > 0.5", "classification", sensitive=["sex"]).column == "sex"
    with pytest.raises(
        SpecError,
        match=r"gate 'demographic_parity_difference\(race\) <= 0\.1': column 'race' is not a "
        r"sensitive column \(sex, age\); add it to data\.sensitive in shipyard\.yaml",
    ):
        parse_gate("demographic_parity_difference(race) <= 0.1", "classification",
                   sensitive=["sex", "age"])  # fmt: skip
    with pytest.raises(SpecError, match=r"not a sensitive column \(none are declared\)"):
        parse_gate("f1[sex] >= 0.5", "classification", sensitive=[])


def test_validate_gates_reports_every_problem_at_once(tmp_path: Path) -> None:
    good = validate_gates(["f1 >= 0.5", spec.TestsGate(tests="checks/p.py")], "classification")
    assert isinstance(good[0], ParsedGate) and good[1] == spec.TestsGate(tests="checks/p.py")
    with pytest.raises(SpecError, match=r"(?s)3 gates are invalid:\n  gate 'f2 >= 1'.*\n  gate "
                       r"'f1 = 1'.*\n  tests gate '\.\./x\.py'"):  # fmt: skip
        validate_gates(
            ["f2 >= 1", "f1 >= 0.2", "f1 = 1", spec.TestsGate(tests="../x.py")], "classification"
        )
    with pytest.raises(SpecError, match=r"tests gate 'checks/p\.py': file .* not found"):
        validate_gates([spec.TestsGate(tests="checks/p.py")], "classification", base_dir=tmp_path)


# -- metric and fairness gates ------------------------------------------------------------------


def _check(gates: list[Any], report: EvaluationReport, loans: Case, tmp_path: Path) -> list[Any]:
    return check_gates(
        gates,
        report,
        model=loans.model,
        sample=loans.X_test.head(50),
        target=loans.y_test.head(50),
        base_dir=tmp_path,
        sensitive=["sex", "age"],
    )


def test_metric_gates_pass_and_fail_on_each_side(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    f1, loss = loans_report.metrics["f1"], loans_report.metrics["log_loss"]
    gates = [
        f"f1 >= {f1 - 0.01}",
        f"f1 >= {f1 + 0.01}",
        f"f1 <= {f1 + 0.01}",
        f"f1 < {f1 - 0.01}",
        f"log_loss < {loss + 0.01}",
        f"log_loss < {loss - 0.01}",
        f"log_loss > {loss - 0.01}",
    ]
    results = _check(gates, loans_report, loans, tmp_path)
    assert [r.passed for r in results] == [True, False, True, False, True, False, True]
    assert all(r.kind == "metric" and r.value in (f1, loss) for r in results)
    assert [r.threshold for r in results] == [float(g.split()[-1]) for g in gates]
    assert results[0].detail == f"f1 = {f1:.4g}; passes >= {f1 - 0.01:g}"
    assert results[1].detail == f"f1 = {f1:.4g}; fails >= {f1 + 0.01:g}"


def test_a_threshold_equal_to_the_value(loans_report: EvaluationReport) -> None:
    gate = parse_gate("f1 >= 0.5", "classification")
    assert gate.holds(0.5) and not parse_gate("f1 > 0.5", "classification").holds(0.5)
    assert parse_gate("f1 <= 0.5", "classification").holds(0.5)
    assert not gate.holds(float("nan"))


def test_slice_gates_read_the_worst_slice(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    worst = min(s.metrics["recall"] for s in loans_report.slices["age"])
    best = max(s.metrics["recall"] for s in loans_report.slices["age"])
    overall = loans_report.metrics["recall"]
    assert worst < overall
    ok, bad = _check(
        [f"recall[age] >= {worst - 0.001}", f"recall[age] >= {(worst + best) / 2}"],
        loans_report,
        loans,
        tmp_path,
    )
    assert ok.passed and ok.value == worst
    assert not bad.passed and bad.value == worst
    assert "on the worst slice age = [" in bad.detail
    # A loss: the worst slice is the largest.
    (loss,) = _check(["log_loss[sex] <= 10"], loans_report, loans, tmp_path)
    assert loss.value == max(s.metrics["log_loss"] for s in loans_report.slices["sex"])


def test_fairness_gates_read_the_report(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    dpd = loans_report.fairness["sex"].demographic_parity_difference
    eod = loans_report.fairness["age"].equalized_odds_difference
    results = _check(
        [
            f"demographic_parity_difference(sex) <= {dpd + 0.001}",
            f"demographic_parity_difference(sex) <= {dpd - 0.001}",
            f"equalized_odds_difference(age) < {eod + 0.001}",
            f"equalized_odds_difference(age) < {eod - 0.001}",
        ],
        loans_report,
        loans,
        tmp_path,
    )
    assert [r.passed for r in results] == [True, False, True, False]
    assert [r.value for r in results] == [dpd, dpd, eod, eod]
    assert {r.kind for r in results} == {"fairness"}
    assert results[1].detail.startswith(f"demographic_parity_difference = {dpd:.4g} over sex")


def test_gates_on_columns_that_are_not_sensitive_are_refused(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    with pytest.raises(SpecError, match=r"column 'color' is not a sensitive column \(sex, age\)"):
        _check(["demographic_parity_difference(color) <= 0.1"], loans_report, loans, tmp_path)


def test_a_metric_the_evaluation_could_not_compute_fails_with_the_reason(
    cancer: Case, tmp_path: Path
) -> None:
    from sklearn.svm import LinearSVC

    model = LinearSVC().fit(cancer.X_train / cancer.X_train.std(), cancer.y_train)
    X = cancer.X_test / cancer.X_train.std()
    report = evaluate_model(model, X, cancer.y_test, task="classification", explain=False)
    (result,) = check_gates(
        ["roc_auc >= 0.9"],
        report,
        model=model,
        sample=X,
        target=cancer.y_test,
        base_dir=tmp_path,
        sensitive=[],
    )
    assert not result.passed and result.value is None and result.threshold == 0.9
    assert result.detail.startswith(
        "roc_auc was not computed: roc_auc, log_loss and calibration need predict_proba, which "
        "LinearSVC does not have"
    )


# -- prediction tests ---------------------------------------------------------------------------


def _write(base: Path, name: str, source: str) -> str:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return name


def _run(
    path: str, loans: Case, loans_report: EvaluationReport, base: Path
) -> list[Any]:  # fmt: skip
    return _check([spec.TestsGate(tests=path)], loans_report, loans, base)


def test_each_test_function_is_one_result(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "checks/predictions.py",
        """\
        import numpy as np

        def helper():
            raise AssertionError("helpers are not collected")

        def test_predicts_known_labels(model, data):
            assert set(model.predict(data)) <= {"yes", "no"}

        def test_probabilities_are_probabilities(model, X):
            p = model.predict_proba(X)
            assert np.allclose(p.sum(axis=1), 1.0)

        def test_accuracy_is_perfect(model, X, y):
            accuracy = (model.predict(X) == y).mean()
            assert accuracy == 1.0, f"accuracy is {accuracy:.2f}, not 1"

        def test_bare_assert(y):
            assert len(y) == 0

        def test_raises(model):
            raise ValueError("no model today")

        def test_unknown_argument(model, threshold):
            pass

        def test_optional_argument(model, limit=3):
            assert limit == 3

        def test_mutates(data):
            data["signal"] = 0.0

        def test_sees_unmutated_data(data):
            assert (data["signal"] != 0.0).all()
        """,
    )
    results = {r.gate.split("::")[-1]: r for r in _run(path, loans, loans_report, tmp_path)}
    assert list(results) == [
        "test_predicts_known_labels",
        "test_probabilities_are_probabilities",
        "test_accuracy_is_perfect",
        "test_bare_assert",
        "test_raises",
        "test_unknown_argument",
        "test_optional_argument",
        "test_mutates",
        "test_sees_unmutated_data",
    ]
    gate = results["test_predicts_known_labels"]
    assert gate.gate == "tests:checks/predictions.py::test_predicts_known_labels"
    assert gate.kind == "tests" and gate.passed and gate.detail == "passed"
    assert results["test_probabilities_are_probabilities"].passed
    assert results["test_optional_argument"].passed
    assert results["test_mutates"].passed and results["test_sees_unmutated_data"].passed

    failed = results["test_accuracy_is_perfect"]
    assert not failed.passed
    assert failed.detail.startswith("AssertionError: accuracy is 0.")
    assert failed.detail.endswith(
        ', not 1 (predictions.py:15: assert accuracy == 1.0, f"accuracy is {accuracy:.2f}, not 1")'
    )
    assert results["test_bare_assert"].detail == (
        "AssertionError: assertion failed (predictions.py:18: assert len(y) == 0)"
    )
    assert results["test_raises"].detail == (
        'ValueError: no model today (predictions.py:21: raise ValueError("no model today"))'
    )
    assert results["test_unknown_argument"].detail == (
        "test_unknown_argument asks for argument 'threshold'; test functions may take "
        "model, data, X, y"
    )


def test_a_file_that_does_not_import_is_one_failed_result(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    path = _write(tmp_path, "checks/broken.py", "def test_ok(model):\n    return (\n")
    (result,) = _run(path, loans, loans_report, tmp_path)
    assert result.gate == "tests:checks/broken.py" and result.kind == "tests"
    assert not result.passed
    assert result.detail.startswith("could not import checks/broken.py: SyntaxError: ")
    assert result.detail.endswith("(broken.py:2)")

    path = _write(tmp_path, "checks/missing_dep.py", "import not_a_module_xyz\n")
    (result,) = _run(path, loans, loans_report, tmp_path)
    assert result.detail == (
        "could not import checks/missing_dep.py: ModuleNotFoundError: No module named "
        "'not_a_module_xyz' (missing_dep.py:1: import not_a_module_xyz)"
    )
    assert not any(name.startswith("shipyard_gate_tests_") for name in sys.modules)


def test_exiting_or_empty_test_files_fail_without_crashing(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    path = _write(tmp_path, "exits.py", "import sys\n\ndef test_exit():\n    sys.exit(3)\n")
    (result,) = _run(path, loans, loans_report, tmp_path)
    assert not result.passed and result.detail.startswith("SystemExit: 3")
    path = _write(tmp_path, "empty.py", "def check_something():\n    pass\n")
    (result,) = _run(path, loans, loans_report, tmp_path)
    assert not result.passed
    assert (
        result.detail == "empty.py defines no test_* functions; a tests gate must check something"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.py", r"tests gate '\.\./outside\.py': the path must stay inside the project"),
        ("checks/../../outside.py", "the path must stay inside the project directory"),
        ("/etc/passwd.py", "the path must stay inside the project directory"),
        ("checks/predictions.txt", r"expected a Python file \(\.py\) of test_\* functions"),
        ("checks/absent.py", r"tests gate 'checks/absent\.py': file '.*absent\.py' not found"),
    ],
)
def test_test_paths_are_checked(
    path: str, message: str, loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.py").write_text("def test_x():\n    pass\n")
    with pytest.raises(SpecError, match=message):
        _run(path, loans, loans_report, project)


def test_a_symlink_out_of_the_project_is_refused(
    loans: Case, loans_report: EvaluationReport, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "checks").mkdir(parents=True)
    (tmp_path / "secret.py").write_text("def test_x():\n    pass\n")
    (project / "checks" / "linked.py").symlink_to(tmp_path / "secret.py")
    with pytest.raises(SpecError, match=r"resolves to '.*secret\.py', outside the project"):
        _run("checks/linked.py", loans, loans_report, project)
