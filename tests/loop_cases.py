"""A served churn model with production traffic, for the monitoring and loop suites.

`served()` trains and registers churn@1 on the customers table, makes it the champion of
endpoint `churn`; `log_traffic()` answers a frame with a registered version (real
predictions) and writes the answers to the prediction log as the server would; `label()` sends
the true labels as feedback. `drifted()` is production after a change: longer tenures, more
`pro` plans, and churn that now depends on the region (so the old model decays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from projects import FEATURES, LABEL, customers, spec_dict
from shipyard.core.records import ModelVersion
from shipyard.core.spec import ProjectSpec, parse_spec
from shipyard.data import ingest_spec
from shipyard.loop import train_and_register
from shipyard.registry import load_model, set_alias
from shipyard.serve.endpoints import create_endpoint
from shipyard.serve.predlog import PredictionLog, record_feedback
from shipyard.store.workspace import Workspace

ENDPOINT = "churn"
LOOP: dict[str, Any] = {
    "monitor": {"window": "1h", "drift_threshold": 0.2, "decay": {"min_labels": 50}},
    "retrain": {
        "when": ["drift", "decay"],
        "rollout": {
            "shadow": 50,
            "canary": [50, 100],
            "guard": {"error_rate": 0.05, "agreement": 0.1, "min_requests": 20},
        },
    },
}


@dataclass
class Served:
    spec: ProjectSpec
    champion: ModelVersion


def project_spec(directory: Path, **sections: Any) -> ProjectSpec:
    directory.mkdir(parents=True, exist_ok=True)
    customers(600, seed=3).to_csv(directory / "customers.csv", index=False)
    raw = {**spec_dict(trials=2), **LOOP, **sections}
    (directory / "shipyard.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return parse_spec((directory / "shipyard.yaml").read_text(), base_dir=directory)


def served(ws: Workspace, directory: Path, **sections: Any) -> Served:
    spec = project_spec(directory, **sections)
    ingest_spec(ws, spec.data, name=spec.dataset_name, base_dir=spec.base_dir)
    model = train_and_register(ws, spec).model
    set_alias(ws, model.ref, "champion")
    create_endpoint(ws, ENDPOINT, "churn@champion")
    return Served(spec, model)


def drifted(rows: int, seed: int = 11) -> pd.DataFrame:
    frame = customers(rows, seed=seed)
    rng = np.random.default_rng(seed)
    frame["tenure"] = (frame["tenure"] * 2.5 + 10).round(1)
    frame["plan"] = rng.choice(["basic", "plus", "pro"], rows, p=[0.1, 0.3, 0.6])
    west = (frame["region"] == "west").to_numpy()
    logit = -1.5 + 3.0 * west + 0.005 * frame["tenure"].to_numpy() + rng.normal(0, 0.4, rows)
    frame[LABEL] = np.where(logit > 0, "yes", "no")
    return frame


def log_traffic(
    ws: Workspace,
    version: ModelVersion,
    frame: pd.DataFrame,
    *,
    at: datetime | None = None,
    prefix: str = "r",
    shadow: bool = False,
    latency_ms: float = 2.0,
) -> list[str]:
    """Answer each row as its own request with `version`; log it; return the request ids."""
    at = at or datetime.now(UTC) - timedelta(minutes=20)
    pipeline = load_model(ws, version.ref).pipeline
    X = frame[FEATURES]
    labels = pipeline.predict(X)
    proba = pipeline.predict_proba(X)
    classes = [str(c) for c in pipeline.classes_]
    ids = [f"{prefix}{i}" for i in range(len(frame))]
    records = X.to_dict("records")
    entries = [
        {
            "request_id": ids[i],
            "endpoint": ENDPOINT,
            "version_id": version.id,
            "at": at + timedelta(milliseconds=i),
            "latency_ms": latency_ms,
            "shadow": shadow,
            "row": 0,
            "inputs": {k: (None if pd.isna(v) else v) for k, v in records[i].items()},
            "outputs": {
                "label": str(labels[i]),
                "probabilities": dict(zip(classes, proba[i].tolist(), strict=True)),
            },
        }
        for i in range(len(frame))
    ]
    with PredictionLog(ws) as log:
        log.append(entries)
    return ids


def label(ws: Workspace, ids: Sequence[str], frame: pd.DataFrame) -> int:
    items = [
        {"request_id": rid, "label": value}
        for rid, value in zip(ids, frame[LABEL].tolist(), strict=True)
    ]
    return record_feedback(ws, ENDPOINT, items).matched
