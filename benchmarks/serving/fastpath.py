"""Micro-benchmark: the compiled serving fast path versus calling the scikit-learn pipeline.

Models: the trainer's pipeline (`shipyard.train.preprocess.build_pipeline`: median-imputed,
scaled numbers; constant-imputed one-hot categories with `max_categories=30`) around
LogisticRegression, HistGradientBoostingClassifier, RandomForestClassifier and LGBMClassifier,
fitted on scikit-learn's breast-cancer table (20 numeric columns) plus two synthetic categorical
columns (4 and 40 categories), saved and loaded through the registry's signed bundles in a
temporary workspace, as serving loads them.

Per model and batch size (1 and 100 rows), the per-call time of:

- inputs      `decode` + `to_columns` of the JSON records body (validation against the signature)
- compiled    `Predictor.predict(batch)` (`compile_predictor(model)`, one native thread)
- pipeline    `pipeline.predict_proba(frame)` on a ready pandas DataFrame, thread pools as the
              process has them (what a server that does nothing special pays)
- pinned      the same inside `threadpool_limits(1)` (entered once, outside the timed loop)
- json→pipe   `pandas.DataFrame(orjson.loads(body)["rows"])` + `pipeline.predict_proba`, the
              request path of a DataFrame-based server without its validation

Each figure is the best of `--repeat` runs of a loop, divided by the loop's calls (µs per
call); the speed-up is pipeline / compiled. Nothing here asserts on timings.

    .venv/bin/python benchmarks/serving/fastpath.py [--quick] [--repeat K]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from shipyard.core.records import Signature, SignatureColumn
from shipyard.core.settings import Settings
from shipyard.registry import load_bundle, save_bundle
from shipyard.security import init_workspace
from shipyard.serve.fastpath import Predictor, compile_predictor
from shipyard.serve.inputs import decode, to_columns
from shipyard.train.preprocess import FeaturePlan, build_pipeline

REGIONS = [f"r{i:02d}" for i in range(40)]
MODELS: dict[str, Callable[[], Any]] = {
    "logistic": lambda: LogisticRegression(max_iter=5000),
    "hist_gb": lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0),
    "lightgbm": lambda: LGBMClassifier(n_estimators=100, random_state=0, verbosity=-1),
}


def data() -> tuple[pd.DataFrame, pd.Series, list[str]]:
    table = load_breast_cancer(as_frame=True).frame
    numeric = [c for c in table.columns if c != "target"][:20]
    rng = np.random.default_rng(3)
    X = table[numeric].copy()
    X["grade"] = rng.choice(["A", "B", "C", "D"], size=len(X))
    weights = 1.0 / np.arange(1, len(REGIONS) + 1)
    X["region"] = rng.choice(REGIONS, size=len(X), p=weights / weights.sum())
    X.loc[rng.random(len(X)) < 0.05, numeric[0]] = np.nan
    X.loc[rng.random(len(X)) < 0.05, "grade"] = None
    return X, table["target"], numeric


def signature(numeric: list[str]) -> Signature:
    return Signature(
        inputs=[
            *(SignatureColumn(name=c, dtype="float64") for c in numeric),
            SignatureColumn(name="grade", dtype="string", values=["A", "B", "C", "D"]),
            SignatureColumn(name="region", dtype="string", values=REGIONS),
        ],
        output="class",
        classes=["0", "1"],
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for _, row in frame.astype(object).iterrows():
        out.append(
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        )
    return out


def per_call(fn: Callable[[], Any], repeat: int, budget_s: float = 0.2) -> float:
    """Best-of-`repeat` µs per call, with a loop sized to take about `budget_s`."""
    fn()
    timer = timeit.Timer(fn)
    number, _elapsed = timer.autorange()
    number = max(1, int(number * budget_s / max(_elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def row(
    name: str,
    n: int,
    X: pd.DataFrame,
    sig: Signature,
    pipeline: Any,
    predictor: Predictor,
    repeat: int,
    budget: float,
) -> str:
    rows = X.sample(n=n, random_state=n)
    body = orjson.dumps({"rows": records(rows)})
    batch = to_columns(sig, decode(body))
    frame = rows.reset_index(drop=True)

    inputs = per_call(lambda: to_columns(sig, decode(body)), repeat, budget)
    fast = per_call(lambda: predictor.predict(batch), repeat, budget)
    slow = per_call(lambda: pipeline.predict_proba(frame), repeat, budget)
    with threadpool_limits(1):
        pinned = per_call(lambda: pipeline.predict_proba(frame), repeat, budget)
    naive = per_call(
        lambda: pipeline.predict_proba(pd.DataFrame(orjson.loads(body)["rows"])), repeat, budget
    )
    return (
        f"{name:10} {n:>4}  {inputs:8.1f} {fast:9.1f} {slow:9.1f} "
        f"{pinned:9.1f} {naive:10.1f} {slow / fast:7.1f}x  "
        f"{'compiled' if predictor.fast else 'fallback'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    repeat, budget = (3, 0.05) if args.quick else (args.repeat, 0.2)

    X, y, numeric = data()
    sig = signature(numeric)
    plan = FeaturePlan(numeric=numeric, categorical=["grade", "region"])
    print(
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{len(numeric)} numeric + 2 categorical columns; µs per call, best of {repeat}; "
        f"load average {os.getloadavg()[0]:.1f} (figures are only comparable on an idle machine)"
    )
    header = (
        f"{'model':10} {'rows':>4}  {'inputs':>8} {'compiled':>9} {'pipeline':>9} "
        f"{'pinned':>9} {'json→pipe':>10} {'speed-up':>8}  path"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as home:
        ws, _token, _secret = init_workspace(Settings.load(home=str(Path(home) / "ws")))
        try:
            for name, make in MODELS.items():
                pipeline = build_pipeline(plan, make()).fit(X, y)
                digest, _flavor = save_bundle(ws, pipeline, task="classification")
                model = dataclasses.replace(load_bundle(ws, digest), signature=sig)
                predictor = compile_predictor(model, threads=1)
                for n in (1, 100):
                    print(row(name, n, X, sig, model.pipeline, predictor, repeat, budget))
        finally:
            ws.close()


if __name__ == "__main__":
    main()
