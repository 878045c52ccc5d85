"""Small real training projects for the train, loop and CLI suites.

`customers()` is a churn table with every kind of column the trainer handles: an id, numbers
(one with gaps), categories, a sensitive column, a time column and a yes/no label that depends
on `tenure` and `plan` with noise (so a model is good but never perfect). `write_project()` puts
it in a directory as customers.csv next to a shipyard.yaml built from keyword options;
`ingest_project()` ingests it through `shipyard.data`.

Importable from every suite because the root conftest puts tests/ on sys.path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from shipyard.core.records import DatasetVersion
from shipyard.core.spec import ProjectSpec, parse_spec
from shipyard.data import ingest_spec
from shipyard.store.workspace import Workspace

LABEL = "churned"
TIME = "signed_at"
SENSITIVE = "sex"
FEATURES = ["tenure", "spend", "plan", "region"]  # numeric first, then categorical

LOGISTIC: dict[str, Any] = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "params": {"C": {"low": 0.01, "high": 10.0, "log": True}},
}
TREE: dict[str, Any] = {
    "estimator": "sklearn.tree.DecisionTreeClassifier",
    "params": {"max_depth": {"low": 2, "high": 5}},
}


def customers(
    rows: int = 200, *, seed: int = 0, labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """The churn table, rows shuffled out of time order; `labels` overrides the label column."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows).round(1)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    logit = 1.2 - 0.08 * tenure + 1.3 * (plan == "basic") + rng.normal(0, 0.9, rows)
    spend = (20 + 15 * (plan != "basic") + rng.normal(0, 5, rows)).round(2)
    spend[rng.random(rows) < 0.05] = np.nan
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1, rows + 1, dtype=np.int64),
            "tenure": tenure,
            "spend": spend,
            "plan": plan,
            "region": rng.choice(["north", "south", "east", "west"], rows),
            SENSITIVE: rng.choice(["f", "m"], rows),
            TIME: pd.date_range("2024-01-01", periods=rows, freq="D"),
            LABEL: np.where(logit > 0, "yes", "no") if labels is None else list(labels),
        }
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def spec_dict(
    *,
    project: str = "churn",
    dataset: str = "customers",
    time: bool = True,
    target: str | None = LABEL,
    metric: str | None = "roc_auc",
    candidates: Sequence[dict[str, Any]] = (LOGISTIC, TREE),
    trials: int = 4,
    cv: int = 3,
    parallel: int = 1,
    seed: int = 7,
    gates: Sequence[str | dict[str, str]] = (),
) -> dict[str, Any]:
    """The shipyard.yaml of a churn project, as the mapping YAML would load to."""
    data: dict[str, Any] = {
        "source": "customers.csv",
        "name": dataset,
        "id": "customer_id",
        "sensitive": [SENSITIVE],
    }
    if target:
        data["target"] = target
    if time:
        data["time"] = TIME
    train: dict[str, Any] = {
        "task": "classification",
        "candidates": list(candidates),
        "search": {"trials": trials, "cv": cv, "parallel": parallel},
        "seed": seed,
    }
    if metric:
        train["metric"] = metric
    return {"project": project, "data": data, "train": train, "gates": list(gates)}


@dataclass(frozen=True)
class Project:
    dir: Path
    spec_file: Path

    @property
    def spec(self) -> ProjectSpec:
        return parse_spec(self.spec_file.read_text(), base_dir=self.dir)


def write_project(directory: Path, frame: pd.DataFrame | None = None, **options: Any) -> Project:
    """customers.csv and shipyard.yaml (from `spec_dict(**options)`) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (customers() if frame is None else frame).to_csv(directory / "customers.csv", index=False)
    spec_file = directory / "shipyard.yaml"
    spec_file.write_text(yaml.safe_dump(spec_dict(**options), sort_keys=False))
    return Project(directory, spec_file)


def ingest_project(ws: Workspace, spec: ProjectSpec) -> DatasetVersion:
    """Ingest what the spec's data: section declares, as `shipyard data ingest` does."""
    return ingest_spec(ws, spec.data, name=spec.dataset_name, base_dir=spec.base_dir).version
