"""The monitoring report page: complete, self-contained, escaped, sensible when empty."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from matplotlib.dates import num2date
from matplotlib.figure import Figure

from shipyard.core.html import embed
from shipyard.core.records import (
    Alert,
    Decay,
    DriftReport,
    FeatureDrift,
    MonitorReport,
    MultivariateDrift,
    SloResult,
    WindowPerformance,
    WindowTraffic,
)
from shipyard.monitor import html as report_html
from shipyard.monitor.drift import judged
from shipyard.monitor.html import MAX_DISTRIBUTIONS, monitor_html

EVIL = "<script>alert(1)</script>"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def feature(
    column: str, *, drifted: bool, score: float = 0.1, kind: str = "numeric", **kw: object
) -> FeatureDrift:
    bins = ["a", "b", "c"] if kind == "categorical" else ["[0, 1)", "[1, 2)", "[2, 3]"]
    fields: dict[str, object] = {
        "column": column,
        "kind": kind,
        "test": "psi" if kind == "numeric" else "jensen_shannon",
        "score": score,
        "threshold": 0.2,
        "drifted": drifted,
        "reference_rows": 1000,
        "current_rows": 500,
        "missing_reference": 0.0,
        "missing_current": 0.02,
        "bins": bins,
        "reference_share": [0.3, 0.4, 0.3],
        "current_share": [0.1, 0.3, 0.6],
        **kw,
    }
    return FeatureDrift.model_validate(fields)


def full_report(features: list[FeatureDrift] | None = None) -> MonitorReport:
    features = features or [
        feature("income", drifted=False, score=0.05, importance=0.5),
        feature(EVIL, drifted=True, score=0.4, importance=0.3),
        feature(
            "grade",
            drifted=True,
            score=0.25,
            kind="categorical",
            new_categories={"Z": 7, EVIL: 2},
            importance=0.2,
        ),
    ]
    windows = [(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1)) for i in range(4)]
    return MonitorReport(
        endpoint="credit",
        model_ref="credit-risk@3",
        start=T0,
        end=T0 + timedelta(hours=4),
        drift=DriftReport(
            reference="credit-risk@3 training data",
            current="credit 2025-03-01 00:00 to 04:00",
            reference_rows=1000,
            current_rows=500,
            features=features,
            prediction=feature("prediction", drifted=True, score=0.3, kind="categorical"),
            multivariate=MultivariateDrift(
                auc=0.81, threshold=0.7, drifted=True, rows=500, top_features={EVIL: 0.6}
            ),
            drifted_share=0.5,
            drifted=True,
            ignored_columns=["extra"],
        ),
        traffic=[
            WindowTraffic(
                start=s,
                end=e,
                requests=100 + i,
                rows=120,
                errors=i % 2,
                p50_ms=2.0,
                p99_ms=9.0 + i,
                drifted_share=0.1 * i,
            )
            for i, (s, e) in enumerate(windows)
        ],
        performance=[
            WindowPerformance(
                start=s, end=e, labelled=50, metrics={"f1": 0.8 - 0.05 * i, "acc": 0.9}
            )
            for i, (s, e) in enumerate(windows)
        ],
        decay=Decay(
            metric="f1",
            registered=0.82,
            current=0.65,
            drop=0.17,
            threshold=0.05,
            labelled=200,
            decayed=True,
        ),
        slos=[
            SloResult(name="p99_ms", limit=10.0, observed=12.0, passed=False),
            SloResult(name="error_rate", limit=0.01, observed=0.005, passed=True),
        ],
        alerts=[
            Alert(
                id="alr_1",
                endpoint="credit",
                kind="drift",
                message=f"{EVIL} drifted",
                created_at=T0,
            )
        ],
    )


def images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]*)">', page)
    return {alt: base64.b64decode(data) for data, alt in found}


def test_a_full_report_has_every_section_and_plot() -> None:
    page = monitor_html(full_report(), title="credit: last 4 h")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    for heading in (
        "Summary",
        "Decay",
        "SLOs",
        "Alerts for this window",
        "Drift per feature",
        "Distributions",
        "Multivariate drift",
        "Over time",
    ):
        assert f">{heading}</h" in page, heading
    pictures = images(page)
    assert set(pictures) == {
        "&lt;script&gt;alert(1)&lt;/script&gt;: reference vs current",
        "grade: reference vs current",
        "prediction: reference vs current",
        "Drift over time",
        "Performance over time",
        "Latency over time",
        "Requests over time",
    }
    assert all(png.startswith(b"\x89PNG") for png in pictures.values())
    assert (
        "Drift: yes. 2 of 3 features drifted, carrying 50% of the model&#x27;s importance" in page
    )
    assert "SLOs: 1 of 2 failed" in page
    assert (
        "Decay: yes. f1 is 0.65 on 200 labelled rows, 0.82 at registration (-0.1700, worse;" in page
    )
    assert "endpoint credit · model credit-risk@3 · 2025-03-01 00:00 UTC to" in page
    assert "Z (7)" in page  # new categories
    assert "extra" in page  # ignored columns


def test_drifted_features_come_first() -> None:
    page = monitor_html(full_report(), title="t")
    table = page[page.index("Drift per feature") :]
    order = [table.index(name) for name in ("&lt;script&gt;", "<td>grade</td>", "<td>income</td>")]
    assert order == sorted(order)
    assert "<tr><td>prediction</td>" in table  # the model's output, named once


def test_user_text_is_escaped_everywhere() -> None:
    page = monitor_html(full_report(), title=EVIL)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 0


def test_distribution_plots_are_capped() -> None:
    many = [feature(f"f{i:02d}", drifted=True, score=0.3 + i / 100) for i in range(20)]
    page = monitor_html(full_report(many), title="t")
    overlays = [alt for alt in images(page) if alt.endswith("reference vs current")]
    assert len(overlays) == MAX_DISTRIBUTIONS + 1  # and the prediction
    assert f"the {MAX_DISTRIBUTIONS} most drifted of 20 drifted features" in page
    assert "f19: reference vs current" in overlays  # the biggest moves are the ones shown


def test_no_traffic_renders_the_note() -> None:
    report = MonitorReport(
        endpoint="credit",
        drift=DriftReport(
            reference="credit-risk@3",
            current="credit, last hour",
            reference_rows=1000,
            current_rows=0,
            note="no predictions were logged in this window",
        ),
    )
    page = monitor_html(report, title="credit")
    assert "Drift not judged: no predictions were logged in this window" in page
    assert "No history yet" in page
    assert images(page) == {}
    assert "Drift per feature" not in page and "Distributions" not in page


def test_no_drift_and_no_history() -> None:
    report = full_report([feature("income", drifted=False)]).model_copy(
        update={
            "drift": DriftReport(
                reference="r",
                current="c",
                reference_rows=10,
                current_rows=10,
                features=[feature("income", drifted=False)],
            ),
            "traffic": [],
            "performance": [],
            "decay": None,
            "slos": [],
            "alerts": [],
        }
    )
    page = monitor_html(report, title="t")
    assert "Drift: no. 0 of 1 features drifted" in page
    assert "Distributions" not in page
    assert "No history yet" in page
    assert "SLOs" not in page and "Decay" not in page


@pytest.mark.parametrize("bins", [1, 40])
def test_odd_bin_counts_and_mismatched_shares_still_draw(bins: int) -> None:
    odd = feature(
        "x",
        drifted=True,
        bins=[f"bin {i} $x$" for i in range(bins)],
        reference_share=[1.0 / bins] * bins,
        current_share=[0.5],  # shorter than the bins: padded, not an error
    )
    page = monitor_html(full_report([odd]), title="t")
    assert "x: reference vs current" in images(page)


def test_history_with_gaps() -> None:
    report = full_report()
    traffic = [
        w.model_copy(update={"p50_ms": None, "p99_ms": None, "drifted_share": None})
        for w in report.traffic
    ]
    page = monitor_html(report.model_copy(update={"traffic": traffic}), title="t")
    assert set(images(page)) >= {"Requests over time", "Performance over time"}
    assert "Latency over time" not in images(page)
    assert "Drift over time" not in images(page)


def figures(monkeypatch: pytest.MonkeyPatch, report: MonitorReport) -> dict[str, Figure]:
    """The report's matplotlib figures by caption, as drawn before they become PNGs."""
    drawn: dict[str, Figure] = {}

    def keep(fig: Figure, caption: str) -> str:
        drawn[caption] = fig
        return embed(fig, caption)

    monkeypatch.setattr(report_html, "embed", keep)
    monitor_html(report, title="t")
    return drawn


