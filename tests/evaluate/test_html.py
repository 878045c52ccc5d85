"""The HTML report: self-contained, has its plots, and escapes everything users wrote."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from shipyard.evaluate import EvaluationReport, evaluate_model, report_html
from shipyard.evaluate.html import calibration_figure

if TYPE_CHECKING:
    from conftest import Case

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">')


def _images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for data, alt in IMG.findall(page)}


def test_a_classification_page_has_every_part(loans_report: EvaluationReport) -> None:
    page = report_html(loans_report, title="loans@3")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = _images(page)
    assert set(images) == {"Confusion matrix", "ROC curve", "Calibration", "Feature importance"}
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images.values())
    for heading in ("Metrics", "Plots", "Feature importance", "Slices", "Fairness"):
        assert f"<h2>{heading}</h2>" in page
    assert "<title>loans@3</title>" in page and "<style>" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    assert f"{loans_report.metrics['f1']:.4g}" in page
    assert "demographic parity difference" in page
    assert "<h3>age</h3>" in page and "[18, " in page


def test_a_regression_page_plots_residuals(diabetes_report: EvaluationReport) -> None:
    page = report_html(diabetes_report, title="diabetes")
    assert set(_images(page)) == {"Residuals", "Feature importance"}
    assert "Residuals (actual − predicted)" in page
    assert "Confusion" not in page and "Fairness" not in page


def test_a_multiclass_page_and_notes() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    report = evaluate_model(model, X.assign(g=["a", "b"] * 75), y, task="classification",
                            sensitive=["g"], explain=False)  # fmt: skip
    page = report_html(report, title="iris")
    assert set(_images(page)) == {"Confusion matrix", "ROC curve", "Calibration"}
    assert "fairness measures are computed for binary classification only" in page


def test_user_strings_are_escaped_everywhere(loans: Case) -> None:
    evil = "<script>alert(1)</script>"
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame(
        {
            evil: rng.normal(size=n),
            "price $ in $USD": rng.normal(size=n),  # '$..$' would be mathtext in matplotlib
            "收入": rng.normal(size=n),  # no glyph in the default font
            "group": rng.choice(['<b onmouseover="x">a</b>', "b & c"], size=n),
        }
    )
    y = pd.Series(np.where(X[evil] + rng.normal(0, 0.3, n) > 0, "<i>yes</i>", "no"))
    model = RandomForestClassifier(n_estimators=10, random_state=0)
    model.fit(X.drop(columns=["group"]), y)
    report = evaluate_model(model, X, y, task="classification", sensitive=["group"])
    assert evil in report.importance
    page = report_html(report, title=f"model {evil}")
    assert "<script" not in page and "<b " not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b onmouseover=&quot;x&quot;&gt;a&lt;/b&gt;" in page
    assert "b &amp; c" in page
    assert "price $ in $USD" in page and "收入" in page
    assert len(_images(page)) == 4


def test_a_minimal_report_renders(cancer: Case) -> None:
    report = EvaluationReport(task="regression", rows=3, metrics={"rmse": 1.5})
    page = report_html(report, title="tiny")
    assert "<h2>Metrics</h2>" in page and "1.5" in page
    assert _images(page) == {}


@pytest.mark.parametrize("title", ["", "a" * 500])
def test_odd_titles(loans_report: EvaluationReport, title: str) -> None:
    assert f"<h1>{title}</h1>" in report_html(loans_report, title=title)


def test_plots_lay_out_once_each_and_the_calibration_legend_leaves_the_curve_free(
    loans_report: EvaluationReport,
) -> None:
    page = report_html(loans_report, title="loans@3")
    plots = page.split('<div class="plots">', 1)[1].split("</div>", 1)[0]
    # Three plots side by side in one grid row; importance once, as its own labelled chart.
    assert set(_images(plots)) == {"Confusion matrix", "ROC curve", "Calibration"}
    assert "grid-template-columns:repeat(auto-fill,minmax(300px,1fr))" in page
    assert page.count('alt="Feature importance"') == 1
    folded = page.split("<details><summary>the values as a table</summary>", 1)
    assert "<th>importance</th>" not in folded[0] and "<th>importance</th>" in folded[1]
    # The confusion counts are printed on the plot (two classes): no second copy as a table.
    assert "<h2>Confusion matrix</h2>" not in page

    fig = calibration_figure(loans_report)
    assert fig is not None
    fig.canvas.draw()
    (ax,) = fig.axes
    legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y0 >= frame.y1  # above the axes, never over a curve inside them
    assert ax.get_xlim()[0] < 0 < 1 < ax.get_xlim()[1]  # points at 0 and 1 drawn whole


def test_many_classes_get_the_confusion_matrix_as_an_escaped_table() -> None:
    rng = np.random.default_rng(0)
    labels = [f"<b>c{i}</b>" for i in range(13)]
    y = pd.Series(rng.choice(labels, 1300))
    X = pd.DataFrame({"x": [labels.index(v) for v in y] + rng.normal(0, 2, 1300)})
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    report = evaluate_model(model, X, y, task="classification", explain=False)

    page = report_html(report, title="many")

    assert "<h2>Confusion matrix</h2>" in page  # too many classes to print counts on the plot
    assert "<th>&lt;b&gt;c0&lt;/b&gt;</th>" in page and "<b>" not in page
