"""Per-feature drift: the right columns flagged, decisions by effect size, bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.core.errors import Invalid, SpecError
from shipyard.core.spec import DriftTests, DriftTestSpec, MonitorSpec
from shipyard.data.profile import ProfileBuilder
from shipyard.monitor import WindowSketch, compare, drift_between
from shipyard.monitor.drift import edge_texts

NUMERIC_SHIFTED = ["normal_1", "lognormal_2", "uniform_3", "count_0", "count_4"]
CATEGORICAL_SHIFTED = ["cat_1", "cat_3"]
LEVELS = {"cat_0": 3, "cat_1": 5, "cat_2": 8, "cat_3": 12, "cat_4": 30}


def synthetic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """20 numeric columns (normal, lognormal, uniform, Poisson counts) and 5 categorical; with
    `shift`, five numeric columns move by `shift` std and two categorical ones change shares."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    std: dict[str, float] = {}
    for j in range(5):
        cols[f"normal_{j}"], std[f"normal_{j}"] = rng.normal(10 * j, 1 + j, rows), 1 + j
        sigma = 0.5 + 0.1 * j
        cols[f"lognormal_{j}"] = rng.lognormal(0.3 * j, sigma, rows)
        std[f"lognormal_{j}"] = float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(0.6 * j + sigma**2)))
        cols[f"uniform_{j}"], std[f"uniform_{j}"] = (
            rng.uniform(-j, j + 1, rows),
            (2 * j + 1) / 12**0.5,
        )
        mean = [4, 16, 36, 64, 100][j]
        cols[f"count_{j}"], std[f"count_{j}"] = rng.poisson(mean, rows), mean**0.5
    if shift:
        for name in NUMERIC_SHIFTED:
            cols[name] = cols[name] + shift * std[name]
    for name, k in LEVELS.items():
        shares = 1 / np.arange(1, k + 1)
        if shift and name in CATEGORICAL_SHIFTED:
            shares = shares[::-1] ** 0.5  # the rare levels become common
        levels = np.array([f"{name}_v{i}" for i in range(k)], dtype=object)
        cols[name] = levels[rng.choice(k, rows, p=shares / shares.sum())]
    return pd.DataFrame(cols)


SHIFTED = sorted(NUMERIC_SHIFTED + CATEGORICAL_SHIFTED)


@pytest.mark.parametrize(("rows", "shift"), [(10_000, 0.5), (100_000, 0.25)])
def test_every_shifted_column_is_flagged_and_no_other(rows: int, shift: float) -> None:
    report = drift_between(
        synthetic(rows, seed=1), synthetic(rows, seed=2, shift=shift), multivariate=False
    )
    assert sorted(report.drifted_columns) == SHIFTED
    assert report.drifted and report.drifted_share == pytest.approx(7 / 25)
    by_column = {f.column: f for f in report.features}
    assert by_column["normal_1"].test == "wasserstein"
    # A binned estimate: the outermost bins spread their values evenly, so it reads a little high.
    assert by_column["normal_1"].score == pytest.approx(shift, rel=0.2)
    assert by_column["cat_1"].test == "jensen_shannon"
    assert by_column["cat_1"].threshold == 0.1
    for feature in report.features:
        assert len(feature.bins) == len(feature.reference_share) == len(feature.current_share)
        assert sum(feature.current_share) == pytest.approx(1.0)


def test_two_draws_of_the_same_data_do_not_drift() -> None:
    report = drift_between(synthetic(20_000, seed=3), synthetic(20_000, seed=4), multivariate=False)
    assert report.drifted_columns == []
    assert not report.drifted and report.drifted_share == 0.0
    assert max(f.score for f in report.features) < 0.05


def test_a_small_window_needs_significance_as_well_as_size() -> None:
    reference = WindowSketch.reference_from(synthetic(20_000, seed=5))
    quiet, moved = reference.empty_like(), reference.empty_like()
    quiet.update(dict(synthetic(150, seed=6).items()))
    moved.update(dict(synthetic(150, seed=6, shift=1.5).items()))
    calm = compare(reference, quiet)
    # 150 rows: several columns pass the effect threshold by chance, none is significant.
    assert any(f.score >= f.threshold for f in calm.features)
    assert calm.drifted_columns == []
    assert set(compare(reference, moved).drifted_columns) >= set(NUMERIC_SHIFTED)


