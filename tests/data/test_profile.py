"""Profiles: counts, moments, quantiles and histograms agree with NumPy; categories are exact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.core.records import ColumnProfile
from shipyard.data import ingest, profile
from shipyard.data.profile import QUANTILES, profile_parquet
from shipyard.store.workspace import Workspace

WriteFile = Callable[[pd.DataFrame, str], Path]
QUANTILE_KEYS = ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]


def _profile(tmp_path: Path, table: pa.Table, *, row_group_size: int = 700) -> list[ColumnProfile]:
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    result = profile_parquet(str(path))
    assert result.rows == table.num_rows
    return result.columns


def _check_numeric(col: ColumnProfile, present: np.ndarray, missing: int) -> None:
    assert col.count == len(present)
    assert col.missing == missing
    assert col.min == present.min()
    assert col.max == present.max()
    assert col.mean == pytest.approx(present.mean(), rel=1e-9)
    assert col.std == pytest.approx(present.std(ddof=1), rel=1e-9)
    assert col.histogram is not None
    assert sum(col.histogram.counts) == col.count
    assert col.histogram.edges[0] == col.min
    assert col.histogram.edges[-1] == col.max
    assert np.all(np.diff(col.histogram.edges) > 0)


def test_numeric_column_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(3, 1, 5_000)
    gone = rng.random(5_000) < 0.1
    (col,) = _profile(tmp_path, pa.table({"x": pa.array(values, mask=gone)}))

    present = values[~gone]
    _check_numeric(col, present, int(gone.sum()))
    assert col.dtype == "float64"
    assert col.distinct == len(np.unique(present))
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        assert col.quantiles[key] == pytest.approx(np.quantile(present, q), rel=1e-12), key
    assert col.histogram is not None
    expected, _ = np.histogram(present, bins=np.asarray(col.histogram.edges))
    assert col.histogram.counts == expected.tolist()
    assert col.missing_rate == pytest.approx(gone.mean())


def test_integer_column_matches_numpy(tmp_path: Path) -> None:
    values = np.random.default_rng(4).integers(-50, 1_000, 3_000)
    (col,) = _profile(tmp_path, pa.table({"n": values}))

    _check_numeric(col, values.astype(np.float64), 0)
    assert col.dtype == "int64"
    assert col.quantiles["p50"] == np.median(values)


def test_quantiles_come_from_a_sample_above_the_limit_but_counts_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profile, "SAMPLE", 2_000)
    values = np.random.default_rng(5).normal(100, 15, 40_000)
    (col,) = _profile(tmp_path, pa.table({"x": values}), row_group_size=5_000)

    _check_numeric(col, values, 0)
    assert col.distinct is None  # unknown from a sample
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        assert col.quantiles[key] == pytest.approx(np.quantile(values, q), abs=2.5), key


def test_categorical_counts_are_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    words = rng.choice(["red", "green", "blue", "teal"], 2_500, p=[0.5, 0.3, 0.15, 0.05])
    gone = rng.random(2_500) < 0.2
    (col,) = _profile(tmp_path, pa.table({"c": pa.array(words.tolist(), mask=gone)}))

    counts = Counter(words[~gone].tolist())
    assert (col.dtype, col.count, col.missing) == ("string", int((~gone).sum()), int(gone.sum()))
    assert col.top == dict(counts)
    assert list(col.top) == [k for k, _ in counts.most_common()]
    assert col.distinct == 4
    assert col.histogram is None
    assert col.mean is None


def test_booleans_are_counted_as_categories(tmp_path: Path) -> None:
    (col,) = _profile(tmp_path, pa.table({"b": [True, False, True, None, True]}))

    assert (col.dtype, col.count, col.missing) == ("bool", 4, 1)
    assert col.top == {"true": 3, "false": 1}


def test_timestamps_and_dates_are_profiled_in_epoch_seconds(tmp_path: Path) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    stamps = [start + timedelta(hours=7 * i) for i in range(200)]
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(200)]
    when, day = _profile(tmp_path, pa.table({"when": stamps, "day": days}))

    seconds = np.array([s.timestamp() for s in stamps])
    assert when.dtype == "timestamp"
    _check_numeric(when, seconds, 0)
    assert when.min == datetime(2024, 3, 1, tzinfo=UTC).timestamp()
    day_seconds = np.array([(d - date(1970, 1, 1)).days * 86_400.0 for d in days])
    assert day.dtype == "date"
    _check_numeric(day, day_seconds, 0)


def test_constant_and_all_missing_columns(tmp_path: Path) -> None:
    const, empty = _profile(
        tmp_path, pa.table({"k": [7.0] * 50, "none": pa.array([None] * 50, pa.float64())})
    )

    assert (const.min, const.max, const.std) == (7.0, 7.0, 0.0)
    assert const.histogram is not None
    assert const.histogram.counts == [50]
    assert (empty.count, empty.missing, empty.mean, empty.histogram) == (0, 50, None, None)


def test_stored_version_carries_the_profile_of_its_data(
    workspace: Workspace, write_file: WriteFile
) -> None:
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {
            "id": np.arange(3_000),
            "amount": rng.gamma(2.0, 300.0, 3_000).round(3),
            "city": rng.choice(["Oslo", "Lima", "Pune"], 3_000),
        }
    )
    frame.loc[frame.index % 17 == 0, "amount"] = np.nan

    version = ingest(workspace, write_file(frame, "sales.csv"), name="sales", id="id").version

    amount = version.profile.column("amount")
    assert amount is not None
    present = frame["amount"].dropna().to_numpy()
    _check_numeric(amount, present, int(frame["amount"].isna().sum()))
    assert amount.quantiles["p95"] == pytest.approx(np.quantile(present, 0.95), rel=1e-12)
    city = version.profile.column("city")
    assert city is not None and city.top == frame["city"].value_counts().to_dict()
    assert version.profile.rows == 3_000


def test_the_sample_is_the_bottom_k_of_the_row_keys_whatever_the_batch_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(profile, "SAMPLE", 1_000)
    rng = np.random.default_rng(8)
    values = rng.normal(0, 1, 30_000)
    values[rng.random(30_000) < 0.05] = np.nan  # missing rows never enter the sample
    sizes = [10, 700, 5_000, 3, 2_500, 9_000, 287, 12_500]  # under, over and past the buffers
    builder = profile.ProfileBuilder(pa.schema([("x", pa.float64())]))
    start = 0
    for size in sizes:
        builder.update(pa.record_batch({"x": values[start : start + size]}))
        start += size
    assert start == len(values)

    # The builder draws one key per row, batch after batch, from its seeded generator.
    keys = np.random.default_rng(profile.SEED).random(len(values))
    finite = np.isfinite(values)
    expected = values[finite][np.argsort(keys[finite])[:1_000]]
    numeric = builder._columns["x"]
    assert isinstance(numeric, profile._Numeric)
    numeric._trim()
    assert sorted(numeric.sample.tolist()) == sorted(expected.tolist())
