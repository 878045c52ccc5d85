"""`shipyard train`, `shipyard runs` and `shipyard models` end to end: a real project in the
test's working directory, real training, real exit codes (through `main()`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_wine
from typer.testing import CliRunner

import shipyard
from projects import FEATURES, customers, write_project
from shipyard.cli.app import main
from shipyard.train import search
from shipyard.train.search import Problem, TrialResult, TrialSpec

UNREACHABLE = "roc_auc >= 0.999"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def sy(tmp_path: Path) -> Any:
    """`sy("train")` runs `shipyard --home <tmp>/ws train` in the project directory (the cwd)."""

    def run(*args: str, columns: int = 200) -> Result:
        code: Any = None
        with CliRunner().isolation(env={"COLUMNS": str(columns)}) as (out, err, _):
            try:
                main(["--home", str(tmp_path / "ws"), *args])
            except SystemExit as exc:
                code = exc.code
            sys.stdout.flush()  # as the interpreter does at exit (`models card` writes raw text)
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        assert isinstance(code, int), f"main() must exit with an int code, got {code!r}"
        return Result(code, stdout, stderr)

    return run


def _ready(sy: Any, tmp_path: Path, **options: Any) -> None:
    """A workspace, a project in the working directory and its data ingested."""
    write_project(tmp_path, **options)
    assert sy("init", "--json").exit_code == 0
    ingested = sy("data", "ingest", "--json")
    assert ingested.exit_code == 0, ingested.stderr


@pytest.fixture
def trained(sy: Any, tmp_path: Path) -> dict[str, Any]:
    """`shipyard train --json` on a fresh project: its output."""
    _ready(sy, tmp_path, gates=["roc_auc >= 0.6"])
    result = sy("train", "--json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


# -- shipyard train -----------------------------------------------------------------------------


def test_train_prints_the_leaderboard_the_gates_and_the_registered_ref(
    sy: Any, tmp_path: Path
) -> None:
    _ready(sy, tmp_path, trials=3, gates=["roc_auc >= 0.6"])

    result = sy("train")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Trained on customers@1 (160 rows)" in out
    assert "3 trials, metric roc_auc" in out
    assert "split: time-ordered on 'signed_at'" in out
    assert f"features (4): {', '.join(FEATURES)}" in out
    assert "Leaderboard (cross-validated roc_auc, best first)" in out
    rows = re.findall(
        r"^ *(\d) +(LogisticRegression|DecisionTreeClassifier) +\w+=\S+ +(0\.\d{4}) ",
        out,
        flags=re.MULTILINE,
    )
    assert sorted(r[0] for r in rows) == ["0", "1", "2"]
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)  # best first
    assert "Held-out metrics" in out
    assert re.search(r"^ *roc_auc +0\.\d{4} *$", out, flags=re.MULTILINE)
    assert "Gates" in out and "roc_auc >= 0.6" in out and "pass" in out
    assert "Registered churn@1 (skops, status candidate)" in out
    assert "Next: shipyard models alias churn@1 champion" in out


def test_train_reads_whole_at_80_columns(sy: Any, tmp_path: Path) -> None:
    _ready(sy, tmp_path, trials=4, gates=["roc_auc >= 0.6"])

    out = sy("train", columns=80).stdout

    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "TRIAL" in line)
    assert header.split() == ["TRIAL", "ESTIMATOR", "PARAMS", "ROC_AUC", "±", "SECONDS"]
    names = re.findall(r"^ *\d +(\S+)", out, flags=re.MULTILINE)
    assert names and set(names) <= {"LogisticRegression", "DecisionTreeClassifier"}  # whole
    stripped = [line.strip() for line in lines]
    assert "Held-out metrics" in stripped  # a title on one line of its own
    assert "Next: shipyard models alias churn@1 champion" in stripped


def test_train_json_has_the_leaderboard_the_model_and_the_gates(
    sy: Any, trained: dict[str, Any]
) -> None:
    assert trained["dataset"] == "customers@1"
    assert trained["metric"] == "roc_auc"
    assert trained["features"] == FEATURES
    assert trained["interrupted"] is False
    assert trained["failed_trials"] == []
    board = trained["leaderboard"]
    assert len(board) == 4
    assert [t["score"] for t in board] == sorted((t["score"] for t in board), reverse=True)
    assert {t["trial"] for t in board} == {0, 1, 2, 3}
    assert all(t["run_id"].startswith("run_") for t in board)
    assert trained["model"]["model"] == "churn"
    assert trained["model"]["version"] == 1
    assert trained["model"]["status"] == "candidate"
    assert trained["model"]["run_id"] == trained["run_id"]
    assert [(g["gate"], g["passed"]) for g in trained["gates"]] == [("roc_auc >= 0.6", True)]
    assert trained["test_metrics"]["roc_auc"] > 0.6


def test_train_before_the_data_is_ingested_exits_3_and_says_how(sy: Any, tmp_path: Path) -> None:
    write_project(tmp_path)
    assert sy("init", "--json").exit_code == 0

    result = sy("train")

    assert result.exit_code == 3
    assert "error: dataset 'customers' does not exist (no datasets are stored yet)." in (
        result.stderr
    )
    assert "Ingest the data first: `shipyard data ingest`" in result.stderr
    assert sy("runs", "ls", "--json").json() == []


def test_train_with_a_bad_estimator_exits_2_and_records_nothing(sy: Any, tmp_path: Path) -> None:
    bad = {"estimator": "sklearn.ensemble.RandomForestClassifer"}
    _ready(sy, tmp_path, candidates=[bad])

    result = sy("train")

    assert result.exit_code == 2
    assert (
        "error: estimator 'sklearn.ensemble.RandomForestClassifer' does not import: "
        "sklearn.ensemble has no 'RandomForestClassifer'." in result.stderr
    )
    as_json = sy("train", "--json")
    assert as_json.exit_code == 2
    assert as_json.json()["error"] == "Invalid"
    assert sy("runs", "ls", "--trials", "--json").json() == []
    assert sy("models", "ls", "--json").json() == []


def test_a_bad_gate_exits_2_before_training(sy: Any, tmp_path: Path) -> None:
    _ready(sy, tmp_path, gates=["roc_auc >>= 0.5"])

    result = sy("train")

    assert result.exit_code == 2
    assert "error: gate 'roc_auc >>= 0.5' is not of the form METRIC OP NUMBER" in result.stderr
    assert sy("runs", "ls", "--trials", "--json").json() == []


def test_ctrl_c_during_train_exits_130_and_leaves_the_run_interrupted(
    sy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready(sy, tmp_path)

    def ctrl_c(problem: Problem, trial: TrialSpec) -> TrialResult:
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "score_trial", ctrl_c)

    result = sy("train")

    assert result.exit_code == 130
    assert "interrupted: the trials that finished are recorded" in result.stderr
    (run,) = sy("runs", "ls", "--json").json()
    assert run["status"] == "interrupted"
    assert run["note"] == "interrupted before any trial finished"
    assert sy("models", "ls", "--json").json() == []


def test_a_model_rejected_by_its_gates_exits_6_and_stays_registered_as_rejected(
    sy: Any, tmp_path: Path
) -> None:
    _ready(sy, tmp_path, trials=2, gates=["roc_auc >= 0.6", UNREACHABLE])

    result = sy("train")

    assert result.exit_code == 6, result.stderr
    assert "Registered churn@1 as REJECTED" in result.stdout  # the full result is still shown
    assert re.search(
        r"error: churn@1 failed 1 of 2 gate\(s\): roc_auc >= 0\.999 \(got 0\.\d+\)\. It is "
        r"registered as rejected and can never be deployed\. .* \(pass --allow-rejected to exit 0 "
        r"anyway\)\.",
        " ".join(result.stderr.split()),
    )
    (model,) = sy("models", "ls", "--json").json()
    assert (model["version"], model["status"]) == (1, "rejected")

    as_json = sy("train", "--json")  # a second version, rejected too: one JSON document
    assert as_json.exit_code == 6
    data = as_json.json()
    assert data["model"]["version"] == 2 and data["model"]["status"] == "rejected"
    assert [g["passed"] for g in data["gates"]] == [True, False]
    assert data["error"]["error"] == "GateFailed"
    assert data["error"]["details"] == {"model": "churn@2", "failed_gates": [UNREACHABLE]}
    runs = sy("runs", "ls", "--json").json()
    assert [r["status"] for r in runs] == ["finished", "finished"]  # training itself succeeded

    allowed = sy("train", "--json", "--allow-rejected")
    assert allowed.exit_code == 0, allowed.stderr
    assert "error" not in allowed.json() and allowed.json()["model"]["status"] == "rejected"


def test_train_says_which_dataset_version_it_uses_and_why(sy: Any, tmp_path: Path) -> None:
    _ready(sy, tmp_path, trials=1)
    again = customers(rows=220, seed=1)
    again.to_csv(tmp_path / "customers.csv", index=False)
    assert sy("data", "ingest", "--json").exit_code == 0

    result = sy("train", "--json")

    assert result.exit_code == 0, result.stderr
    reason = (
        "customers@2, the newest version of 'customers' (data.name in shipyard.yaml; "
        "--dataset customers@N picks another)"
    )
    assert f"training on {reason}" in " ".join(result.stderr.split())
    assert result.json()["dataset"] == "customers@2"
    assert result.json()["dataset_reason"] == reason

    pinned = sy("train", "--json", "--dataset", "customers@1")
    assert pinned.exit_code == 0, pinned.stderr
    assert pinned.json()["dataset"] == "customers@1"
    assert pinned.json()["dataset_reason"] == "customers@1, as --dataset says"


def test_a_project_not_named_like_its_dataset_is_told_about_data_name_and_dataset(
    sy: Any, tmp_path: Path
) -> None:
    _ready(sy, tmp_path, trials=1)  # stores dataset 'customers'
    spec = yaml.safe_load((tmp_path / "shipyard.yaml").read_text())
    del spec["data"]["name"]  # now the dataset is looked up by the project's name, 'churn'
    (tmp_path / "shipyard.yaml").write_text(yaml.safe_dump(spec))

    result = sy("train")

    assert result.exit_code == 3
    assert (
        "error: dataset 'churn' does not exist (stored datasets: customers): shipyard.yaml sets "
        "no data.name, so the dataset is the one named after the project ('churn'). Set "
        "data.name: customers in shipyard.yaml, or pass --dataset customers; or ingest this "
        "project's data first: `shipyard data ingest`."
    ) in " ".join(result.stderr.split())
    assert sy("train", "--dataset", "customers", "--json").exit_code == 0


# -- shipyard runs ------------------------------------------------------------------------------


def test_runs_ls_show_and_compare(sy: Any, tmp_path: Path, trained: dict[str, Any]) -> None:
    run_id = trained["run_id"]
    trial_ids = [t["run_id"] for t in trained["leaderboard"]]

    listed = sy("runs", "ls")
    assert listed.exit_code == 0, listed.stderr
    assert run_id in listed.stdout and "finished" in listed.stdout
    assert "ROC AUC" in listed.stdout  # the primary metric's columns: TEST ROC AUC, CV ROC AUC
    assert not any(t in listed.stdout for t in trial_ids)  # trials only with --trials
    assert [r["id"] for r in sy("runs", "ls", "--json").json()] == [run_id]
    with_trials = {r["id"] for r in sy("runs", "ls", "--trials", "--json").json()}
    assert with_trials == {run_id, *trial_ids}
    best = sy("runs", "ls", "--trials", "--order-by", "metrics.cv_roc_auc desc", "--json")
    # The best trial, tied with the search run (which records the best trial's score).
    assert {r["id"] for r in best.json()[:2]} == {trial_ids[0], run_id}

    shown = sy("runs", "show", run_id)
    assert shown.exit_code == 0, shown.stderr
    assert f"{run_id}  churn / train customers@1  status finished" in shown.stdout
    assert "best.estimator" in shown.stdout
    assert "test_roc_auc" in shown.stdout
    assert "evaluation.json" in shown.stdout
    assert "4 child runs (trials)" in shown.stdout
    as_json = sy("runs", "show", run_id, "--json").json()
    assert as_json["run"]["params"]["metric"] == "roc_auc"
    assert sorted(as_json["children"]) == sorted(trial_ids)

    plot = tmp_path / "compare.png"
    compared = sy("runs", "compare", trial_ids[0], trial_ids[1], "--plot", str(plot))
    assert compared.exit_code == 0, compared.stderr
    assert "Params that differ" in compared.stdout
    assert re.search(r"\nC\s", compared.stdout) and "cv_roc_auc" in compared.stdout
    assert f"metric histories: {plot}" in compared.stdout
    assert plot.read_bytes()[:8] == PNG

    missing = sy("runs", "show", "run_nope")
    assert missing.exit_code == 3
    assert "run 'run_nope' does not exist; `shipyard runs ls` lists runs." in missing.stderr


# -- shipyard models ----------------------------------------------------------------------------


def test_models_ls_show_alias_and_card(sy: Any, tmp_path: Path, trained: dict[str, Any]) -> None:
    listed = sy("models", "ls")
    assert listed.exit_code == 0, listed.stderr
    assert "churn@1" in listed.stdout and "candidate" in listed.stdout
    assert [v["version"] for v in sy("models", "ls", "--json").json()] == [1]

    shown = sy("models", "show", "churn@1")
    assert shown.exit_code == 0, shown.stderr
    for column in FEATURES:
        assert column in shown.stdout
    assert "output: class ['no', 'yes']" in shown.stdout
    assert "roc_auc >= 0.6" in shown.stdout
    best = trained["leaderboard"][0]
    assert f"estimator {best['estimator']}" in shown.stdout
    (name, value) = next(iter(best["params"].items()))
    shown_value = f"{value:.4g}" if isinstance(value, float) else str(value)
    assert f"hyperparameters: {name}={shown_value}" in shown.stdout
    as_json = sy("models", "show", "churn@1", "--json").json()
    assert as_json["estimator"] == best["estimator"]
    assert as_json["hyperparameters"] == best["params"]

    aliased = sy("models", "alias", "churn@1", "champion")
    assert aliased.exit_code == 0, aliased.stderr
    assert "churn@champion → churn@1" in aliased.stdout
    assert sy("models", "show", "churn@champion", "--json").json()["aliases"] == ["champion"]

    html, report = tmp_path / "card.html", tmp_path / "report.html"
    card = sy("models", "card", "churn@champion", "--html", str(html), "--report", str(report))
    assert card.exit_code == 0, card.stderr
    assert card.stdout.startswith("# Model card: churn (churn@1)")
    escaped = best["estimator"].replace("_", "\\_")  # Markdown-escaped
    assert f"| estimator | {escaped} |" in card.stdout
    assert "customers@1" in card.stdout
    assert f"wrote {html}" in card.stderr and f"wrote {report}" in card.stderr
    card_html = html.read_text()
    assert card_html.startswith("<!DOCTYPE html>") and "churn@1" in card_html
    report_html = report.read_text()
    assert report_html.startswith("<!DOCTYPE html>")
    assert report_html.count('<img src="data:image/png;base64,') >= 2

    unknown = sy("models", "show", "churn@7")
    assert unknown.exit_code == 3
    assert "churn has versions 1 to 1" in unknown.stderr


def test_aliasing_a_rejected_model_as_champion_exits_4_naming_the_gate(
    sy: Any, tmp_path: Path
) -> None:
    _ready(sy, tmp_path, trials=2, gates=[UNREACHABLE])

    trained = sy("train", "--allow-rejected")
    assert trained.exit_code == 0, trained.stderr
    assert "FAIL" in trained.stdout
    assert "Registered churn@1 as REJECTED: it failed 1 gate(s)" in trained.stdout

    result = sy("models", "alias", "churn@1", "champion")

    assert result.exit_code == 4
    assert (
        "error: churn@1 cannot become champion: it was rejected because it failed its gates: "
        "roc_auc >= 0.999 (got 0." in result.stderr
    )
    assert "rejected" in sy("models", "ls").stdout
    assert sy("models", "show", "churn@1", "--json").json()["aliases"] == []


# -- clustering ---------------------------------------------------------------------------------


def test_clustering_trains_registers_and_predicts_cluster_ids(sy: Any, tmp_path: Path) -> None:
    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.insert(0, "wine_id", range(1, len(frame) + 1))
    frame.to_csv(tmp_path / "wine.csv", index=False)
    spec = {
        "project": "cellar",
        "data": {"source": "wine.csv", "name": "wine", "id": "wine_id"},
        "train": {
            "task": "clustering",
            "metric": "silhouette",
            "candidates": [
                {"estimator": "sklearn.cluster.KMeans", "params": {"n_clusters": [2, 3, 4]}}
            ],
            "search": {"trials": 3, "cv": 3},
        },
        "gates": ["silhouette >= 0.1"],
    }
    (tmp_path / "shipyard.yaml").write_text(yaml.safe_dump(spec))
    assert sy("init", "--json").exit_code == 0
    assert sy("data", "ingest", "--json").exit_code == 0

    trained = sy("train", "--json")

    assert trained.exit_code == 0, trained.stderr
    result = trained.json()
    assert result["metric"] == "silhouette"
    assert set(result["test_metrics"]) == {"silhouette", "calinski_harabasz", "davies_bouldin"}
    assert result["model"]["task"] == "clustering"
    assert result["model"]["signature"]["output"] == "cluster"
    k = result["leaderboard"][0]["params"]["n_clusters"]

    frame.head(25).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "clusters.csv"
    scored = sy("predict", "new.csv", "--model", "cellar@1", "--out", str(out), "--keep", "wine_id")

    assert scored.exit_code == 0, scored.stderr
    clusters = pd.read_csv(out)
    assert list(clusters["wine_id"]) == list(range(1, 26))
    assert set(clusters["prediction"]) <= set(range(k))
    assert pd.api.types.is_integer_dtype(clusters["prediction"])


# -- the project's own estimator, and failures after training -----------------------------------

OWN_MODULE = '''"""The project's own estimators."""
from sklearn.linear_model import LogisticRegression