def test_a_registered_profile_serves_as_the_reference() -> None:
    table = pa.Table.from_pandas(synthetic(60_000, seed=7), preserve_index=False)
    builder = ProfileBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=10_000):
        builder.update(batch)
    reference = WindowSketch.from_profile(builder.finish())
    window = reference.empty_like()
    current = synthetic(20_000, seed=8, shift=0.5)
    for start in range(0, len(current), 1000):  # batches, as the serving log hands them over
        window.update({c: current[c].to_numpy()[start : start + 1000] for c in current})
    assert sorted(compare(reference, window).drifted_columns) == SHIFTED


def test_importance_weighs_the_window_verdict() -> None:
    ref, cur = synthetic(5_000, seed=1), synthetic(5_000, seed=2, shift=0.5)
    columns = ["normal_0", "normal_1", "normal_2"]  # only normal_1 moved
    minor = drift_between(
        ref, cur, columns=columns, importance={"normal_0": 9, "normal_1": 1, "normal_2": 10},
        multivariate=False,
    )  # fmt: skip
    major = drift_between(
        ref, cur, columns=columns, importance={"normal_1": 0.5, "normal_0": 0.25, "normal_2": 0.25},
        multivariate=False,
    )  # fmt: skip
    assert minor.drifted_columns == major.drifted_columns == ["normal_1"]
    assert minor.drifted_share == pytest.approx(0.05) and not minor.drifted
    assert major.drifted_share == pytest.approx(0.5) and major.drifted
    assert {f.column: f.importance for f in major.features}["normal_1"] == pytest.approx(0.5)
    unweighted = drift_between(ref, cur, columns=columns, multivariate=False)
    assert unweighted.drifted_share == pytest.approx(1 / 3) and unweighted.drifted


def test_overrides_per_type_and_per_column_are_used_and_recorded() -> None:
    spec = MonitorSpec(
        tests=DriftTests(numeric=DriftTestSpec(test="ks", threshold=0.05)),
        columns={
            "normal_1": DriftTestSpec(test="psi", threshold=5.0),  # too high to fire
            "cat_1": DriftTestSpec(test="chi2", threshold=0.2),
        },
    )
    report = drift_between(
        synthetic(10_000, seed=1), synthetic(10_000, seed=2, shift=0.5), spec=spec,
        multivariate=False,
    )  # fmt: skip
    by_column = {f.column: f for f in report.features}
    assert (by_column["uniform_3"].test, by_column["uniform_3"].threshold) == ("ks", 0.05)
    assert by_column["uniform_3"].score == by_column["uniform_3"].scores["ks"]
    assert (by_column["normal_1"].test, by_column["normal_1"].drifted) == ("psi", False)
    assert by_column["cat_1"].test == "chi2"
    assert by_column["cat_1"].score == by_column["cat_1"].scores["cramers_v"]
    assert by_column["cat_1"].drifted and by_column["cat_1"].scores["chi2_pvalue"] < 1e-10
    assert by_column["cat_0"].test == "jensen_shannon"  # no categorical override: the default


