"""The BentoML side of benchmarks/serving/bench.py: the same fitted pipeline as a BentoML service.

Run by the benchmark in its own venv (bench-output/bentoml-venv), never imported by Shipyard:

    BENCH_MODEL=/tmp/.../flights-hgb.joblib bentoml serve bento_service:Classifier --port 3000

POST /predict with {"rows": [{...}, ...]} answers the positive and negative class probabilities
per row, as `predict_proba` gives them: what a user writing the shortest BentoML service gets.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> list[list[float]]:
        probabilities: list[list[float]] = self.model.predict_proba(pd.DataFrame(rows)).tolist()
        return probabilities
