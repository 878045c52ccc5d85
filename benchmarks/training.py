"""Benchmark: a 20-trial search with `shipyard.train.train` versus the same Optuna study by hand.

The data is scikit-learn's bundled breast-cancer set (569 rows, 30 numeric features, binary
target; no download), written to CSV with an `id` column. The model is one small candidate,
`LogisticRegression` with `C` on a log range (0.001 to 100) and `max_iter=1000`, searched for 20
trials with 3-fold stratified cross-validation of F1, seed fixed. Three jobs:

- hand:      the study written by hand with Optuna and scikit-learn, nothing tracked:
             `pandas.read_csv`, `train_test_split(test_size=0.2, stratify=y)` as
             `shipyard.train.split.holdout` does it, the preprocessing of
             `shipyard.train.preprocess.build_pipeline` (median imputer + scaler in a
             ColumnTransformer), `TPESampler(seed)`, 20 trials of `cross_val_score` with the
             same `StratifiedKFold` and `scoring="f1"`, then the best refit on the training split;
- hand+eval: the same, plus what a careful engineer adds by hand: accuracy, F1 and ROC-AUC of
             the refit model on the test split (`sklearn.metrics`);
- shipyard:  `shipyard.train.train(ws, spec, version, trials=20)` on the same CSV ingested
             (untimed) into a fresh SQLite workspace. Besides the search it reads the stored
             version, records a search run and one child run per trial, refits the best, and
             evaluates it on the held-out split (every metric, confusion matrix, ROC curve,
             calibration, SHAP importance) into a stored report.

Two times per job: the whole job (imports excluded: from reading the data to the refit model,
its test metrics or, for Shipyard, the stored report) and the search alone. Shipyard's search
is `search()` as `train()` calls it (Optuna, the trials and their tracking), timed by wrapping
that function where the trainer looks it up; by hand it is `create_study` + `optimize`. Overhead is
Shipyard / hand - 1. The hand-written jobs run the very same code for the search, so their
search times are pooled into one baseline. The driver checks that every job ran the same study:
the same values of C with the same CV scores, the same held-out rows and the same refit model.

How: every measured job is its own fresh subprocess (imports done before the clock starts;
what `train()` imports lazily, such as SHAP, is part of its time), interleaved
(hand, hand+eval, shipyard) `--repeat` times; the table shows the median and minimum wall
time and the median CPU time (all threads). Every job runs with one BLAS/OpenMP thread
(`--threads`): with a thread per core, L-BFGS on matrices this small spends most of its time in
threads waiting for each other whenever anything else runs on the machine, and the same job
took anywhere from 1 to 9 s. Raw figures, each job's phases and the machine go
to bench-output/training.json. `--profile` adds one cProfile'd `train()` call and writes the
top functions to bench-output/training-profile.txt. Nothing here asserts on timings.

    .venv/bin/python benchmarks/training.py [--trials N] [--repeat K] [--threads T] [--quick]
                                            [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240917
CV = 3
TEST_SIZE = 0.2
TRIALS = 20
AIM = 0.10  # the aim: Shipyard within 10% of the hand-written study
JOBS = ("hand", "hand+eval", "shipyard")
# Both sides get the same thread setting (`--threads`; 0 leaves the libraries' defaults).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
C_RANGE = (0.001, 100.0)
MAX_ITER = 1000
ESTIMATOR = "sklearn.linear_model.LogisticRegression"
PARAM = "LogisticRegression.C"  # the name Shipyard gives the parameter in its Optuna study
SPEC = """\
project: bench-training
data: {{source: {csv}, target: target, id: id}}
train:
  task: classification
  metric: f1
  seed: {seed}
  test_size: {test_size}
  candidates:
    - estimator: {estimator}
      params: {{C: {{low: {low}, high: {high}, log: true}}, max_iter: {max_iter}}}
  search: {{trials: {trials}, cv: {cv}}}
"""


def write_csv(path: Path) -> int:
    """The bundled breast-cancer data as CSV: an integer id, 30 features, the 0/1 target."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    frame.insert(0, "id", range(1, len(frame) + 1))
    tmp = path.with_suffix(".partial")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return len(frame)


# -- the measured jobs (children) ----------------------------------------------------------------


