"""Benchmark: remote experiment tracking over HTTP, Shipyard's server versus MLflow's, on SQLite.

Two servers on loopback, started by this script on free ports and stopped at the end:
`shipyard serve` on a fresh workspace (one process, `--rate 0` so the per-token limit of
1,000 requests a second never answers 429 to the setup), called with an admin token from
`init_workspace`; and `mlflow server --backend-store-uri sqlite:///…` with its default
workers. Each client talks to its own server from a fresh subprocess per measured job.

- metric loop: `log_metric("loss", v, step=i)` called one at a time inside a run, 10,000 times.
  Shipyard (`shipyard.start_run()` + `shipyard.log_metric` with SHIPYARD_URL/SHIPYARD_TOKEN
  set) appends to a buffer that a thread sends once a second, so two times are taken: the loop
  alone, and the loop plus `run.flush()`, after which the server has acknowledged (committed)
  every point. MLflow (`mlflow.start_run()` + `mlflow.log_metric`, MLFLOW_TRACKING_URI=http://…)
  makes one HTTP call per point, so its two times are the same; it is measured on fewer calls
  (300 by default, `--mlflow-calls`), and both are compared per call. MLflow's asynchronous mode
  (`synchronous=False`, then `mlflow.flush_async_logging()`) is measured on as many calls.
- runs: 200 runs, each opened, given 20 params and 10 metrics (`log_params`, `log_metrics`) and
  closed, `start_run` as a context manager on both sides (what each sends by default).
- search: 2,000 runs with 5 params and 5 metrics each, written untimed straight into each
  server's database (Shipyard: `create_run(capture_env=False)` + `RunLogger` + `end_run` on the
  served workspace; MLflow: `MlflowClient` on `sqlite:///` the server's file, `create_run` +
  `log_batch` + `set_terminated`), the same seeded values on both sides; then `metrics.m0 > 0.5`
  is searched over HTTP 5 times, every page of the result (Shipyard: `Client.runs.search(...)
  .pages(limit=500)`, the server's largest page; MLflow: `mlflow.search_runs(...,
  max_results=100_000, output_format="list")`, pages of 1,000). Both must find the same runs.
- list (Shipyard only): 10,000 runs written as for the search, then listed one page at a time,
  `GET /api/v1/runs?experiment=…&limit=100&cursor=…` with httpx, 3 times over; each request's
  latency (sent until the body is read) gives p50 and p99.

Medians over `--repeat` interleaved jobs for the loop and runs. The ratio is MLflow / Shipyard.
Raw figures, versions and the machine go to bench-output/remote_tracking.json. MLflow runs in a
venv of its own (bench-output/mlflow-server-venv: full `mlflow`, whose server mlflow-skinny
lacks), created on first use; its telemetry is off. If it cannot be made, Shipyard's figures
are reported alone. Nothing here asserts on timings.

    .venv/bin/python benchmarks/remote_tracking.py [--quick] [--shipyard-only] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking import FILTER, _run_params, _search_data, _timed  # stdlib only, like this file

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_REQUIREMENTS = ("mlflow>=3,<4",)
TOOLS = ("shipyard", "mlflow")
TASKS = ("metric_loop", "metric_loop_async", "runs")
FULL = {
    "metric_calls": 10_000,
    "mlflow_calls": 300,
    "runs": 200,
    "run_params": 20,
    "run_metrics": 10,
    "search_runs": 2_000,
    "search_params": 5,
    "search_metrics": 5,
    "search_repeat": 5,
    "list_runs": 10_000,
    "list_page": 100,
    "list_passes": 3,
    "repeat": 3,
}
QUICK = {
    **FULL,
    "metric_calls": 1_000,
    "mlflow_calls": 30,
    "runs": 5,
    "search_runs": 100,
    "search_repeat": 2,
    "list_runs": 300,
    "list_passes": 1,
    "repeat": 1,
}
STARTUP_S = 120  # MLflow's server takes a while to import and migrate its database
STOP_S = 15


# -- the measured jobs (children) ----------------------------------------------------------------
# Only the standard library is imported at module level: the MLflow child runs this file in a
# venv that has MLflow and not Shipyard, Rich or anything else of this project.


def child_shipyard(task: str, sizes: dict[str, int], server: dict[str, str]) -> dict[str, Any]:
    import importlib.metadata

    import shipyard
    from shipyard.client import Client
    from shipyard.client.remote import RemoteRun

    os.environ["SHIPYARD_URL"], os.environ["SHIPYARD_TOKEN"] = server["url"], server["token"]
    client = Client(server["url"], server["token"])
    experiment = f"{task}-{server['job']}"
    figures: dict[str, Any] = {}
    if task == "metric_loop":
        n = sizes["metric_calls"]
        with shipyard.start_run(experiment=experiment) as run:
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                shipyard.log_metric("loss", 1.0 / (i + 1), step=i)
            loop = time.perf_counter() - start
            assert isinstance(run, RemoteRun), "SHIPYARD_URL is set: the run is on the server"
            run.flush()  # sends what is buffered; returns once the server answered 2xx
            acked = time.perf_counter() - start
            cpu = time.process_time() - cpu
            end_start = time.perf_counter()
        figures.update(calls=n, loop_s=loop, durable_s=acked, cpu_s=cpu)
        figures["end_s"] = time.perf_counter() - end_start
        history = client.runs.metric_history(run.id, "loss")
        figures["stored"] = sum(len(p.items) for p in history.pages(limit=500))
    elif task == "runs":
        params, metrics = _run_params(sizes)

        def open_runs() -> None:
            for _ in range(sizes["runs"]):
                with shipyard.start_run(experiment=experiment):
                    shipyard.log_params(params)
                    shipyard.log_metrics(metrics)

        _, seconds, cpu = _timed(open_runs)
        stored = list(client.runs.search(experiment=experiment))
        complete = [r for r in stored if len(r.params) == len(params)]
        figures.update(seconds=seconds, cpu_s=cpu, stored=len(complete))
    elif task == "search":
        setup = _shipyard_write(server["home"], "bench-search", _search_data(sizes))
        times, hits = [], set()
        for _ in range(sizes["search_repeat"]):
            found, seconds, _ = _timed(
                lambda: [
                    run
                    for page in client.runs.search(experiment="bench-search", filter=FILTER).pages(
                        limit=500
                    )
                    for run in page.items
                ]
            )
            times.append(seconds)
            hits.add(len(found))
        figures.update(setup_s=setup, seconds=times, hits=sorted(hits), stored=sizes["search_runs"])
    elif task == "list":
        figures.update(_shipyard_list(server, sizes))
    else:
        raise SystemExit(f"unknown task for shipyard: {task}")
    client.close()
    figures["versions"] = {name: importlib.metadata.version(name) for name in ("shipyard", "httpx")}
    return figures


def _shipyard_write(home: str, experiment: str, data: list[Any]) -> float:
    """Runs written straight into the served workspace (untimed setup); returns the seconds."""
    from shipyard.core.settings import Settings
    from shipyard.store.workspace import Workspace
    from shipyard.train import RunLogger, create_run, end_run

    ws = Workspace.open(Settings.load(home=home))

    def write() -> None:
        for params, metrics in data:
            run_id = create_run(ws, experiment=experiment, params=params, capture_env=False)
            if metrics:
                logger = RunLogger(ws, run_id)
                logger.log_metrics(metrics)
                logger.close()
            end_run(ws, run_id)

    _, seconds, _ = _timed(write)
    ws.close()
    return seconds


def _shipyard_list(server: dict[str, str], sizes: dict[str, int]) -> dict[str, Any]:
    """Every page of `list_runs` runs, `list_passes` times; each request's latency."""
    import httpx

    n = sizes["list_runs"]
    setup = _shipyard_write(server["home"], "bench-list", [({"i": i}, {}) for i in range(n)])
    headers = {"Authorization": f"Bearer {server['token']}"}
    latencies: list[float] = []
    passes: list[dict[str, Any]] = []
    with httpx.Client(base_url=server["url"], headers=headers, timeout=60) as http:
        for _ in range(sizes["list_passes"]):
            cursor, seen, pages, start = None, 0, [], time.perf_counter()
            while True:
                query: dict[str, Any] = {"experiment": "bench-list", "limit": sizes["list_page"]}
                if cursor:
                    query["cursor"] = cursor
                sent = time.perf_counter()
                response = http.get("/api/v1/runs", params=query)
                response.read()
                pages.append(time.perf_counter() - sent)
                response.raise_for_status()
                body = response.json()
                seen += len(body["items"])
                cursor = body.get("next_cursor")
                if not cursor:
                    break
            passes.append({"seconds": time.perf_counter() - start, "runs": seen, "pages": pages})
            latencies += pages
    return {"setup_s": setup, "passes": passes, "stored": min(p["runs"] for p in passes)}


