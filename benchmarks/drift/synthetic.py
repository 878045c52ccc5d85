"""The drift benchmark's data: two seeded sides with known shifts, written to Parquet once.

25 columns. 20 numeric, five of each kind: `normal_j` (mean 10j, std 1 + j), `lognormal_j`
(log-mean 0.3j, log-std 0.5 + 0.1j), `uniform_j` (on [-j, j + 1]) and `count_j` (Poisson with
mean 4, 16, 36, 64, 100). 5 categorical (strings): `cat_0` to `cat_4` with 3, 5, 8, 12 and 30
levels and skewed frequencies.

The current side is drawn from the same distributions except that five numeric columns are
moved by half their standard deviation (the distribution's, not the sample's; the counts by a
whole number, which is exactly half their std) and two categorical columns have their
frequencies changed (a population stability index of about 0.25 each, as a 0.5-std mean shift
of a normal column has). Each size has its own seed (SEED, rows), so sizes are independent
draws; the files are cached under bench-output/drift-data/ and reused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SEED = 20240917
GENERATOR = 1  # bump when the data changes, so cached files are not reused

NORMAL = [(10.0 * j, 1.0 + j) for j in range(5)]  # mean, std
LOGNORMAL = [(0.3 * j, 0.5 + 0.1 * j) for j in range(5)]  # mu, sigma of log(x)
UNIFORM = [(-float(j), j + 1.0) for j in range(5)]  # low, high
COUNTS = [4, 16, 36, 64, 100]  # Poisson means: std/2 = 1, 2, 3, 4, 5


def _zipf(levels: int) -> list[float]:
    weights = [1 / (k + 1) for k in range(levels)]
    total = sum(weights)
    return [w / total for w in weights]


def _moved(shares: list[float], take: float, to: range) -> list[float]:
    """`take` of the first level's share spread evenly over the levels in `to`."""
    out = list(shares)
    out[0] -= take
    for k in to:
        out[k] += take / len(to)
    return out


CATEGORIES: dict[str, list[float]] = {
    "cat_0": [0.6, 0.3, 0.1],
    "cat_1": [0.3, 0.25, 0.2, 0.15, 0.1],
    "cat_2": [1 / 8] * 8,
    "cat_3": _zipf(12),
    "cat_4": _zipf(30),
}
CATEGORY_SHIFTS: dict[str, list[float]] = {
    "cat_1": [0.15, 0.25, 0.2, 0.15, 0.25],
    "cat_3": _moved(CATEGORIES["cat_3"], 0.17, range(6, 12)),
}
NUMERIC = [f"{kind}_{j}" for kind in ("normal", "lognormal", "uniform", "count") for j in range(5)]
CATEGORICAL = list(CATEGORIES)
NUMERIC_SHIFTS = ["normal_1", "normal_4", "lognormal_2", "uniform_3", "count_0"]
SHIFTED = NUMERIC_SHIFTS + list(CATEGORY_SHIFTS)


def std(column: str) -> float:
    """The standard deviation of the distribution a numeric column is drawn from."""
    kind, j = column.rsplit("_", 1)
    i = int(j)
    if kind == "normal":
        return NORMAL[i][1]
    if kind == "lognormal":
        mu, sigma = LOGNORMAL[i]
        return math.sqrt((math.exp(sigma**2) - 1) * math.exp(2 * mu + sigma**2))
    if kind == "uniform":
        low, high = UNIFORM[i]
        return (high - low) / math.sqrt(12)
    return math.sqrt(COUNTS[i])


def psi(expected: list[float], actual: list[float]) -> float:
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def design() -> dict[str, Any]:
    """What was shifted and by how much, for the report."""
    return {
        "seed": SEED,
        "generator": GENERATOR,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "shifted": SHIFTED,
        "numeric_shift": {c: 0.5 * std(c) for c in NUMERIC_SHIFTS},
        "categorical_shift": {
            c: {"reference": CATEGORIES[c], "current": q, "psi": psi(CATEGORIES[c], q)}
            for c, q in CATEGORY_SHIFTS.items()
        },
    }


def _side(rng: Any, rows: int, current: bool) -> Any:
    import numpy as np
    import pyarrow as pa

    cols: dict[str, Any] = {}
    for name in NUMERIC:
        kind, j = name.rsplit("_", 1)
        i = int(j)
        if kind == "normal":
            values = rng.normal(*NORMAL[i], rows)
        elif kind == "lognormal":
            values = rng.lognormal(*LOGNORMAL[i], rows)
        elif kind == "uniform":
            values = rng.uniform(*UNIFORM[i], rows)
        else:
            values = rng.poisson(COUNTS[i], rows).astype(np.int64)
        if current and name in NUMERIC_SHIFTS:
            shift = 0.5 * std(name)
            values = values + (round(shift) if kind == "count" else shift)
        cols[name] = pa.array(values)
    for name, shares in CATEGORIES.items():
        if current and name in CATEGORY_SHIFTS:
            shares = CATEGORY_SHIFTS[name]
        levels = np.array([f"{name}_v{k}" for k in range(len(shares))])
        cols[name] = pa.array(levels[rng.choice(len(shares), rows, p=shares)])
    return pa.table(cols)


def files(out: Path, rows: int) -> tuple[Path, Path]:
    """(reference, current) Parquet files with `rows` rows each, generated on first use."""
    import numpy as np
    import pyarrow.parquet as pq

    folder = out / "drift-data" / f"rows{rows}-seed{SEED}-g{GENERATOR}"
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    if reference.exists() and current.exists():
        return reference, current
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([SEED, rows])
    for path, is_current in ((reference, False), (current, True)):
        partial = path.with_suffix(".partial")
        pq.write_table(_side(rng, rows, is_current), partial)
        partial.replace(path)
    return reference, current