def test_one_window_gets_a_time_axis_of_that_window_not_of_years(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = full_report()
    one = full.model_copy(
        update={"traffic": full.traffic[-1:], "performance": full.performance[-1:]}
    )
    drawn = figures(monkeypatch, one)
    over_time = ["Drift over time", "Performance over time", "Latency over time"]
    assert set(over_time) <= set(drawn)
    window = one.traffic[0]
    for caption in [*over_time, "Requests over time"]:
        ax = drawn[caption].axes[0]
        drawn[caption].canvas.draw()
        left, right = ax.get_xlim()
        assert num2date(left) == window.start and num2date(right) == window.end, caption
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks and not any(re.fullmatch(r"20\d\d", t) for t in ticks), (caption, ticks)


def test_units_match_the_cli_and_p_values_sit_next_to_scores() -> None:
    report = full_report(
        [
            feature("income", drifted=True, score=0.4, importance=0.5, scores={"pvalue": 1e-9}),
            feature("age", drifted=False, score=0.1, importance=0.004, scores={"pvalue": 0.2}),
        ]
    )
    page = monitor_html(report, title="t")
    assert "<th>score</th><th>p-value</th><th>threshold</th>" in page
    assert (
        '<td>income</td><td>numeric</td><td>psi</td><td class="num">0.4</td><td>&lt;0.001</td>'
        in page
    )
    assert '<td class="num">0.1</td><td>0.200</td>' in page
    assert "<td>50%</td></tr>" in page and "<td>&lt;1%</td></tr>" in page  # importance
    assert "<td>drifted share of the model&#x27;s importance</td><td>50%</td>" in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td>60%</td>" in page  # gain share


def test_decay_says_which_way_the_metric_moved() -> None:
    rmse = Decay(
        metric="rmse", registered=10.0, current=12.5, drop=2.5, threshold=1.0, labelled=300,
        decayed=True,
    )  # fmt: skip
    page = monitor_html(full_report().model_copy(update={"decay": rmse}), title="t")
    assert "rmse is 12.5 on 300 labelled rows, 10 at registration (+2.5000, worse;" in page
    assert "<td>+2.5000, worse</td>" in page
    f1 = full_report().decay
    assert f1 is not None and f1.current < f1.registered
    assert "<td>-0.1700, worse</td>" in monitor_html(full_report(), title="t")


def test_the_alert_count_matches_the_alerts_listed() -> None:
    report = full_report()
    two = [*report.alerts, report.alerts[0].model_copy(update={"id": "alr_2", "kind": "decay"})]
    page = monitor_html(report.model_copy(update={"alerts": two}), title="t")
    assert '<td>alerts for this window</td><td class="num">2</td>' in page
    listed = page[page.index("Alerts for this window</h3>") :]
    assert listed.count("<tr><td>alr_") == 2


def test_joint_drift_alone_is_a_drift_verdict_with_its_reasons() -> None:
    quiet = [feature("x", drifted=False, score=0.01), feature("y", drifted=False, score=0.02)]
    drift = DriftReport(
        reference="r", current="c", reference_rows=5000, current_rows=5000, features=quiet,
        threshold=0.2,
    )  # fmt: skip
    joint = MultivariateDrift(
        auc=0.91, threshold=0.75, drifted=True, rows=5000, top_features={"x": 0.55, "y": 0.4}
    )
    report = MonitorReport(drift=judged(drift, joint))
    page = monitor_html(report, title="t")
    assert (
        '<p class="verdict fail">Drift: yes. joint drift: a domain classifier tells current rows '
        "from reference rows with ROC-AUC 0.910 (threshold 0.75), mostly by x (55%), y (40%); "
        "the per-feature tests alone would not call it drift.</p>"
    ) in page
    assert "<td>drifted share of the features</td><td>0%</td>" in page  # no model involved
    assert "<th>importance</th>" not in page and "<td>endpoint</td>" not in page
