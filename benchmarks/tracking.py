"""Benchmark: experiment tracking, Shipyard versus MLflow's own client, both on SQLite.

Three tasks, each tool on a fresh SQLite database in a temporary directory under bench-output/:

- metric loop: `log_metric("loss", v, step=i)` called one at a time inside a run, 10,000 times.
  Shipyard (`shipyard.start_run(..., workspace=ws)` + `shipyard.log_metric`) only appends to a
  buffer that a background thread writes, so two times are taken: the loop alone, and the loop
  plus `RunLogger.flush()`, after which every point is committed ("until durable"). MLflow
  (`mlflow.start_run()` + `mlflow.log_metric`, tracking URI `sqlite:///<tmp>/mlflow.db`)
  commits each call, so its two times are the same; it is measured on fewer calls (1,000 by
  default, `--mlflow-calls`) because each call costs milliseconds, and both are compared per
  call. MLflow's own asynchronous mode (`synchronous=False`, then `mlflow.flush_async_logging()`)
  is measured too, on the same number of calls, as the closest MLflow has to Shipyard's design.
- runs: 200 runs, each opened, given 20 params (`log_params`) and 10 metrics (`log_metrics`),
  and closed: `start_run` as a context manager on both sides, with what each captures by default
  (Shipyard: git commit and package versions; MLflow: source, user and git tags).
- search: 2,000 runs with 5 params and 5 metrics each, written untimed in the fastest way each
  public API allows (Shipyard: `create_run(capture_env=False)` + one buffered flush + `end_run`;
  MLflow: `MlflowClient.create_run` + `log_batch` + `set_terminated`), the same seeded values on
  both sides; then `metrics.m0 > 0.5` is searched 5 times over all matching runs (Shipyard:
  `search_runs(ws, experiment=..., filter=..., limit=None)`; MLflow:
  `mlflow.search_runs(experiment_ids=[...], filter_string=..., max_results=100_000,
  output_format="list")`, which pages through the results itself). Both return full run records
  with params, tags and latest metrics, and must find the same number of runs.

How: every measured job is its own fresh subprocess; Shipyard's in this project's venv, MLflow's
in a venv of its own (bench-output/mlflow-venv, created on first use with `mlflow-skinny`, which
with SQLAlchemy and Alembic has the SQLite tracking store, and reused after), so MLflow never
becomes a Shipyard dependency. MLflow's telemetry is switched off in its children. Times cover
the measured calls only, not imports, workspace or database creation. The metric loop and runs
tasks are repeated `--repeat` times (interleaved) and the median is shown; the search is timed
over `--search-repeat` calls in one process. The ratio is MLflow / Shipyard: how many times
faster Shipyard is. Raw figures, both tools' versions and the machine go to
bench-output/tracking.json. Nothing here asserts on timings.

Durability is not configured alike: Shipyard opens SQLite in WAL mode with synchronous=NORMAL
(a commit survives a crash of the process; the last commits may be lost on a power cut), MLflow
keeps SQLite's defaults (rollback journal, synchronous=FULL: each commit waits for fsync).

If the MLflow venv cannot be created (no network, say), Shipyard's figures are reported alone.

    .venv/bin/python benchmarks/tracking.py [--quick] [--shipyard-only] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240917
MLFLOW_REQUIREMENTS = ("mlflow-skinny>=3,<4", "sqlalchemy>=2", "alembic>=1.13")
TOOLS = ("shipyard", "mlflow")
TASKS = ("metric_loop", "metric_loop_async", "runs", "search")
FULL = {
    "metric_calls": 10_000,
    "mlflow_calls": 1_000,
    "runs": 200,
    "run_params": 20,
    "run_metrics": 10,
    "search_runs": 2_000,
    "search_params": 5,
    "search_metrics": 5,
    "search_repeat": 5,
    "repeat": 3,
}
QUICK = {
    **FULL,
    "metric_calls": 1_000,
    "mlflow_calls": 200,
    "runs": 20,
    "search_runs": 200,
    "search_repeat": 2,
    "repeat": 1,
}
FILTER = "metrics.m0 > 0.5"
DURABILITY = {
    "shipyard": "SQLite WAL, synchronous=NORMAL (commits survive a process crash)",
    "mlflow": "SQLite defaults: rollback journal, synchronous=FULL (fsync on every commit)",
}


# -- the measured jobs (children) ----------------------------------------------------------------
# Only the standard library is imported at module level: the MLflow child runs this file in a
# venv that has MLflow and not Shipyard, Rich or anything else of this project.


def _search_data(sizes: dict[str, int]) -> list[tuple[dict[str, str], dict[str, float]]]:
    """The same seeded params and metrics for both tools, so both searches find the same runs."""
    rng = random.Random(SEED)
    return [
        (
            {f"p{j}": f"v{rng.randrange(100)}" for j in range(sizes["search_params"])},
            {f"m{j}": rng.random() for j in range(sizes["search_metrics"])},
        )
        for _ in range(sizes["search_runs"])
    ]


def _run_params(sizes: dict[str, int]) -> tuple[dict[str, float], dict[str, float]]:
    params = {f"param_{j}": j * 0.5 for j in range(sizes["run_params"])}
    metrics = {f"metric_{j}": 1.0 / (j + 1) for j in range(sizes["run_metrics"])}
    return params, metrics


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - cpu


def _journal_mode(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def child_shipyard(task: str, sizes: dict[str, int], tmp: Path) -> dict[str, Any]:
    import importlib.metadata

    import shipyard
    from shipyard.core.settings import Settings
    from shipyard.security import init_workspace
    from shipyard.train import RunLogger, create_run, end_run, metric_history, search_runs

    ws, _token, _secret = init_workspace(Settings.load(home=str(tmp / "ws")))
    figures: dict[str, Any] = {}
    if task == "metric_loop":
        n = sizes["metric_calls"]
        with shipyard.start_run(experiment="bench-loop", workspace=ws) as run:
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                shipyard.log_metric("loss", 1.0 / (i + 1), step=i)
            loop = time.perf_counter() - start
            run.logger.flush()  # waits for a background flush in progress, then writes the rest
            durable = time.perf_counter() - start
            cpu = time.process_time() - cpu
            end_start = time.perf_counter()
        figures.update(calls=n, loop_s=loop, durable_s=durable, cpu_s=cpu)
        figures["end_s"] = time.perf_counter() - end_start
        figures["stored"] = len(metric_history(ws, run.id, "loss"))
    elif task == "runs":
        params, metrics = _run_params(sizes)

        def open_runs() -> None:
            for _ in range(sizes["runs"]):
                with shipyard.start_run(experiment="bench-runs", workspace=ws):
                    shipyard.log_params(params)
                    shipyard.log_metrics(metrics)

        _, seconds, cpu = _timed(open_runs)
        stored = search_runs(ws, experiment="bench-runs", limit=None)
        complete = [r for r in stored if len(r.params) == len(params)]
        figures.update(seconds=seconds, cpu_s=cpu, stored=len(complete))
    elif task == "search":
        data = _search_data(sizes)

        def write() -> None:
            for params, metrics in data:
                run_id = create_run(ws, experiment="bench-search", params=params, capture_env=False)
                logger = RunLogger(ws, run_id)
                logger.log_metrics(metrics)
                logger.close()
                end_run(ws, run_id)

        _, setup, _ = _timed(write)
        times, hits = [], set()
        for _ in range(sizes["search_repeat"]):
            found, seconds, _ = _timed(
                lambda: search_runs(ws, experiment="bench-search", filter=FILTER, limit=None)
            )
            times.append(seconds)
            hits.add(len(found))
        figures.update(setup_s=setup, seconds=times, hits=sorted(hits), stored=len(data))
    else:
        raise SystemExit(f"unknown task for shipyard: {task}")
    ws.close()
    figures["journal_mode"] = _journal_mode(tmp / "ws" / "shipyard.db")
    figures["versions"] = {
        name: importlib.metadata.version(name) for name in ("shipyard", "sqlalchemy")
    }
    return figures


def child_mlflow(task: str, sizes: dict[str, int], tmp: Path) -> dict[str, Any]:
    import mlflow
    import sqlalchemy
    from mlflow.entities import Metric, Param

    db = tmp / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = mlflow.MlflowClient()

    def experiment(name: str) -> str:  # artifacts stay in tmp, not in ./mlruns
        exp_id = client.create_experiment(name, artifact_location=(tmp / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id

    figures: dict[str, Any] = {}
    if task in ("metric_loop", "metric_loop_async"):
        synchronous = task == "metric_loop"
        n = sizes["mlflow_calls"]
        experiment("bench-loop")
        with mlflow.start_run() as run:
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=synchronous)
            loop = time.perf_counter() - start
            if not synchronous:
                mlflow.flush_async_logging()
            durable = time.perf_counter() - start
            cpu = time.process_time() - cpu
            end_start = time.perf_counter()
        figures.update(calls=n, loop_s=loop, durable_s=durable, cpu_s=cpu)
        figures["end_s"] = time.perf_counter() - end_start
        figures["stored"] = len(client.get_metric_history(run.info.run_id, "loss"))
    elif task == "runs":
        params, metrics = _run_params(sizes)
        exp_id = experiment("bench-runs")

        def open_runs() -> None:
            for _ in range(sizes["runs"]):
                with mlflow.start_run():
                    mlflow.log_params(params)
                    mlflow.log_metrics(metrics)

        _, seconds, cpu = _timed(open_runs)
        stored = mlflow.search_runs([exp_id], max_results=100_000, output_format="list")
        complete = [r for r in stored if len(r.data.params) == len(params)]
        figures.update(seconds=seconds, cpu_s=cpu, stored=len(complete))
    elif task == "search":
        data = _search_data(sizes)
        exp_id = experiment("bench-search")

        def write() -> None:
            for params, metrics in data:
                run_id = client.create_run(exp_id).info.run_id
                now = int(time.time() * 1000)
                client.log_batch(
                    run_id,
                    metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                    params=[Param(k, v) for k, v in params.items()],
                )
                client.set_terminated(run_id)

        _, setup, _ = _timed(write)
        times, hits = [], set()
        for _ in range(sizes["search_repeat"]):
            found, seconds, _ = _timed(
                lambda: mlflow.search_runs(
                    [exp_id], filter_string=FILTER, max_results=100_000, output_format="list"
                )
            )
            times.append(seconds)
            hits.add(len(found))
        figures.update(setup_s=setup, seconds=times, hits=sorted(hits), stored=len(data))
    else:
        raise SystemExit(f"unknown task for mlflow: {task}")
    figures["journal_mode"] = _journal_mode(db)
    figures["versions"] = {
        "mlflow": mlflow.__version__,
        "distribution": ", ".join(str(d.metadata["Name"]) for d in _mlflow_distributions()),
        "sqlalchemy": sqlalchemy.__version__,
    }
    return figures


def _mlflow_distributions() -> list[Any]:
    import importlib.metadata

    names = {"mlflow", "mlflow-skinny"}
    return [d for d in importlib.metadata.distributions() if d.metadata["Name"] in names]


def child(tool: str, task: str, sizes: dict[str, int], scratch: Path) -> None:
    """Run one measured job in this (fresh) process and print its figures as JSON."""
    import sqlite3

    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"tracking-{tool}-") as tmp:
        measure = child_shipyard if tool == "shipyard" else child_mlflow
        figures = measure(task, sizes, Path(tmp))
    figures["python"] = sys.version.split()[0]
    figures["sqlite"] = sqlite3.sqlite_version
    print(json.dumps(figures))


# -- the driver ----------------------------------------------------------------------------------


def mlflow_python(out: Path) -> tuple[Path | None, str]:
    """MLflow's own venv under `out`, created once and reused; (None, why) if it cannot be."""
    venv = out / "mlflow-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(MLFLOW_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python, f"reused {venv}"
    print(f"creating {venv} with {wanted} (once; reused by later runs) …", file=sys.stderr)
    pip = ["--timeout", "60", "--retries", "2", *MLFLOW_REQUIREMENTS]
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pip],
    ]
    for command in steps:
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            return None, f"{command[0]} could not start: {exc}"
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            return None, f"`{' '.join(command[2:5])} …` failed (exit {proc.returncode}):\n{tail}"
    stamp.write_text(wanted + "\n")
    return python, f"created {venv}"


