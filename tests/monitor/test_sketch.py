"""Window sketches: bins, missing values, moments, merging, serialising, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.core.errors import Invalid
from shipyard.data.profile import ProfileBuilder
from shipyard.monitor import WindowSketch
from shipyard.monitor.sketch import NEW_CAP, CategoricalSketch, NumericSketch


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.4, rows),
            "age": rng.integers(18, 80, rows),
            "grade": rng.choice(["A", "B", "C", "D"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def test_numeric_bins_follow_the_reference_edges_with_underflow_and_overflow() -> None:
    sketch = NumericSketch(np.array([0.0, 1.0, 2.0]))
    sketch.update(np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 2.5, np.nan, np.inf, -np.inf]))
    # bins: < 0 | [0, 1) | [1, 2] | > 2; the maximum edge belongs to the last inner bin.
    assert sketch.counts.tolist() == [2, 2, 2, 2]
    assert sketch.missing == 1
    finite = np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 2.5])
    assert sketch.count == 6  # infinities are binned but kept out of the moments
    assert sketch.mean == pytest.approx(finite.mean())
    assert sketch.std == pytest.approx(finite.std(ddof=1))
    assert (sketch.lo, sketch.hi) == (-5.0, 2.5)


def test_long_and_short_arrays_bin_alike() -> None:
    values = np.random.default_rng(1).normal(size=50_000)
    edges = np.quantile(values, np.linspace(0, 1, 21))
    whole, batched = NumericSketch(edges), NumericSketch(edges)
    whole.update(values)  # one comparison per edge
    for start in range(0, len(values), 1000):  # a binary search per value
        batched.update(values[start : start + 1000])
    assert whole.counts.tolist() == batched.counts.tolist()
    assert whole.counts[0] == whole.counts[-1] == 0
    assert whole.mean == pytest.approx(batched.mean)
    assert whole.m2 == pytest.approx(batched.m2)


def test_a_constant_reference_keeps_one_closed_bin() -> None:
    reference = WindowSketch.reference_from(pd.DataFrame({"x": [3.0] * 10}))
    window = reference.empty_like()
    window.update({"x": np.array([2.0, 3.0, 3.0, 4.0])})
    sketch = window.features["x"]
    assert isinstance(sketch, NumericSketch)
    assert sketch.counts.tolist() == [1, 2, 1]


def test_reference_from_profile_uses_the_profile_histogram_and_top_categories() -> None:
    table = pa.Table.from_pandas(frame(5_000), preserve_index=False)
    builder = ProfileBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=1000):
        builder.update(batch)
    profile = builder.finish()
    sketch = WindowSketch.from_profile(profile)
    income, grade = sketch.features["income"], sketch.features["grade"]
    assert isinstance(income, NumericSketch) and isinstance(grade, CategoricalSketch)
    column = profile.column("income")
    assert column is not None and column.histogram is not None
    assert income.edges.tolist() == column.histogram.edges
    assert income.counts[1:-1].tolist() == column.histogram.counts
    assert income.std == pytest.approx(column.std)
    assert grade.categories == ["A", "B", "C", "D"] and grade.complete
    assert sketch.rows == 5_000
    with pytest.raises(Invalid, match=r"the profile has no column\(s\) \['salary'\]"):
        WindowSketch.from_profile(profile, ["income", "salary"])


def test_categories_count_known_new_and_missing_values_from_any_array_type() -> None:
    reference = WindowSketch.reference_from(frame(1000), ["grade"])
    window = reference.empty_like()
    window.update({"grade": np.array(["A", "B", None, "Z"], dtype=object)})
    window.update({"grade": pa.chunked_array([["A", None], ["Z", "Y"]])})
    window.update({"grade": ["C", "C"]})
    grade = window.features["grade"]
    assert isinstance(grade, CategoricalSketch)
    assert dict(zip(grade.categories, grade.counts.tolist(), strict=True)) == {
        "A": 2,
        "B": 1,
        "C": 2,
        "D": 0,
    }
    assert grade.new == {"Z": 2, "Y": 1}
    assert grade.missing == 2
    assert window.rows == 10


def test_booleans_are_categories_as_the_profile_writes_them() -> None:
    reference = WindowSketch.reference_from(pa.table({"flag": [True, False, True, None]}))
    window = reference.empty_like()
    window.update({"flag": np.array([True, True, False])})
    flag = window.features["flag"]
    assert isinstance(flag, CategoricalSketch)
    assert sorted(flag.categories) == ["false", "true"]
    assert flag.counts[flag.categories.index("true")] == 2


def test_new_categories_are_bounded() -> None:
    reference = WindowSketch.reference_from(pd.DataFrame({"city": ["Paris"] * 5}))
    window = reference.empty_like()
    window.update({"city": [f"town{i}" for i in range(NEW_CAP + 10)]})
    city = window.features["city"]
    assert isinstance(city, CategoricalSketch)
    assert len(city.new) == NEW_CAP
    assert city.new_untracked == 10


def _halves_and_whole(rows: int) -> tuple[WindowSketch, WindowSketch, WindowSketch]:
    reference = WindowSketch.reference_from(frame(2_000))
    current = frame(rows, seed=1)
    current.loc[::7, "income"] = np.nan
    current.loc[::11, "grade"] = None
    current.loc[::13, "grade"] = "E"  # new
    current.loc[5, "income"] = np.inf
    half = rows // 2
    first, second, whole = reference.empty_like(), reference.empty_like(), reference.empty_like()
    first.update({c: current[c].to_numpy()[:half] for c in current})
    second.update({c: current[c].to_numpy()[half:] for c in current})
    whole.update({c: current[c].to_numpy() for c in current})
    return first, second, whole


def test_merging_the_sketches_of_two_halves_gives_the_sketch_of_the_whole() -> None:
    first, second, whole = _halves_and_whole(3_001)
    merged = first.merge(second).to_dict()
    expected = whole.to_dict()
    assert merged["rows"] == expected["rows"] == 3_001
    for name, feature in expected["features"].items():
        got = merged["features"][name]
        for key, value in feature.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9), (name, key)
            else:
                assert got[key] == value, (name, key)
    assert expected["features"]["grade"]["new"] == {"E": pytest.approx(231, abs=1)}


def test_a_sketch_survives_json() -> None:
    first, _, _ = _halves_and_whole(500)
    first.update({"income": [1.0], "age": [30], "grade": ["A"], "extra": [1]})
    text = json.dumps(first.to_dict())
    again = WindowSketch.from_dict(json.loads(text))
    assert again.to_dict() == first.to_dict()
    assert again.ignored == {"extra"}
    # The restored sketch keeps counting on the same bins.
    again.update({"income": [1e9], "age": [30], "grade": ["B"]})
    assert again.rows == first.rows + 1


def test_a_batch_without_a_monitored_column_is_refused() -> None:
    window = WindowSketch.reference_from(frame(100)).empty_like()
    with pytest.raises(Invalid, match=r"no column\(s\) \['age'\].*Log every monitored column"):
        window.update({"income": [1.0], "grade": ["A"]})


def test_columns_of_different_lengths_are_refused() -> None:
    window = WindowSketch.reference_from(frame(100)).empty_like()
    with pytest.raises(Invalid, match=r"differ in length: .*'grade': 1.*expected 2 rows"):
        window.update({"income": [1.0, 2.0], "age": [3, 4], "grade": ["A"]})


def test_text_in_a_numeric_column_is_refused() -> None:
    window = WindowSketch.reference_from(frame(100)).empty_like()
    with pytest.raises(Invalid, match=r"column 'income': received string values; expected numbers"):
        window.update({"income": ["high", "low"], "age": [3, 4], "grade": ["A", "B"]})


def test_sketches_on_different_bins_do_not_merge() -> None:
    a = WindowSketch.reference_from(frame(100, seed=1))
    b = WindowSketch.reference_from(frame(100, seed=2))
    with pytest.raises(Invalid, match=r"binned differently.*reference.empty_like\(\)"):
        a.merge(b)
    with pytest.raises(Invalid, match="hold different columns"):
        a.merge(WindowSketch.reference_from(frame(100), ["age"]))


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(Invalid, match="format 99 is not supported; expected 1"):
        WindowSketch.from_dict({"format": 99, "rows": 0, "features": {}})


def test_reference_from_refuses_other_inputs_and_unknown_columns() -> None:
    with pytest.raises(Invalid, match="received dict; expected a pyarrow Table or a pandas"):
        WindowSketch.reference_from({"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(Invalid, match=r"the reference has no column\(s\) \['nope'\]"):
        WindowSketch.reference_from(frame(10), ["income", "nope"])