def test_an_override_for_an_unknown_column_is_a_spec_error() -> None:
    spec = MonitorSpec(columns={"salary": DriftTestSpec(test="psi", threshold=0.2)})
    with pytest.raises(SpecError, match=r"monitor.columns.salary: no monitored column"):
        drift_between(synthetic(200, 1), synthetic(200, 2), spec=spec, multivariate=False)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            MonitorSpec(columns={"normal_0": DriftTestSpec(test="chi2", threshold=0.1)}),
            r"monitor.columns.normal_0.test: received 'chi2', but column 'normal_0' is numeric; "
            r"expected one of wasserstein, psi, ks",
        ),
        (
            MonitorSpec(columns={"cat_0": DriftTestSpec(test="wasserstein", threshold=0.1)}),
            r"monitor.columns.cat_0.test: received 'wasserstein', but column 'cat_0' is categ",
        ),
        (
            MonitorSpec(tests=DriftTests(categorical=DriftTestSpec(test="ks", threshold=0.1))),
            r"monitor.tests.categorical.test: received 'ks'.*expected one of jensen_shannon",
        ),
    ],
)
def test_a_test_that_does_not_fit_the_type_is_a_spec_error(spec: MonitorSpec, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        drift_between(synthetic(200, 1), synthetic(200, 2), spec=spec, multivariate=False)


def test_current_data_missing_columns_is_refused_and_extra_ones_are_listed() -> None:
    ref, cur = synthetic(500, 1), synthetic(500, 2)
    with pytest.raises(Invalid, match=r"current data has no column\(s\) \['normal_3', 'cat_4'\]"):
        drift_between(ref, cur.drop(columns=["normal_3", "cat_4"]), multivariate=False)
    report = drift_between(ref, cur.assign(note="x", user_id=1), multivariate=False)
    assert report.ignored_columns == ["note", "user_id"]


@pytest.mark.parametrize("rows", [0, 99])
def test_a_window_with_too_little_traffic_is_not_judged(rows: int) -> None:
    shifted = synthetic(rows, seed=2, shift=3.0)
    report = drift_between(synthetic(1_000, 1), shifted, multivariate=True)
    assert not report.drifted and report.features == [] and report.multivariate is None
    assert report.current_rows == rows
    assert report.note is not None
    assert f"not enough traffic to judge drift: the current window has {rows} rows" in report.note
    assert "monitor.min_rows = 100" in report.note


def test_missing_values_are_judged_on_their_own() -> None:
    ref = pd.DataFrame({"x": np.random.default_rng(0).normal(size=5_000), "g": ["a", "b"] * 2_500})
    cur = ref.copy()
    cur.loc[: len(cur) // 3, "x"] = np.nan  # a third missing, the rest unchanged
    report = drift_between(ref, cur, multivariate=False)
    x = {f.column: f for f in report.features}["x"]
    assert x.missing_drifted and not x.drifted
    assert x.missing_reference == 0.0 and x.missing_current == pytest.approx(1 / 3, abs=1e-3)
    assert report.drifted_share == 0.5  # a column whose values went missing counts


def test_all_missing_columns_are_reported_without_errors() -> None:
    ref = pd.DataFrame({"x": np.arange(500.0), "g": ["a"] * 500, "empty": [np.nan] * 500})
    cur = pd.DataFrame({"x": [np.nan] * 500, "g": [None] * 500, "empty": [np.nan] * 500})
    report = drift_between(ref, cur, multivariate=False)
    by_column = {f.column: f for f in report.features}
    for name in ("x", "g"):
        assert by_column[name].missing_drifted and by_column[name].missing_current == 1.0
        assert not by_column[name].drifted and by_column[name].score == 0.0
    assert not by_column["empty"].missing_drifted and by_column["empty"].score == 0.0
    json.loads(report.model_dump_json())


def test_constant_columns() -> None:
    ref = pd.DataFrame({"c": [5.0] * 1_000, "k": ["only"] * 1_000})
    same = drift_between(ref, ref, multivariate=False)
    assert same.drifted_columns == [] and {f.score for f in same.features} == {0.0}
    moved = drift_between(ref, pd.DataFrame({"c": [6.0] * 1_000, "k": ["only"] * 1_000}))
    c = {f.column: f for f in moved.features}["c"]
    assert c.drifted and c.score == pytest.approx(1.0)  # a constant reference: in its own units


def test_infinities_are_counted_out_of_range_and_keep_scores_finite() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5_000)})
    cur = pd.DataFrame({"x": rng.normal(size=5_000)})
    cur.loc[:999, "x"] = np.inf  # a fifth of the window overflowed
    report = drift_between(ref, cur, multivariate=False)
    x = report.features[0]
    assert x.bins[-1].startswith(">") and x.current_share[-1] == pytest.approx(0.2, abs=0.005)
    assert all(np.isfinite(v) for v in x.scores.values())
    assert x.drifted and x.scores["ks"] == pytest.approx(0.2, abs=0.02)
    assert x.missing_current == 0.0


