"""The model card: its sections, limitations derived from the evaluation, and escaping."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shipyard.core.records import GateResult
from shipyard.evaluate import EvaluationReport, check_gates, model_card

if TYPE_CHECKING:
    from conftest import Case

SECTIONS = [
    "## Intended use",
    "## Model",
    "## Data",
    "## Metrics",
    "## Slices and fairness",
    "## Gates",
    "## Limitations",
]


def _card(report: EvaluationReport, gates: list[GateResult], **overrides: Any) -> tuple[str, str]:
    args: dict[str, Any] = {
        "name": "credit-risk",
        "version_ref": "credit-risk@3",
        "task": report.task,
        "description": "Predicts whether a new loan defaults.",
        "dataset_ref": "loans@7",
        "rows_train": 2400,
        "rows_test": report.rows,
        "features": ["signal", "noise", "color", "age", "income"],
        "target": "default",
        "metrics": report.metrics,
        "report": report,
        "gates": gates,
    }
    return model_card(**{**args, **overrides})


@pytest.fixture(scope="module")
def gates(loans: Case, loans_report: EvaluationReport, tmp_path_factory: Any) -> list[GateResult]:
    return check_gates(
        ["f1 >= 0.5", "demographic_parity_difference(sex) <= 0.0001"],
        loans_report,
        model=loans.model,
        sample=loans.X_test.head(20),
        target=loans.y_test.head(20),
        base_dir=Path(tmp_path_factory.mktemp("project")),
        sensitive=["sex", "age"],
    )


def test_the_markdown_has_every_section_in_order(
    loans_report: EvaluationReport, gates: list[GateResult]
) -> None:
    markdown, _ = _card(loans_report, gates, period="2024-01 to 2024-03")
    assert markdown.startswith("# Model card: credit-risk (credit-risk@3)\n")
    assert markdown.endswith(".\n") and not markdown.endswith("\n\n")
    positions = [markdown.index(f"\n{s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    assert "Predicts whether a new loan defaults." in markdown
    assert "| item | value |" in markdown  # no blank header row
    assert "| held-out test rows | 1,600 |" in markdown
    assert "| split | 2024-01 to 2024-03 |" in markdown
    # The recorded metrics are the evaluation's: one column of them, not two equal ones.
    assert "| metric | held-out value |" in markdown
    f1 = loans_report.metrics["f1"]
    assert f"| f1 | {f1:.4g} |" in markdown
    recorded = {**loans_report.metrics, "f1": 0.5}
    differing, _ = _card(loans_report, gates, metrics=recorded)
    assert "| metric | recorded | held-out evaluation |" in differing
    assert f"| f1 | 0.5 | {f1:.4g} |" in differing


def test_the_card_names_the_estimator_and_its_hyperparameters(
    loans_report: EvaluationReport, gates: list[GateResult]
) -> None:
    params = {"n_estimators": 3000, "learning_rate": 0.0421337, "max_depth": None}
    markdown, html = _card(loans_report, gates, estimator="lightgbm.LGBMClassifier", params=params)
    model = markdown.split("## Model\n", 1)[1].split("## Data", 1)[0]
    assert "| setting | value |" in model
    assert "| estimator | lightgbm.LGBMClassifier |" in model
    assert "| n\\_estimators | 3000 |" in model  # as in the spec, no thousands separator
    assert "| learning\\_rate | 0.04213 |" in model
    assert "| max\\_depth | — |" in model
    assert "any other takes the estimator's default" in model
    assert "<td>lightgbm.LGBMClassifier</td>" in html
    unknown, _ = _card(loans_report, gates)
    assert "The estimator was not recorded." in unknown


def test_gates_show_pass_and_fail(loans_report: EvaluationReport, gates: list[GateResult]) -> None:
    markdown, html = _card(loans_report, gates)
    assert [g.passed for g in gates] == [True, False]
    assert "1 of 2 gates failed." in markdown
    assert re.search(r"\| f1 >= 0\.5 \| pass \| f1 = [0-9.]+; passes >= 0\.5 \|", markdown)
    assert "| demographic\\_parity\\_difference(sex) <= 0.0001 | FAIL |" in markdown
    assert "<td>FAIL</td>" in html
    assert (
        "Failed gate(s): demographic\\_parity\\_difference(sex) <= 0.0001; this version must "
        "not be deployed." in markdown
    )
    no_gates, _ = _card(loans_report, [])
    assert "No gates were declared." in no_gates


def test_limitations_are_derived_from_the_evaluation(
    loans_report: EvaluationReport, gates: list[GateResult]
) -> None:
    markdown, _ = _card(loans_report, gates, period="2024-01 to 2024-03")
    limitations = markdown.split("## Limitations\n", 1)[1]
    assert (
        f"- Evaluated on a held-out split of {loans_report.rows:,} rows of loans@7 "
        "(2024-01 to 2024-03); how it does on later or differently distributed data is not "
        "measured here" in limitations
    )
    column, row = loans_report.worst_slice("f1") or ("", None)
    assert row is not None
    value = row.value.replace("[", "\\[").replace("]", "\\]")  # Markdown-escaped
    assert (
        f"- Worst slice: {column} = {value} ({row.rows:,} rows) with f1 "
        f"{row.metrics['f1']:.3g}, against {loans_report.metrics['f1']:.3g} overall."
    ) in limitations
    share = loans_report.missing["income"]
    assert f"- income is missing in {share:.0%} of the test rows" in limitations
    counts = [sum(r) for r in loans_report.confusion_matrix or []]
    minority = min(counts) / sum(counts)
    assert minority < 0.2
    assert f"- Class imbalance: yes is {minority:.1%} of the test rows" in limitations
    assert "The test set is small" not in limitations  # 1,600 rows


def test_a_small_test_set_and_regression(diabetes_report: EvaluationReport) -> None:
    markdown, html = _card(
        diabetes_report,
        [],
        features=["age", "sex", "bmi", "bp"],
        target="progression",
        metrics={"rmse": 60.0},
    )
    assert "Predicts the value of progression from 4 input columns." in markdown
    assert f"- The test set is small ({diabetes_report.rows:,} rows): metrics are uncertain." in (
        markdown
    )
    assert "| rmse | 60 |" in markdown  # recorded beside the held-out figure
    assert "Class imbalance" not in markdown
    assert html.startswith("<!DOCTYPE html>") and "<h2>Limitations</h2>" in html


def test_user_text_is_escaped_in_both_renderings(
    loans_report: EvaluationReport, gates: list[GateResult]
) -> None:
    evil = "<script>alert(1)</script> | *bold* [link](javascript:x)"
    markdown, html = _card(loans_report, gates, description=evil, name="<img src=x>")
    assert "<script>" not in markdown and "<script>" not in html and "<img" not in html
    assert "&lt;script>alert(1)&lt;/script> \\| \\*bold\\* \\[link\\](javascript:x)" in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | *bold* [link](javascript:x)" in html
    assert "# Model card: &lt;img src=x> (credit-risk@3)" in markdown
    assert "- &lt;script>" not in markdown
    odd, _ = _card(loans_report, [], description="> quoted &amp; <= 3 & 4")
    assert "\\> quoted &amp;amp; <= 3 & 4" in odd
