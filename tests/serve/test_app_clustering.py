"""A clustering model (issue 17 #10) served over real HTTP: the answer is each row's cluster id,
the same the registered pipeline gives, and rows carrying the data set's id are accepted."""

from __future__ import annotations

from pathlib import Path

import yaml
from app_harness import records, running, tokens_for
from sklearn.datasets import load_wine

from shipyard.core.settings import Settings
from shipyard.core.spec import parse_spec
from shipyard.data import ingest_spec
from shipyard.loop.pipeline import train_and_register
from shipyard.registry import load_model
from shipyard.serve.endpoints import create_endpoint
from shipyard.store.workspace import Workspace


def test_a_clustering_endpoint_answers_each_rows_cluster_id(
    workspace: Workspace, settings: Settings, tmp_path: Path
) -> None:
    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    frame.insert(0, "wine_id", range(1, len(frame) + 1))
    frame.to_csv(tmp_path / "wine.csv", index=False)
    spec = parse_spec(
        yaml.safe_dump(
            {
                "project": "wines",
                "data": {"source": "wine.csv", "name": "wines", "id": "wine_id"},
                "train": {
                    "task": "clustering",
                    "metric": "silhouette",
                    "candidates": [
                        {"estimator": "sklearn.cluster.KMeans", "params": {"n_clusters": 3}}
                    ],
                    "search": {"trials": 1, "cv": 2},
                },
            }
        ),
        base_dir=tmp_path,
    )
    ingest_spec(workspace, spec.data, name="wines", base_dir=tmp_path)
    outcome = train_and_register(workspace, spec)
    create_endpoint(workspace, "wines", outcome.model.ref)
    rows = frame.sample(n=20, random_state=0)
    expected = load_model(workspace, outcome.model.ref).predict(rows.drop(columns="wine_id"))

    with (
        running(settings, tokens_for(workspace)) as server,
        server.client("predictor") as client,
    ):
        answer = client.post("/v1/endpoints/wines/predict", json={"rows": records(rows)})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"] == [int(c) for c in expected]
    assert set(body["predictions"]) <= {0, 1, 2}
    assert body["ids"] == [str(i) for i in rows["wine_id"]]
    assert "probabilities" not in body