def child_mlflow(task: str, sizes: dict[str, int], server: dict[str, str]) -> dict[str, Any]:
    import mlflow
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(server["url"])
    client = mlflow.MlflowClient()
    artifacts = (Path(server["home"]) / "artifacts").as_uri()

    def experiment(name: str) -> str:  # artifacts stay in the scratch directory
        exp_id = client.create_experiment(f"{name}-{server['job']}", artifact_location=artifacts)
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id

    figures: dict[str, Any] = {}
    if task in ("metric_loop", "metric_loop_async"):
        synchronous = task == "metric_loop"
        n = sizes["mlflow_calls"]
        experiment(task)
        with mlflow.start_run() as run:
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=synchronous)
            loop = time.perf_counter() - start
            if not synchronous:
                mlflow.flush_async_logging()
            acked = time.perf_counter() - start
            cpu = time.process_time() - cpu
            end_start = time.perf_counter()
        figures.update(calls=n, loop_s=loop, durable_s=acked, cpu_s=cpu)
        figures["end_s"] = time.perf_counter() - end_start
        figures["stored"] = len(client.get_metric_history(run.info.run_id, "loss"))
    elif task == "runs":
        params, metrics = _run_params(sizes)
        exp_id = experiment("runs")

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
        # Written through MLflow's SQLite store on the server's own file: at one HTTP call per
        # step this untimed setup would take minutes.
        local = mlflow.MlflowClient(tracking_uri=f"sqlite:///{server['db']}")
        exp_id = local.create_experiment("bench-search", artifact_location=artifacts)
        data = _search_data(sizes)

        def write() -> None:
            for params, metrics in data:
                run_id = local.create_run(exp_id).info.run_id
                now = int(time.time() * 1000)
                local.log_batch(
                    run_id,
                    metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                    params=[Param(k, v) for k, v in params.items()],
                )
                local.set_terminated(run_id)

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
    figures["versions"] = {"mlflow": mlflow.__version__}
    return figures