from shrinkage import strength


class Logistic(LogisticRegression):
    """A logistic regression whose C goes through the project's helper module."""

    def fit(self, X, y, sample_weight=None):
        self.strength_ = strength(self.C)
        return super().fit(X, y, sample_weight)
'''


def test_an_estimator_next_to_shipyard_yaml_trains_and_predicts_without_pythonpath(
    tmp_path: Path,
) -> None:
    """In real processes: the project directory is not on the interpreter's path (-P, and
    PYTHONPATH holds only Shipyard's source), and predicting happens elsewhere, after the
    module is gone, from the code the bundle carries."""
    project = tmp_path / "project"
    own = {"estimator": "ownmodels.Logistic", "params": {"C": [0.5, 2.0]}}
    write_project(project, candidates=[own], trials=2, cv=2, gates=["roc_auc >= 0.6"])
    (project / "ownmodels.py").write_text(OWN_MODULE)
    (project / "shrinkage.py").write_text("def strength(c):\n    return 1.0 / c\n")
    src = Path(shipyard.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env |= {"PYTHONPATH": str(src), "COLUMNS": "100"}

    def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-P", "-c", "from shipyard.cli.app import main; main()"]
        home = ["--home", str(tmp_path / "ws")]
        return subprocess.run(
            [*command, *home, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )

    assert cli("init", "--json", cwd=project).returncode == 0
    assert cli("data", "ingest", "--json", cwd=project).returncode == 0
    trained = cli("train", "--json", cwd=project)
    assert trained.returncode == 0, trained.stderr
    model = json.loads(trained.stdout)["model"]
    assert (model["flavor"], model["status"]) == ("pickle", "candidate")

    (project / "ownmodels.py").unlink()  # serving must not depend on the project's files
    (project / "shrinkage.py").unlink()
    customers().head(10).to_csv(tmp_path / "rows.csv", index=False)
    scored = cli("predict", "rows.csv", "--model", "churn@1", "--out", "out.csv", cwd=tmp_path)

    assert scored.returncode == 0, scored.stderr
    assert set(pd.read_csv(tmp_path / "out.csv")["prediction"]) <= {"no", "yes"}


UNSAVEABLE = '''from sklearn.linear_model import LogisticRegression