def child_hand(job: str, csv: Path, trials: int) -> dict[str, Any]:
    """The study as an engineer would write it without Shipyard."""
    import optuna
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split

    from shipyard.train.preprocess import FeaturePlan, build_pipeline

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fits: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()

    frame = pd.read_csv(csv)
    features = [c for c in frame.columns if c not in ("id", "target")]
    plan = FeaturePlan(numeric=features, categorical=[])
    train, test = train_test_split(
        frame, test_size=TEST_SIZE, random_state=SEED, stratify=frame["target"]
    )
    X, y = train[features], train["target"]
    folds = StratifiedKFold(n_splits=CV, shuffle=True, random_state=SEED)

    def model(c: float) -> Any:
        estimator = LogisticRegression(C=c, max_iter=MAX_ITER, random_state=SEED)
        return build_pipeline(plan, estimator)

    def objective(trial: optuna.Trial) -> float:
        c = trial.suggest_float(PARAM, *C_RANGE, log=True)
        fit_start = time.perf_counter()
        score = float(cross_val_score(model(c), X, y, cv=folds, scoring="f1").mean())
        fits.append(time.perf_counter() - fit_start)
        return score

    search_start = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED))
    study.optimize(objective, n_trials=trials)
    search_end = time.perf_counter()
    best = model(study.best_params[PARAM]).fit(X, y)
    metrics: dict[str, float] = {}
    if job == "hand+eval":
        X_test, y_test = test[features], test["target"]
        predicted = best.predict(X_test)
        metrics = {
            "accuracy": float(accuracy_score(y_test, predicted)),
            "f1": float(f1_score(y_test, predicted)),
            "roc_auc": float(roc_auc_score(y_test, best.predict_proba(X_test)[:, 1])),
        }
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu

    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "search_s": search_end - search_start,
        "before_search_s": search_start - started,
        "after_search_s": started + seconds - search_end,
        "trial_fit_s": sum(fits),
        "trials": [[t.params[PARAM], t.value] for t in study.trials],
        "best": [study.best_params[PARAM], study.best_value],
        "test_ids": sorted(int(i) for i in test["id"]),
        "coef": [float(v) for v in best[-1].coef_.ravel()],
        "test_metrics": metrics,
    }


def child_shipyard(csv: Path, trials: int, scratch: Path, profile: Path | None) -> dict[str, Any]:
    """`shipyard.train.train` on a fresh workspace; ingest and workspace creation not timed."""
    import tempfile

    from shipyard.core.settings import Settings
    from shipyard.core.spec import parse_spec
    from shipyard.data import ingest
    from shipyard.security import init_workspace
    from shipyard.train import trainer

    text = SPEC.format(
        csv=json.dumps(str(csv)),
        seed=SEED,
        test_size=TEST_SIZE,
        estimator=ESTIMATOR,
        low=C_RANGE[0],
        high=C_RANGE[1],
        max_iter=MAX_ITER,
        trials=trials,
        cv=CV,
    )
    spec = parse_spec(text, source="benchmarks/training.py")
    marks: dict[str, float] = {}
    search = trainer.search

    def timed_search(*args: Any, **kwargs: Any) -> Any:  # trainer looks `search` up at call time
        marks["search_start"] = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            marks["search_end"] = time.perf_counter()

    trainer.search = timed_search
    with tempfile.TemporaryDirectory(dir=scratch, prefix="training-shipyard-") as tmp:
        ws, _token, _secret = init_workspace(Settings.load(home=str(Path(tmp) / "ws")))
        version = ingest(ws, csv, name="bench-training", id="id", target="target").version
        profiler = None
        if profile is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started, cpu = time.perf_counter(), time.process_time()
        result = trainer.train(ws, spec, version, trials=trials)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profiler is not None and profile is not None:
            profiler.disable()
            _write_profile(profiler, profile, seconds)
        ws.close()

    ordered = sorted(result.trials, key=lambda t: t.number)
    best = result.pipeline[-1]
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "search_s": marks["search_end"] - marks["search_start"],
        "before_search_s": marks["search_start"] - started,
        "after_search_s": started + seconds - marks["search_end"],
        "trial_fit_s": sum(t.seconds for t in result.trials),
        "trials": [[t.params["C"], t.score] for t in ordered],
        "best": [result.best.params["C"], result.best.score],
        "test_ids": sorted(int(i) for i in result.split.test["id"]),
        "coef": [float(v) for v in best.coef_.ravel()],
        "test_metrics": dict(result.report.metrics),
        "importance_method": result.report.importance_method,
    }


