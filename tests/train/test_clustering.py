"""`task: clustering` through `train()`: no target, CV scored by a clustering metric (the
direction each metric is better in), the refit model evaluated on held-out rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_iris

from shipyard.core.errors import Invalid
from shipyard.core.records import DatasetVersion, RunStatus
from shipyard.core.spec import ProjectSpec, parse_spec
from shipyard.data import ingest_spec
from shipyard.store.workspace import Workspace
from shipyard.train import check_spec, get_run, train

KMEANS = {"estimator": "sklearn.cluster.KMeans", "params": {"n_clusters": [2, 3, 6], "n_init": 3}}


def _iris_project(
    ws: Workspace, tmp_path: Path, **train: object
) -> tuple[ProjectSpec, DatasetVersion]:
    """Iris measurements only (the species is not given: nothing to learn from but the shape)."""
    frame = load_iris(as_frame=True).frame.drop(columns="target")
    frame.insert(0, "flower_id", range(1, len(frame) + 1))
    frame.to_csv(tmp_path / "iris.csv", index=False)
    spec_text = yaml.safe_dump(
        {
            "project": "iris-groups",
            "data": {"source": "iris.csv", "name": "iris", "id": "flower_id"},
            "train": {
                "task": "clustering",
                "candidates": [KMEANS],
                "search": {"trials": 4, "cv": 3},
                **train,
            },
        }
    )
    spec = parse_spec(spec_text, base_dir=tmp_path)
    return spec, ingest_spec(ws, spec.data, name="iris", base_dir=tmp_path).version


@pytest.mark.parametrize(("metric", "higher"), [("silhouette", True), ("davies_bouldin", False)])
def test_clustering_trains_on_features_alone_scored_by_its_metric(
    workspace: Workspace, tmp_path: Path, metric: str, higher: bool
) -> None:
    spec, version = _iris_project(workspace, tmp_path, metric=metric)

    result = train(workspace, spec, version)

    assert result.target is None
    assert result.plan.features == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    scores = [t.score for t in result.leaderboard]
    assert scores == sorted(scores, reverse=higher)  # davies_bouldin: 0 is best
    assert result.best is result.leaderboard[0]
    assert set(result.report.metrics) == {"silhouette", "calinski_harabasz", "davies_bouldin"}
    assert 0 < result.report.metrics["silhouette"] < 1
    clusters = result.pipeline.predict(result.split.test[result.plan.features])
    assert set(clusters) <= set(range(result.best.params["n_clusters"]))
    assert result.report.cluster_sizes is not None
    assert sum(result.report.cluster_sizes.values()) == len(result.split.test) == 30
    run = get_run(workspace, result.run_id)
    assert run.status is RunStatus.finished
    assert run.metrics[f"cv_{metric}"] == pytest.approx(result.best.score)


def test_clustering_refuses_a_classification_metric_and_a_clusterer_without_predict(
    workspace: Workspace, tmp_path: Path
) -> None:
    spec, _ = _iris_project(workspace, tmp_path, metric="f1")
    with pytest.raises(
        Invalid,
        match=r"^metric 'f1' does not exist for clustering; choose one of silhouette, "
        r"calinski_harabasz, davies_bouldin\.$",
    ):
        check_spec(spec)
    spec, _ = _iris_project(
        workspace,
        tmp_path,
        candidates=[{"estimator": "sklearn.cluster.DBSCAN"}],
    )
    with pytest.raises(Invalid, match=r"sklearn\.cluster\.DBSCAN has no predict\(\)"):
        check_spec(spec)


def test_a_declared_target_is_left_out_of_a_clustering(
    workspace: Workspace, tmp_path: Path
) -> None:
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame.to_csv(tmp_path / "iris.csv", index=False)
    spec = parse_spec(
        yaml.safe_dump(
            {
                "project": "iris-groups",
                "data": {"source": "iris.csv", "name": "iris", "target": "species"},
                "train": {"task": "clustering", "candidates": [KMEANS], "search": {"trials": 2}},
            }
        ),
        base_dir=tmp_path,
    )
    version = ingest_spec(workspace, spec.data, name="iris", base_dir=tmp_path).version

    result = train(workspace, spec, version)

    assert "species" not in result.plan.features
    assert result.plan.excluded["species"] == "role target"
    rows = result.split.test.drop(columns="species")  # served rows carry no species
    assert len(result.pipeline.predict(rows[result.plan.features])) == len(rows)