def test_new_categories_are_reported_with_counts() -> None:
    ref = pd.DataFrame({"g": ["a", "b", "c"] * 1_000})
    cur = pd.DataFrame({"g": ["a", "b", "c"] * 900 + ["zz"] * 250 + ["yy"] * 50})
    g = drift_between(ref, cur, multivariate=False).features[0]
    assert g.new_categories == {"zz": 250, "yy": 50}
    assert g.bins == ["a", "b", "c", "(other)"]
    assert g.current_share[-1] == pytest.approx(0.1)


def test_the_prediction_column_is_reported_apart() -> None:
    ref, cur = synthetic(3_000, 1), synthetic(3_000, 2, shift=0.5)
    ref["score"], cur["score"] = ref["normal_1"] / 10, cur["normal_1"] / 10
    report = drift_between(ref, cur, prediction_column="score", multivariate=False)
    assert report.prediction is not None and report.prediction.drifted
    assert "score" not in [f.column for f in report.features]
    assert report.drifted_share == pytest.approx(7 / 25)


def test_compare_refuses_sketches_on_other_bins() -> None:
    a = WindowSketch.reference_from(synthetic(500, 1))
    b = WindowSketch.reference_from(synthetic(500, 2))
    with pytest.raises(Invalid, match="binned differently"):
        compare(a, b)


def test_reports_round_trip_through_json() -> None:
    report = drift_between(synthetic(2_000, 1), synthetic(2_000, 2, 0.5), multivariate=False)
    again = type(report).model_validate_json(report.model_dump_json())
    assert again == report


def test_probability_bins_read_as_short_numbers() -> None:
    """A binary classifier's scores: bins like [0.099, 0.141), not [0.09872, 0.1412)."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"p": rng.beta(0.7, 0.9, 3_000)})
    cur = pd.DataFrame({"p": rng.beta(0.5, 1.5, 3_000)})
    report = drift_between(ref, cur, prediction_column="p", multivariate=False)
    assert report.prediction is not None
    bins = report.prediction.bins
    inner = [b for b in bins if b.startswith("[")]
    assert len(inner) >= 10 and all(len(b) <= len("[0.099, 0.141)") for b in inner), bins
    edges = [float(b[1:].split(",")[0]) for b in inner]
    assert edges == sorted(set(edges))  # short, yet no two edges read the same


@pytest.mark.parametrize(
    ("edges", "texts"),
    [
        ([0.05042, 0.1724, 0.2941, 0.9739], ["0.05", "0.17", "0.29", "0.97"]),
        ([0.0, 12.0, 15.5, 36.0], ["0", "12", "15.5", "36"]),
        ([-0.0892, -0.06656, -0.05794, 0.0], ["-0.089", "-0.067", "-0.058", "0"]),
        ([0.0001, 0.00015, 0.3], ["0.0001", "0.00015", "0.3"]),
        ([1e7, 1.0001e7, 2e7], ["1e+07", "1.0001e+07", "2e+07"]),
    ],
)
def test_bin_edges_use_as_few_digits_as_keep_them_apart(
    edges: list[float], texts: list[str]
) -> None:
    assert edge_texts(edges) == texts


def test_the_target_is_label_drift_not_a_feature() -> None:
    ref, cur = synthetic(3_000, 1), synthetic(3_000, 2)
    ref["y"] = (ref["normal_1"] > 10).astype(int)
    cur["y"] = 1  # every label moved; no feature did
    report = drift_between(ref, cur, label_column="y", multivariate=False)
    assert report.label is not None and report.label.column == "y" and report.label.drifted
    assert "y" not in [f.column for f in report.features]
    assert not report.drifted and report.reasons == []


def test_the_headline_names_what_the_share_is_of() -> None:
    ref, cur = synthetic(5_000, 1), synthetic(5_000, 2, shift=0.5)
    by_count = drift_between(ref, cur, multivariate=False)
    assert by_count.reasons[0].startswith("7 of 25 features drifted (28% of the features;")
    importance = dict.fromkeys(by_count.drifted_columns, 1.0) | {"normal_0": 1.0}
    weighed = drift_between(ref, cur, importance=importance, multivariate=False)
    assert weighed.reasons[0].startswith(
        "7 of 25 features drifted, carrying 88% of the model's importance (threshold 20%): "
    )