def run_child(
    python: Path, tool: str, task: str, sizes: dict[str, int], out: Path
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    command = [str(python), __file__, "--child", tool, "--task", task, "--out", str(out)]
    command += ["--sizes", json.dumps(sizes)]
    # Same working directory for both: each captures the git commit of the tree it runs in.
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"the {tool} {task} job failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(task: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the jobs of one tool and task; raw figures kept alongside."""
    first = jobs[0]
    summary: dict[str, Any] = {"jobs": jobs, "versions": first["versions"]}
    summary["journal_mode"] = first["journal_mode"]
    if task.startswith("metric_loop"):
        calls = first["calls"]
        summary["calls"] = calls
        for key in ("loop_s", "durable_s", "end_s", "cpu_s"):
            summary[key] = statistics.median(j[key] for j in jobs)
        summary["loop_us_per_call"] = summary["loop_s"] / calls * 1e6
        summary["durable_us_per_call"] = summary["durable_s"] / calls * 1e6
    elif task == "runs":
        summary["seconds"] = statistics.median(j["seconds"] for j in jobs)
        summary["cpu_s"] = statistics.median(j["cpu_s"] for j in jobs)
    else:
        times = first["seconds"]
        summary.update(seconds=times, median_s=statistics.median(times), min_s=min(times))
        summary["hits"] = first["hits"]
        summary["setup_s"] = first["setup_s"]
    return summary


def check(task: str, tool: str, summary: dict[str, Any], sizes: dict[str, int]) -> None:
    """Stop if a job did not store (or find) what it should have: its time would mean nothing."""
    for job in summary["jobs"]:
        if task.startswith("metric_loop"):
            expected = job["calls"]
        elif task == "runs":
            expected = sizes["runs"]
        else:
            expected = sizes["search_runs"]
        if job["stored"] != expected:
            sys.exit(f"{tool} {task}: stored {job['stored']}, expected {expected}")
        if task == "search" and len(job["hits"]) != 1:
            sys.exit(f"{tool} search found different numbers of runs: {job['hits']}")


def rows(results: dict[str, dict[str, Any]], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """The table's rows: label, unit, each tool's figure (smaller is better) and the ratio."""
    ship, ml = results.get("shipyard", {}), results.get("mlflow", {})

    def figure(tool: dict[str, Any], task: str, key: str, scale: float = 1.0) -> float | None:
        return tool[task][key] * scale if task in tool else None

    n, m = sizes["metric_calls"], sizes["mlflow_calls"]
    calls = f"log_metric ×{n:,}" + (f" (MLflow ×{m:,})" if ml and m != n else "")
    loop_rows = [  # label, figure, MLflow's task (Shipyard's is always metric_loop)
        (f"{calls}: loop (µs/call)", "loop_us_per_call", "metric_loop"),
        (f"{calls}: until durable (µs/call)", "durable_us_per_call", "metric_loop"),
    ]
    if ml:
        loop_rows += [
            ("  MLflow async: loop (µs/call)", "loop_us_per_call", "metric_loop_async"),
            ("  MLflow async: until durable (µs/call)", "durable_us_per_call", "metric_loop_async"),
        ]
    out = [
        {
            "task": label,
            "shipyard": figure(ship, "metric_loop", key),
            "mlflow": figure(ml, ml_task, key),
        }
        for label, key, ml_task in loop_rows
    ]
    runs = f"{sizes['runs']} runs × ({sizes['run_params']} params + {sizes['run_metrics']} metrics)"
    out.append(
        {
            "task": f"{runs} (ms/run)",
            "shipyard": figure(ship, "runs", "seconds", 1000 / sizes["runs"]),
            "mlflow": figure(ml, "runs", "seconds", 1000 / sizes["runs"]),
        }
    )
    repeat = sizes["search_repeat"]
    out.append(
        {
            "task": f'search {sizes["search_runs"]:,} runs "{FILTER}" (ms, median of {repeat})',
            "shipyard": figure(ship, "search", "median_s", 1000),
            "mlflow": figure(ml, "search", "median_s", 1000),
        }
    )
    for row in out:
        both = row["shipyard"] and row["mlflow"]
        row["ratio"] = row["mlflow"] / row["shipyard"] if both else None
    return out


def show(
    table_rows: list[dict[str, Any]], results: dict[str, Any], sizes: dict[str, int], status: str
) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(value: float | None) -> str:
        if value is None:
            return "—"
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"

    table = Table(title="Experiment tracking on SQLite: Shipyard vs MLflow (smaller is better)")
    for header in ("task", "Shipyard", "MLflow", "MLflow / Shipyard"):
        table.add_column(header, justify="left" if header == "task" else "right", no_wrap=True)
    for row in table_rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:,.1f}×"
        table.add_row(row["task"], cell(row["shipyard"]), cell(row["mlflow"]), ratio)
    console = Console()
    if console.width < 110:  # not a terminal (make, CI, a pipe): Rich would assume 80 columns
        console = Console(width=110)
    console.print(table)
    notes = [
        "ratio = MLflow / Shipyard: how many times Shipyard is faster (>1: Shipyard is faster).",
        "until durable = the loop plus the flush after which every point is committed: "
        "Shipyard RunLogger.flush(); MLflow nothing, each call commits.",
    ]
    if "mlflow" in results:
        notes.append(
            "MLflow async = mlflow.log_metric(..., synchronous=False), durable after "
            "mlflow.flush_async_logging(); compared with the same Shipyard figures."
        )
        if sizes["mlflow_calls"] != sizes["metric_calls"]:
            notes.append(
                f"MLflow's log_metric rows are measured on {sizes['mlflow_calls']:,} calls, not "
                f"{sizes['metric_calls']:,} (each call costs milliseconds): compare per call."
            )
    if "search" in results.get("shipyard", {}):
        hits = results["shipyard"]["search"]["hits"][0]
        notes.append(
            f"search: both return full run records (params, tags, metrics); {hits:,} match."
        )
    notes.append(f"durability: Shipyard {DURABILITY['shipyard']};")
    notes.append(f"            MLflow {DURABILITY['mlflow']}.")
    notes.append(f"MLflow: {status}")
    for note in notes:
        console.print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    parser.add_argument("--shipyard-only", action="store_true", help="skip MLflow entirely")
    parser.add_argument("--repeat", type=int, help="jobs per tool for the loop and runs (3)")
    parser.add_argument("--mlflow-calls", type=int, help="MLflow log_metric calls (1,000)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.task, args.sizes, args.out)
        return
    sizes = dict(QUICK if args.quick else FULL)
    if args.repeat:
        sizes["repeat"] = args.repeat
    if args.mlflow_calls:
        sizes["mlflow_calls"] = args.mlflow_calls
    sizes["mlflow_calls"] = min(sizes["mlflow_calls"], sizes["metric_calls"])
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    pythons = {"shipyard": Path(sys.executable)}
    if args.shipyard_only:
        status = "skipped (--shipyard-only)"
    else:
        python, status = mlflow_python(out)
        if python is None:
            status = f"UNAVAILABLE, Shipyard's figures are shown alone. {status}"
            print(f"\nMLflow cannot be measured: {status}\n", file=sys.stderr)
        else:
            pythons["mlflow"] = python

    jobs: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in pythons}
    plan = [(i, task) for i in range(sizes["repeat"]) for task in TASKS if task != "search"]
    plan.append((0, "search"))
    for i, task in plan:
        for tool, python in pythons.items():
            if tool == "shipyard" and task == "metric_loop_async":
                continue  # Shipyard has one (buffered) mode; its figures come from metric_loop
            figures = run_child(python, tool, task, sizes, out)
            jobs[tool].setdefault(task, []).append(figures)
            print(f"{task} {i + 1}: {tool} done", file=sys.stderr)
    results = {
        tool: {task: summarise(task, js) for task, js in by_task.items()}
        for tool, by_task in jobs.items()
    }
    for tool, by_task in results.items():
        for task, summary in by_task.items():
            check(task, tool, summary, sizes)
    if "mlflow" in results:
        ship_hits, ml_hits = (results[t]["search"]["hits"] for t in ("shipyard", "mlflow"))
        if ship_hits != ml_hits:
            sys.exit(f"the searches disagree: Shipyard found {ship_hits}, MLflow {ml_hits}")
    table_rows = rows(results, sizes)
    show(table_rows, results, sizes, status)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": sizes,
        "filter": FILTER,
        "cpu_count": os.cpu_count(),
        "load_average_after": os.getloadavg(),  # other work on the machine skews wall times
        "python": sys.version.split()[0],
        "versions": {tool: by_task["runs"]["versions"] for tool, by_task in results.items()},
        "mlflow_status": status,
        "durability": {tool: DURABILITY[tool] for tool in results},
        "table": table_rows,
        "results": results,
    }
    (out / "tracking.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw figures: {out / 'tracking.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