def _write_profile(profiler: Any, path: Path, seconds: float) -> None:
    import io
    import pstats

    text = io.StringIO()
    text.write(f"cProfile of one shipyard.train.train() call: {seconds:.2f} s under the profiler\n")
    stats = pstats.Stats(profiler, stream=text)
    text.write("\n== Shipyard's own functions, by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(r"/shipyard/", 40)
    for key in ("cumulative", "tottime"):
        text.write(f"\n== top 45 of all functions, by {key} ==\n")
        stats.sort_stats(key).print_stats(45)
    path.write_text(text.getvalue())


def child(job: str, csv: Path, trials: int, scratch: Path, profile: Path | None) -> None:
    """Run one measured job in this (fresh) process and print its figures as JSON."""
    if job == "shipyard":
        figures = child_shipyard(csv, trials, scratch, profile)
    else:
        figures = child_hand(job, csv, trials)
    print(json.dumps(figures))


# -- the driver ----------------------------------------------------------------------------------


def run_child(
    job: str, csv: Path, trials: int, out: Path, threads: int, profile: Path | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    if threads:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    command = [sys.executable, __file__, "--child", job, "--csv", str(csv), "--out", str(out)]
    command += ["--trials", str(trials)]
    if profile is not None:
        command += ["--profile-to", str(profile)]
    # Same working directory for every job: Shipyard records the git commit of the tree.
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"the {job} job failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_same_study(runs: dict[str, list[dict[str, Any]]], trials: int) -> None:
    """Stop unless every job ran the same study: its times would not be comparable."""
    import math

    reference = runs["hand"][0]
    if len(reference["trials"]) != trials:
        sys.exit(f"the hand-written study ran {len(reference['trials'])} trials, not {trials}")

    for job, jobs in runs.items():
        for figures in jobs:
            for key in ("trials", "best", "test_ids", "coef"):
                if not _close(figures[key], reference[key]):
                    sys.exit(
                        f"the {job} job's {key} differ from the hand-written study's: "
                        f"{str(figures[key])[:200]} vs {str(reference[key])[:200]}; the jobs "
                        "no longer run the same study, so their times are not comparable."
                    )
    ship, hand = runs["shipyard"][0]["test_metrics"], runs["hand+eval"][0]["test_metrics"]
    for name, value in hand.items():
        if not math.isclose(ship[name], value, rel_tol=1e-9):
            sys.exit(f"test {name}: Shipyard {ship[name]} but by hand {value}")


def _close(a: Any, b: Any) -> bool:
    """Equal nested lists of numbers, floats to 1e-9 (the jobs round nothing)."""
    import math

    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def summarise(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(j[key] for j in jobs)

    keys = ("seconds", "cpu_s", "search_s", "before_search_s", "after_search_s", "trial_fit_s")
    summary: dict[str, Any] = {key: [j[key] for j in jobs] for key in keys}
    summary.update(
        median_s=median("seconds"),
        min_s=min(j["seconds"] for j in jobs),
        median_cpu_s=median("cpu_s"),
        search_median_s=median("search_s"),
        search_min_s=min(j["search_s"] for j in jobs),
        before_search_median_s=median("before_search_s"),
        after_search_median_s=median("after_search_s"),
        trial_fit_median_s=median("trial_fit_s"),
        best=jobs[0]["best"],
        test_metrics=jobs[0]["test_metrics"],
    )
    if "importance_method" in jobs[0]:
        summary["importance_method"] = jobs[0]["importance_method"]
    return summary


def overheads(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Shipyard / baseline - 1 (median times); the hand search times pooled as one baseline."""
    ship = results["shipyard"]
    pooled = [s for job in ("hand", "hand+eval") for s in results[job]["search_s"]]
    return {
        "hand+eval_vs_hand": results["hand+eval"]["median_s"] / results["hand"]["median_s"] - 1,
        "vs_hand": ship["median_s"] / results["hand"]["median_s"] - 1,
        "vs_hand_eval": ship["median_s"] / results["hand+eval"]["median_s"] - 1,
        "vs_hand_cpu": ship["median_cpu_s"] / results["hand"]["median_cpu_s"] - 1,
        "search_baseline_s": statistics.median(pooled),
        "search": ship["search_median_s"] / statistics.median(pooled) - 1,
        "search_vs_min": ship["search_min_s"] / min(pooled) - 1,
    }


def show(results: dict[str, dict[str, Any]], over: dict[str, Any], sizes: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:+.1%}"

    title = (
        f"{sizes['trials']} trials of LogisticRegression(C), {CV}-fold CV, breast cancer "
        f"({sizes['rows']} rows): Shipyard vs by hand"
    )
    table = Table(title=title)
    headers = (
        "job",
        "median (s)",
        "min (s)",
        "CPU (s)",
        "overhead",
        "search median (s)",
        "search min (s)",
        "search overhead",
    )
    for header in headers:
        table.add_column(header, justify="left" if header == "job" else "right", no_wrap=True)
    for job, r in results.items():
        if job == "shipyard":
            whole = f"{pct(over['vs_hand'])} / {pct(over['vs_hand_eval'])}"
            search = pct(over["search"])
        elif job == "hand+eval":
            whole, search = pct(over["hand+eval_vs_hand"]), "—"
        else:
            whole, search = "—", "—"
        table.add_row(
            job,
            f"{r['median_s']:.2f}",
            f"{r['min_s']:.2f}",
            f"{r['median_cpu_s']:.2f}",
            whole,
            f"{r['search_median_s']:.2f}",
            f"{r['search_min_s']:.2f}",
            search,
        )
    console = Console()
    if console.width < 120:  # not a terminal (make, CI, a pipe): Rich would assume 80 columns
        console = Console(width=120)
    console.print(table)
    ship, hand = results["shipyard"], results["hand"]

    def verdict(*values: float) -> str:
        return "met" if max(values) <= AIM else "NOT met"

    notes = [
        "overhead = Shipyard / hand-written - 1 on median wall times: shipyard's is vs hand / vs "
        "hand+eval; hand+eval's is vs hand (the cost of the test metrics).",
        f"search overhead = Shipyard's search() / the hand-written create_study + optimize "
        f"(both hand jobs pooled: median {over['search_baseline_s']:.2f} s).",
        "hand and hand+eval run the same search: the gap between their search times is the "
        "run-to-run noise.",
        f"aim (within {AIM:.0%}): whole job {verdict(over['vs_hand'], over['vs_hand_eval'])}, "
        f"search only {verdict(over['search'])}.",
        f"Shipyard's phases (median s): before the search {ship['before_search_median_s']:.2f} "
        f"(read the version, split, record the run), search {ship['search_median_s']:.2f} (of "
        f"which the trials' own CV {ship['trial_fit_median_s']:.2f}), after "
        f"{ship['after_search_median_s']:.2f} (refit, evaluate, {ship['importance_method']}, "
        "log).",
        f"by hand (median s): before {hand['before_search_median_s']:.2f}, search "
        f"{hand['search_median_s']:.2f} (CV {hand['trial_fit_median_s']:.2f}), refit "
        f"{hand['after_search_median_s']:.2f}; hand+eval after the search "
        f"{results['hand+eval']['after_search_median_s']:.2f}.",
        f"every job ran the same study: same {sizes['trials']} values of C and CV scores, "
        f"best C = {hand['best'][0]:.4g} (CV F1 {hand['best'][1]:.4f}), same test rows and "
        "refit coefficients.",
    ]
    for note in notes:
        console.print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help=f"trials per search ({TRIALS})")
    parser.add_argument("--repeat", type=int, help="runs per job, interleaved; median shown (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 trials, 1 run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads in every job (1); 0 leaves the libraries' defaults",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one train() call (not in the table)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    trials = args.trials or (5 if args.quick else TRIALS)
    if args.child:
        child(args.child, args.csv, trials, args.out, args.profile_to)
        return
    repeat = args.repeat or (1 if args.quick else 3)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "training-breast-cancer.csv"
    rows = write_csv(csv)

    runs: dict[str, list[dict[str, Any]]] = {job: [] for job in JOBS}
    for i in range(repeat):
        for job in JOBS:
            runs[job].append(run_child(job, csv, trials, out, args.threads))
            figures = runs[job][-1]
            print(
                f"run {i + 1}/{repeat} {job}: {figures['seconds']:.2f} s "
                f"(search {figures['search_s']:.2f} s)",
                file=sys.stderr,
            )
    check_same_study(runs, trials)
    results = {job: summarise(jobs) for job, jobs in runs.items()}
    over = overheads(results)
    sizes = {"rows": rows, "trials": trials, "cv": CV, "repeat": repeat, "threads": args.threads}
    show(results, over, sizes)
    profile = None
    if args.profile:
        profile = out / "training-profile.txt"
        run_child("shipyard", csv, trials, out, args.threads, profile)
        print(f"profile of one train() call: {profile}", file=sys.stderr)

    import optuna
    import sklearn

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": sizes,
        "data": "sklearn.datasets.load_breast_cancer, as CSV with an id column",
        "model": {
            "estimator": ESTIMATOR,
            "C": {"low": C_RANGE[0], "high": C_RANGE[1], "log": True},
            "max_iter": MAX_ITER,
        },
        "seed": SEED,
        "test_size": TEST_SIZE,
        "aim": AIM,
        "overhead": over,
        "cpu_count": os.cpu_count(),
        "load_average_after": os.getloadavg(),  # other work on the machine skews wall times
        "python": sys.version.split()[0],
        "optuna": optuna.__version__,
        "sklearn": sklearn.__version__,
        "profile": None if profile is None else str(profile),
        "jobs": results,
    }
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw figures: {out / 'training.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