def child(tool: str, task: str, sizes: dict[str, int], server: dict[str, str]) -> None:
    """Run one measured job in this (fresh) process and print its figures as JSON."""
    measure = child_shipyard if tool == "shipyard" else child_mlflow
    figures = measure(task, sizes, server)
    figures["python"] = sys.version.split()[0]
    print(json.dumps(figures))


# -- the driver ----------------------------------------------------------------------------------


def mlflow_python(out: Path) -> tuple[Path | None, str]:
    """MLflow's own venv under `out`, created once and reused; (None, why) if it cannot be."""
    venv = out / "mlflow-server-venv"
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


class Server:
    """One server process on loopback: started, waited for (GET /health) and stopped."""

    def __init__(self, name: str, command: list[str], url: str, env: dict[str, str], log: Path):
        self.name, self.url, self.log = name, url, log
        with log.open("wb") as sink:
            self.proc = subprocess.Popen(
                command, env=env, cwd=log.parent, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        self.stop()
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        sys.exit(f"{name} did not answer {url}/health within {STARTUP_S} s:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to the server's process group (MLflow's workers too), SIGKILL after STOP_S."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(STOP_S)


def start_shipyard(scratch: Path) -> tuple[Server, dict[str, str]]:
    from shipyard.core.settings import Settings
    from shipyard.security import init_workspace

    home = scratch / "shipyard-home"
    ws, _token, secret = init_workspace(Settings.load(home=str(home)))
    ws.close()
    port = _free_port()
    env = {**_clean_env(), "SHIPYARD_HOME": str(home)}
    shipyard = [str(Path(sys.executable).parent / "shipyard")]
    command = [*shipyard, "serve", "--host", "127.0.0.1", "--port", str(port), "--rate", "0"]
    command += ["--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    server = Server("shipyard serve", command, url, env, scratch / "shipyard-serve.log")
    return server, {"url": url, "token": secret, "home": str(home)}


def start_mlflow(scratch: Path, python: Path) -> tuple[Server, dict[str, str]]:
    home = scratch / "mlflow-home"
    home.mkdir()
    db = home / "mlflow.db"
    port = _free_port()
    command = [str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{db}"]
    command += ["--default-artifact-root", (home / "artifacts").as_uri()]
    url = f"http://127.0.0.1:{port}"
    server = Server("mlflow server", command, url, _clean_env(), scratch / "mlflow-server.log")
    return server, {"url": url, "home": str(home), "db": str(db)}


def run_child(
    python: Path, tool: str, task: str, sizes: dict[str, int], server: dict[str, str]
) -> dict[str, Any]:
    command = [str(python), __file__, "--child", tool, "--task", task]
    command += ["--sizes", json.dumps(sizes), "--server", json.dumps(server)]
    env = _clean_env()
    if tool == "mlflow":
        env["PYTHONPATH"] = ""  # this project's src must not shadow anything in MLflow's venv
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"the {tool} {task} job failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(task: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the jobs of one tool and task; raw figures kept alongside."""
    first = jobs[0]
    summary: dict[str, Any] = {"jobs": jobs, "versions": first["versions"]}
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
    elif task == "search":
        times = first["seconds"]
        summary.update(seconds=times, median_s=statistics.median(times), min_s=min(times))
        summary["hits"], summary["setup_s"] = first["hits"], first["setup_s"]
    else:  # list
        latencies = [s for p in first["passes"] for s in p["pages"]]
        pages = [p["pages"] for p in first["passes"]]
        head = [s for p in pages for s in p[:10]]
        tail = [s for p in pages for s in p[-10:]]
        summary.update(
            requests=len(latencies),
            p50_ms=_quantile(latencies, 0.5) * 1000,
            p99_ms=_quantile(latencies, 0.99) * 1000,
            max_ms=max(latencies) * 1000,
            first_pages_p50_ms=statistics.median(head) * 1000,
            last_pages_p50_ms=statistics.median(tail) * 1000,
            pass_s=statistics.median(p["seconds"] for p in first["passes"]),
            setup_s=first["setup_s"],
        )
    return summary


def check(task: str, tool: str, summary: dict[str, Any], sizes: dict[str, int]) -> None:
    """Stop if a job did not store (or find) what it should have: its time would mean nothing."""
    for job in summary["jobs"]:
        expected = {"runs": sizes["runs"], "search": sizes["search_runs"]}.get(task)
        if task.startswith("metric_loop"):
            expected = job["calls"]
        elif task == "list":
            expected = sizes["list_runs"]
        if job["stored"] != expected:
            sys.exit(f"{tool} {task}: stored {job['stored']}, expected {expected}")
        if task == "search" and len(job["hits"]) != 1:
            sys.exit(f"{tool} search found different numbers of runs: {job['hits']}")


def rows(results: dict[str, dict[str, Any]], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """The table's rows: label, each tool's figure (smaller is better) and the ratio."""
    ship, ml = results.get("shipyard", {}), results.get("mlflow", {})

    def figure(tool: dict[str, Any], task: str, key: str, scale: float = 1.0) -> float | None:
        return tool[task][key] * scale if task in tool else None

    n, m = sizes["metric_calls"], sizes["mlflow_calls"]
    calls = f"log_metric ×{n:,}" + (f" (MLflow ×{m:,})" if ml and m != n else "")
    loop_rows = [
        (f"{calls}: loop (µs/call)", "loop_us_per_call", "metric_loop"),
        (f"{calls}: until acknowledged (µs/call)", "durable_us_per_call", "metric_loop"),
    ]
    if ml:
        loop_rows += [
            ("  MLflow async: loop (µs/call)", "loop_us_per_call", "metric_loop_async"),
            ("  MLflow async: until acked (µs/call)", "durable_us_per_call", "metric_loop_async"),
        ]
    out: list[dict[str, Any]] = [
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
    listing = f"list {sizes['list_runs']:,} runs, pages of {sizes['list_page']}"
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        out.append(
            {
                "task": f"{listing}: {label} per page (ms)",
                "shipyard": figure(ship, "list", key),
                "mlflow": None,
            }
        )
    for row in out:
        ship_figure, ml_figure = row["shipyard"], row["mlflow"]
        row["ratio"] = ml_figure / ship_figure if ship_figure and ml_figure else None
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

    title = "Remote tracking over HTTP on SQLite: Shipyard's server vs MLflow's (smaller is better)"
    table = Table(title=title)
    for header in ("task", "Shipyard", "MLflow", "MLflow / Shipyard"):
        table.add_column(header, justify="left" if header == "task" else "right", no_wrap=True)
    for row in table_rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:,.1f}×"
        table.add_row(row["task"], cell(row["shipyard"]), cell(row["mlflow"]), ratio)
    console = Console()
    if console.width < 120:  # not a terminal (make, CI, a pipe): Rich would assume 80 columns
        console = Console(width=120)
    console.print(table)
    notes = [
        "ratio = MLflow / Shipyard: how many times Shipyard is faster (>1: Shipyard is faster).",
        "until acknowledged = the loop plus the flush after which the server has committed every "
        "point: Shipyard run.flush(); MLflow nothing, each call is one HTTP request.",
    ]
    if "mlflow" in results:
        notes.append(
            "MLflow async = mlflow.log_metric(..., synchronous=False), acknowledged after "
            "mlflow.flush_async_logging(); compared with the same Shipyard figures."
        )
        if sizes["mlflow_calls"] != sizes["metric_calls"]:
            notes.append(
                f"MLflow's log_metric rows are measured on {sizes['mlflow_calls']:,} calls, not "
                f"{sizes['metric_calls']:,} (each call costs milliseconds): compare per call."
            )
    if "search" in results.get("shipyard", {}):
        hits = results["shipyard"]["search"]["hits"][0]
        notes.append(f"search: every page of full run records over HTTP; {hits:,} match.")
    if "list" in results.get("shipyard", {}):
        listing = results["shipyard"]["list"]
        notes.append(
            f"list: {listing['requests']:,} requests; the first 10 pages' p50 "
            f"{listing['first_pages_p50_ms']:.1f} ms, the last 10 pages' "
            f"{listing['last_pages_p50_ms']:.1f} ms, max {listing['max_ms']:.1f} ms; "
            f"a whole listing {listing['pass_s']:.2f} s."
        )
    notes.append(f"MLflow: {status}")
    for note in notes:
        console.print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    parser.add_argument("--shipyard-only", action="store_true", help="skip MLflow entirely")
    parser.add_argument("--repeat", type=int, help="jobs per tool for the loop and runs (3)")
    parser.add_argument("--mlflow-calls", type=int, help="MLflow log_metric calls (300)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--venvs", type=Path, help=argparse.SUPPRESS)  # where MLflow's venv lives
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=(*TASKS, "search", "list"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--server", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.task, args.sizes, args.server)
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
        python, status = mlflow_python((args.venvs or out).resolve())
        if python is None:
            status = f"UNAVAILABLE, Shipyard's figures are shown alone. {status}"
            print(f"\nMLflow cannot be measured: {status}\n", file=sys.stderr)
        else:
            pythons["mlflow"] = python

    scratch = Path(tempfile.mkdtemp(dir=out, prefix="remote-tracking-"))
    servers: dict[str, tuple[Server, dict[str, str]]] = {}
    jobs: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in pythons}
    try:
        servers["shipyard"] = start_shipyard(scratch)
        if "mlflow" in pythons:
            servers["mlflow"] = start_mlflow(scratch, pythons["mlflow"])
        plan = [(i, task) for i in range(sizes["repeat"]) for task in TASKS]
        plan += [(0, "search"), (0, "list")]
        for i, task in plan:
            for tool, python in pythons.items():
                if tool == "shipyard" and task == "metric_loop_async":
                    continue  # Shipyard has one (buffered) mode; its figures come from metric_loop
                if tool == "mlflow" and task == "list":
                    continue  # (d) is Shipyard's API alone
                server = {**servers[tool][1], "job": str(i)}
                figures = run_child(python, tool, task, sizes, server)
                jobs[tool].setdefault(task, []).append(figures)
                print(f"{task} {i + 1}: {tool} done", file=sys.stderr)
    finally:
        for server_, _ in servers.values():
            server_.stop()
        shutil.rmtree(scratch, ignore_errors=True)
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
        "servers": {
            "shipyard": "shipyard serve, 1 process, --rate 0, SQLite (WAL, synchronous=NORMAL)",
            "mlflow": "mlflow server, default workers, --backend-store-uri sqlite:///…",
        },
        "table": table_rows,
        "results": results,
    }
    (out / "remote_tracking.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw figures: {out / 'remote_tracking.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