class Logistic(LogisticRegression):
    """Keeps a lambda after fitting: neither skops nor pickle can store it."""

    def fit(self, X, y, sample_weight=None):
        self.squash_ = lambda v: v
        return super().fit(X, y, sample_weight)
'''


def test_a_train_that_fails_after_the_search_ends_its_run_failed_and_registers_nothing(
    sy: Any, tmp_path: Path
) -> None:
    module = f"unsaveable_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(UNSAVEABLE)
    _ready(sy, tmp_path, candidates=[{"estimator": f"{module}.Logistic"}], trials=1)
    store = tmp_path / "ws" / "artifacts"
    before = {p.name for p in store.rglob("*") if p.is_file()}

    result = sy("train")

    assert result.exit_code == 2
    assert "the model (" in result.stderr and "cannot be saved" in result.stderr
    (run,) = sy("runs", "ls", "--json").json()
    assert run["status"] == "failed"  # not `running`, not `finished` with no model
    assert run["note"].startswith("registration failed: Invalid: the model (")
    assert sy("models", "ls", "--json").json() == []
    # The only new blob is the run's own evaluation.json, which the (failed) run records.
    new = {p.name for p in store.rglob("*") if p.is_file()} - before
    assert new == {a["digest"] for a in run["artifacts"]}
