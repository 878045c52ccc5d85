"""Benchmark: one-row predictions over HTTP, Shipyard against MLflow, BentoML and bare Starlette.

Model: the demo's data, New York's 2013 departures (`shipyard.demo.flights.load_flights()`),
January to June as the demo trains on them: 16 features (12 numbers, 4 categories) and the
`late` label. They are ingested into a fresh workspace, planned and preprocessed by Shipyard's
trainer (`plan_features` + `build_pipeline`: median-imputed, scaled numbers; one-hot categories)
and fitted around two estimators: scikit-learn's HistGradientBoostingClassifier and LightGBM's
LGBMClassifier (100 trees, 31 leaves: the demo champion's kind). Each is registered with the
signature Shipyard derives from the ingested data, given an endpoint, and a predictor token is
made. The same fitted pipelines are saved with joblib for the other servers.

Request: one real row of the training data (no missing values), the same bytes for every
server (`{"rows": [row]}`, with an `Authorization: Bearer` header that only Shipyard reads)
except MLflow, which takes `{"dataframe_records": [row]}`.

Servers, each a subprocess on a free loopback port, started, checked (one request must answer
200 with the model's probabilities), warmed up, measured, stopped:

- shipyard   `shipyard serve --rate 0` (no rate limit): token authentication, validation against
             the signature (strict ranges), the prediction log (inputs and outputs of every row,
             written to the workspace's SQLite database) all on, as they are by default.
- starlette  a minimal Starlette app that loads the pipeline and answers
             `predict_proba(pd.DataFrame(rows))` inside its async handler (uvicorn).
- noop       a Starlette endpoint that only parses the JSON body and answers a constant: the
             ceiling of the HTTP stack (uvicorn with uvloop and httptools, as Shipyard runs).
- mlflow     `mlflow models serve --env-manager local` of the pipeline saved with
             `mlflow.sklearn.save_model(..., pyfunc_predict_fn="predict_proba")`, an inferred
             signature and cloudpickle (MLflow 3's skops default refuses HistGradientBoosting's
             trees unless told to trust them), in its own venv (bench-output/mlflow-serve-venv).
- bentoml    `bentoml serve` of benchmarks/serving/bento_service.py (the pipeline's
             predict_proba on a DataFrame of the rows), in its own venv (bench-output/bentoml-venv).

Every server runs one process (each tool's default) with default thread pools. The competitors'
venvs are created on first use and reused, with the same scikit-learn, LightGBM, pandas, NumPy
and joblib versions as this project's venv so the pipeline loads unchanged; neither tool becomes
a Shipyard dependency. A competitor that cannot be installed or started is reported with the
reason and the benchmark goes on without it.

Load: `wrk` (Debian's package; installed with apt-get when missing and run as root), a closed
loop: C connections each send the next request when the previous answer arrives, C = 1, 8 and
32, threads = min(2, C), a Lua script for the POST body and headers. Per point: a warm-up of
3 s (discarded), then 10 s measured. Requests/s is completed requests / elapsed; p50 and p99 are
wrk's latency percentiles (`--latency`). wrk 4 corrects them for coordinated omission: a
response slower than the mean interval between requests adds the samples a client sending at a
steady rate would have seen meanwhile, so a rare long stall of the server weighs on p99 as it
would on real traffic (the mean latency the closed loop saw, connections / requests/s by
Little's law, is recorded beside them). A point where wrk counted any error (non-2xx/3xx
answers, timeouts, socket errors) is reported as errors, not as a throughput. wrk shares the 2
cores with the server, as a sidecar load balancer would; figures are only comparable with each
other on an otherwise idle machine: during each point the CPU time of the server's process
tree, of wrk and of everything else is read from /proc and recorded, and the table warns when
other processes took more than 5% of the machine.

Before each server the benchmark waits (`--wait-idle`, at most 120 s) for other work on the
machine to stop, and records how busy it was.

Aims (the issue): Shipyard at least 30 times MLflow's requests/s at C=32; at least half of the
no-op ceiling at C=32; p99 under 3 ms at C=1. The table shows them as ratios. Raw figures, wrk's
own output, the CPU accounting, versions, the commit and the machine go to
bench-output/serving.json. Nothing here asserts on timings.

    .venv/bin/python benchmarks/serving/bench.py [--quick] [--servers shipyard,noop,...]
        [--models hgb,lgbm] [--duration S] [--wait-idle S] [--keep]
    --quick: 2 s per point (1 s warm-up), C = 1 and 8, Shipyard and the no-op only, 20,000
    training rows: a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SEED = 20240917
# key → (estimator import path, parameters); Shipyard's trainer adds verbosity=-1 to LightGBM.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "hgb": ("sklearn.ensemble.HistGradientBoostingClassifier", {}),
    "lgbm": ("lightgbm.LGBMClassifier", {"n_estimators": 100, "num_leaves": 31}),
}
SERVERS = ("shipyard", "starlette", "noop", "mlflow", "bentoml")
LABELS = {
    "shipyard": "Shipyard",
    "starlette": "Starlette + model",
    "noop": "Starlette no-op",
    "mlflow": "MLflow",
    "bentoml": "BentoML",
}
FULL: dict[str, Any] = {
    "duration_s": 10,
    "warmup_s": 3,
    "concurrency": [1, 8, 32],
    "servers": list(SERVERS),
    "train_rows": None,  # every row of January to June (about 170,000)
}
QUICK: dict[str, Any] = {
    "duration_s": 2,
    "warmup_s": 1,
    "concurrency": [1, 8],
    "servers": ["shipyard", "noop"],
    "train_rows": 20_000,
}
AIM_MLFLOW_RATIO = 30.0  # Shipyard / MLflow requests/s at C=32, at least
AIM_CEILING_SHARE = 0.5  # Shipyard / no-op requests/s at C=32, at least
AIM_P99_C1_MS = 3.0  # Shipyard p99 at C=1, under
# The competitors load the pickled pipeline: the same versions of what it is made of.
PINNED = ("scikit-learn", "lightgbm", "pandas", "numpy", "joblib")
VENVS = {
    "mlflow": ("mlflow-serve-venv", ("mlflow>=3,<4",)),
    "bentoml": ("bentoml-venv", ("bentoml>=1.4,<2",)),
}
START_TIMEOUT_S = {"shipyard": 90, "starlette": 60, "noop": 30, "mlflow": 180, "bentoml": 180}
STOP_TIMEOUT_S = 30
WRK_TIMEOUT = "10s"  # a slow answer counts as latency, not as a timeout error
IDLE_SHARE = 0.10  # the machine counts as idle below this busy share (--wait-idle)
EX_UNAVAILABLE = 69  # sysexits: wrk is missing and cannot be installed
RESULT_MARK = "BENCH-RESULT "

# Only the standard library is imported at module level: the MLflow child runs this file in a
# venv that has MLflow and not Shipyard, Rich or anything else of this project.


# -- children: the workspace and models (Shipyard's venv) ---------------------------------------


def child_prepare(tmp: Path, train_rows: int | None) -> dict[str, Any]:
    """A fresh workspace with both models registered and served, a token, the request row."""
    import importlib.metadata

    import joblib

    from shipyard.core.settings import Settings
    from shipyard.data import ingest, read_pandas
    from shipyard.demo.flights import FEATURES, PERIODS, load_flights
    from shipyard.registry import register, signature_from_schema
    from shipyard.security import create_token, init_workspace
    from shipyard.serve.endpoints import create_endpoint
    from shipyard.train.estimators import make_estimator
    from shipyard.train.preprocess import build_pipeline, plan_features

    first, last = PERIODS["h1"]
    flights = load_flights()
    history = flights[flights["month"].between(first, last)]
    if train_rows is not None and train_rows < len(history):
        history = history.sample(n=train_rows, random_state=SEED).sort_index()
    source = tmp / "flights-h1.csv"
    history.to_csv(source, index=False)
    home = tmp / "ws"
    ws, _admin, _secret = init_workspace(Settings.load(home=str(home)))
    try:
        version = ingest(
            ws, source, name="flights", target="late", id="flight_id", time="sched_dep"
        ).version
        frame = read_pandas(ws, version)
        plan = plan_features(version.schema_, version.profile)
        X, y = frame[plan.features], frame["late"]
        models: dict[str, Any] = {}
        for key, (path, params) in MODELS.items():
            started = time.perf_counter()
            pipeline = build_pipeline(plan, make_estimator(path, params, seed=0)).fit(X, y)
            fit_s = time.perf_counter() - started
            classes = [str(c) for c in pipeline.classes_]
            signature = signature_from_schema(
                version.schema_, plan.features, task="classification", classes=classes
            )
            name = f"flights-{key}"
            model = register(ws, name, pipeline, task="classification", signature=signature)
            create_endpoint(ws, name, model.ref)
            joblib_path = tmp / f"{name}.joblib"
            joblib.dump(pipeline, joblib_path)
            models[key] = {
                "estimator": path.rpartition(".")[2],
                "params": pipeline.named_steps["model"].get_params(),
                "ref": model.ref,
                "endpoint": name,
                "pipeline": str(joblib_path),
                "fit_s": fit_s,
            }
        _token, secret = create_token(ws, "bench", "predictor")
    finally:
        ws.close()
    complete = X.dropna()
    row_frame = complete.iloc[[len(complete) // 2]]
    row = json.loads(row_frame.to_json(orient="records"))[0]
    for key, info in models.items():
        info["expected"] = _positive(joblib.load(info["pipeline"]).predict_proba(row_frame))
        info["params"] = {k: _plain(v) for k, v in info["params"].items()}
        models[key] = info
    return {
        "home": str(home),
        "token": secret,
        "models": models,
        "row": row,
        "features": {"numeric": plan.numeric, "categorical": plan.categorical},
        "data": {
            "source": "shipyard.demo.flights.load_flights(), months 1-6 (the demo's history)",
            "rows": len(frame),
            "features": len(plan.features),
            "demo_features": len(FEATURES),
        },
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("shipyard", "scikit-learn", "lightgbm", "starlette", "uvicorn")
        },
    }


def _positive(probabilities: Any) -> float:
    return float(probabilities[0][1])


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


# -- children: the MLflow model (MLflow's venv) -------------------------------------------------


def child_mlflow_save(model: Path, dest: Path, row: dict[str, Any]) -> dict[str, Any]:
    """Save the pipeline as an MLflow model whose pyfunc answers predict_proba."""
    import joblib
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    pipeline = joblib.load(model)
    example = pd.DataFrame([row])
    signature = infer_signature(example, pipeline.predict_proba(example))
    # cloudpickle, MLflow's format before 3.x: its skops default refuses HistGradientBoosting's
    # TreePredictor unless told to trust it.
    mlflow.sklearn.save_model(
        pipeline,
        str(dest),
        signature=signature,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pyfunc_predict_fn="predict_proba",
    )
    return {"mlflow": mlflow.__version__}


# -- children: the Starlette servers (Shipyard's venv) ------------------------------------------


def serve_starlette(kind: str, model: Path | None, port: int) -> None:
    """The minimal Starlette app (`starlette`) or the no-op ceiling (`noop`) under uvicorn."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if kind == "starlette":
        import joblib
        import pandas as pd

        assert model is not None
        pipeline = joblib.load(model)

        async def predict(request: Request) -> JSONResponse:
            rows = (await request.json())["rows"]
            probabilities = pipeline.predict_proba(pd.DataFrame(rows))
            return JSONResponse({"probabilities": probabilities.tolist()})

    else:

        async def predict(request: Request) -> JSONResponse:
            await request.json()
            return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# -- the driver: venvs and wrk -----------------------------------------------------------------


def pinned_requirements() -> list[str]:
    import importlib.metadata

    return [f"{name}=={importlib.metadata.version(name)}" for name in PINNED]


def tool_python(out: Path, tool: str) -> tuple[Path | None, str]:
    """`tool`'s own venv under `out`, created once and reused; (None, why) if it cannot be."""
    folder, requirements = VENVS[tool]
    venv = out / folder
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join([*requirements, *pinned_requirements()])
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python, f"reused {venv}"
    print(f"creating {venv} with {wanted} (once; reused by later runs) …", file=sys.stderr)
    pip = ["--timeout", "60", "--retries", "2", *wanted.split()]
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
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            tail = "\n".join(line for line in lines if "is ignored" not in line)[-1500:]
            return None, f"`{' '.join(command[2:5])} …` failed (exit {proc.returncode}):\n{tail}"
    stamp.write_text(wanted + "\n")
    return python, f"created {venv}"


def find_wrk() -> tuple[str | None, str]:
    """wrk's path, installing Debian's package when missing and allowed; else (None, why)."""
    found = shutil.which("wrk")
    if found:
        return found, "installed"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk is not installed; install it (Debian: `sudo apt-get install wrk`)."
    print("wrk is missing: apt-get install -y wrk …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    attempts = [["apt-get", "install", "-y", "-q", "wrk"]]
    attempts.append(["sh", "-c", "apt-get update -q && apt-get install -y -q wrk"])
    why = ""
    for command in attempts:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        found = shutil.which("wrk")
        if proc.returncode == 0 and found:
            return found, "installed now with apt-get"
        why = (proc.stderr or proc.stdout).strip()[-500:]
    return None, f"wrk is not installed and apt-get could not install it: {why}"


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[0]


LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{mark}{{\\"requests\\": %.0f, \\"duration_us\\": %.0f, \\"bytes\\": %.0f, "
    .. "\\"connect\\": %.0f, \\"read\\": %.0f, \\"write\\": %.0f, \\"status\\": %.0f, "
    .. "\\"timeout\\": %.0f, \\"p50_us\\": %.0f, \\"p90_us\\": %.0f, \\"p99_us\\": %.0f, "
    .. "\\"mean_us\\": %.1f, \\"max_us\\": %.0f}}\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def lua_script(path: Path, body: bytes, token: str) -> Path:
    text = body.decode()
    if "]==]" in text or '"' in token:
        raise SystemExit("the request body cannot be quoted for wrk's Lua script")
    path.write_text(LUA.format(body=text, token=token, mark=RESULT_MARK))
    return path


def run_wrk(
    wrk: str, script: Path, url: str, connections: int, seconds: int, server_pid: int
) -> dict[str, Any]:
    """One closed-loop run; the figures wrk's done() hook printed, its own text output, and
    where the machine's CPU time went meanwhile (the server, wrk, anything else)."""
    threads = min(2, connections)
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", WRK_TIMEOUT, "-s", str(script), url]
    before = cpu_snapshot(server_pid)
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu = cpu_used(before, cpu_snapshot(server_pid))
    lines = proc.stdout.splitlines()
    marked = [line for line in lines if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not marked:
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        return {"ok": False, "why": f"wrk failed (exit {proc.returncode}): {tail}"}
    figures: dict[str, Any] = json.loads(marked[-1][len(RESULT_MARK) :])
    errors = {k: int(figures[k]) for k in ("connect", "read", "write", "status", "timeout")}
    text = "\n".join(line for line in lines if not line.startswith(RESULT_MARK))
    seconds_taken = figures["duration_us"] / 1e6
    point: dict[str, Any] = {
        "connections": connections,
        "threads": threads,
        "requests": int(figures["requests"]),
        "seconds": seconds_taken,
        "errors": errors,
        "error_count": sum(errors.values()),
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "mean_ms": figures["mean_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "cpu": cpu,
        "wrk_output": text,
    }
    if cpu and point["requests"]:
        point["server_cpu_ms_per_request"] = cpu["server_s"] / point["requests"] * 1000
    point["ok"] = point["error_count"] == 0 and point["requests"] > 0
    point["rps"] = point["requests"] / seconds_taken if point["ok"] else None
    # wrk's percentiles and mean include its correction for coordinated omission; Little's law
    # gives the mean latency the closed loop actually saw.
    point["little_mean_ms"] = connections / point["rps"] * 1000 if point["rps"] else None
    if point["error_count"]:
        point["why"] = (
            f"{point['error_count']:,} errors ({errors}) in {point['requests']:,} requests"
        )
    elif not point["requests"]:
        point["why"] = f"no request was answered within the {seconds} s run"
    return point


# -- the driver: where the CPU time goes (Linux /proc) ------------------------------------------


def cpu_snapshot(root: int) -> dict[str, float] | None:
    """CPU seconds so far: the machine's busy time, the server's process tree (its workers
    too), our waited-for children (wrk). None where /proc is not there to read."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        parent: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the process ended meanwhile
                continue
            parts = text[text.rindex(")") + 2 :].split()  # state, ppid, …, utime (11), stime
            pid = int(stat.parent.name)
            parent[pid] = int(parts[1])
            ticks[pid] = int(parts[11]) + int(parts[12])
    except (OSError, ValueError):
        return None
    server = 0
    for pid, spent in ticks.items():
        ancestor = pid
        while ancestor > 1 and ancestor != root:
            ancestor = parent.get(ancestor, 0)
        if ancestor == root:
            server += spent
    children = os.times()
    return {
        "busy_s": (sum(fields[:8]) - idle) / tick,
        "server_s": server / tick,
        "children_s": children.children_user + children.children_system,
    }


def wait_idle(limit_s: float, progress: Callable[[str], None]) -> float | None:
    """Wait (at most `limit_s`) until other work leaves the CPU idle; the busy share last seen."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    told = False
    while True:
        before = cpu_snapshot(0)
        time.sleep(1.0)
        after = cpu_snapshot(0)
        if before is None or after is None:
            return None
        share = (after["busy_s"] - before["busy_s"]) / cores
        if share < IDLE_SHARE or time.monotonic() >= deadline:
            return share
        if not told:
            progress(
                f"the machine is {share:.0%} busy with other work; waiting up to {limit_s:g} s"
            )
            told = True


def cpu_used(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    busy = after["busy_s"] - before["busy_s"]
    server = after["server_s"] - before["server_s"]
    wrk = after["children_s"] - before["children_s"]
    return {
        "busy_s": busy,
        "server_s": server,
        "wrk_s": wrk,
        "other_s": max(0.0, busy - server - wrk),  # other work on the machine skews the figures
    }


# -- the driver: servers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Shipyard's and MLflow's settings, telemetry off."""
    prefixes = ("SHIPYARD_", "MLFLOW_", "BENTOML_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", BENTOML_DO_NOT_TRACK="true")
    env.update(extra)
    return env


class Server:
    """One server subprocess, in its own process group so its workers stop with it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name = name
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, chars: int = 800) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.strip()[-chars:]

    def stop(self) -> int | None:
        """SIGTERM to the group (a graceful shutdown), SIGKILL after STOP_TIMEOUT_S."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self._file.close()
        return self.proc.returncode


def post(url: str, body: bytes, token: str, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, url: str, body: bytes, token: str, timeout: float) -> bytes:
    """Poll with the real request until it answers 200; raise with the server's log if not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited with code {server.proc.returncode}:\n{server.tail()}")
        try:
            status, answer = post(url, body, token, timeout=10.0)
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        else:
            if status == 200:
                return answer
            last = f"HTTP {status}: {answer[:300].decode(errors='replace')}"
        time.sleep(0.25)
    raise RuntimeError(f"not ready after {timeout:.0f} s ({last}):\n{server.tail()}")


def probability(server: str, answer: bytes) -> float | None:
    """The positive class's probability in each server's answer (None for the no-op)."""
    data = json.loads(answer)
    if server == "noop":
        return None
    if server in ("shipyard", "starlette"):
        return float(data["probabilities"][0][1])
    if server == "mlflow":
        return float(data["predictions"][0][1])
    return float(data[0][1])  # bentoml: the list predict_proba gave


def start(
    name: str,
    model: dict[str, Any],
    manifest: dict[str, Any],
    pythons: dict[str, Path],
    tmp: Path,
) -> tuple[Server, str, bytes]:
    """Start one server for one model; (server, predict URL, request body)."""
    port = free_port()
    rows_body = json.dumps({"rows": [manifest["row"]]}).encode()
    log = tmp / f"{model['endpoint']}-{name}.log"
    env = clean_env()
    if name == "shipyard":
        shipyard = Path(sys.executable).with_name("shipyard")
        command = [str(shipyard), "--home", manifest["home"], "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--rate", "0", "--log-level", "warning"]
        url = f"http://127.0.0.1:{port}/v1/endpoints/{model['endpoint']}/predict"
        return Server(name, command, env, tmp, log), url, rows_body
    if name in ("starlette", "noop"):
        command = [sys.executable, __file__, "--serve", name, "--port", str(port)]
        command += ["--model", model["pipeline"]]
        url = f"http://127.0.0.1:{port}/predict"
        return Server(name, command, env, tmp, log), url, rows_body
    python = pythons[name]
    # As in an activated venv: MLflow starts `uvicorn` from PATH.
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    if name == "mlflow":
        saved = tmp / f"mlflow-{model['endpoint']}"
        if not saved.exists():
            command = [str(python), __file__, "--child", "mlflow-save", "--model"]
            command += [model["pipeline"], "--dest", str(saved), "--row"]
            command += [json.dumps(manifest["row"])]
            proc = subprocess.run(
                command, capture_output=True, text=True, env=env, cwd=tmp, check=False
            )
            if proc.returncode != 0:
                raise RuntimeError(f"saving the MLflow model failed:\n{proc.stderr[-1500:]}")
        mlflow = python.with_name("mlflow")
        command = [str(mlflow), "models", "serve", "-m", str(saved), "--env-manager", "local"]
        command += ["-h", "127.0.0.1", "-p", str(port)]
        body = json.dumps({"dataframe_records": [manifest["row"]]}).encode()
        url = f"http://127.0.0.1:{port}/invocations"
        return Server(name, command, env, tmp, log), url, body
    bentoml = python.with_name("bentoml")
    command = [str(bentoml), "serve", "bento_service:Classifier", "--working-dir", str(HERE)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env["BENCH_MODEL"] = model["pipeline"]
    url = f"http://127.0.0.1:{port}/predict"
    return Server(name, command, env, tmp, log), url, rows_body


def measure_server(
    name: str,
    model: dict[str, Any],
    manifest: dict[str, Any],
    pythons: dict[str, Path],
    wrk: str,
    sizes: dict[str, Any],
    tmp: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Start, check, warm up and measure one server at every concurrency, then stop it."""
    result: dict[str, Any] = {"ok": False, "points": {}}
    if sizes["wait_idle_s"]:
        result["busy_before"] = wait_idle(sizes["wait_idle_s"], progress)
    try:
        server, url, body = start(name, model, manifest, pythons, tmp)
    except Exception as exc:
        result["why"] = f"could not be started: {exc}"
        return result
    try:
        started = time.monotonic()
        answer = wait_ready(server, url, body, manifest["token"], START_TIMEOUT_S[name])
        result["startup_s"] = time.monotonic() - started
        result["probability"] = probability(name, answer)
        result["answer"] = answer[:400].decode(errors="replace")
        result["request_bytes"] = len(body)
        script = lua_script(tmp / f"{name}.lua", body, manifest["token"])
        pid = server.proc.pid
        for connections in sizes["concurrency"]:
            run_wrk(wrk, script, url, connections, sizes["warmup_s"], pid)
            point = run_wrk(wrk, script, url, connections, sizes["duration_s"], pid)
            result["points"][str(connections)] = point
            shown = f"{point['rps']:,.0f} req/s" if point["ok"] else point["why"]
            if point["cpu"]:
                shown += (
                    f" (CPU s: server {point['cpu']['server_s']:.1f}, wrk "
                    f"{point['cpu']['wrk_s']:.1f}, other {point['cpu']['other_s']:.1f})"
                )
            progress(f"{model['endpoint']} {name} c={connections}: {shown}")
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited during the run:\n{server.tail()}")
        result["ok"] = True
    except Exception as exc:
        result["why"] = f"failed: {exc}"
    finally:
        result["exit_code"] = server.stop()
        result["log_tail"] = server.tail(2000)
    return result


def logged_predictions(home: str, endpoint: str) -> int:
    """Rows in the workspace's prediction log for `endpoint` (Shipyard wrote them)."""
    import sqlite3

    with sqlite3.connect(Path(home) / "shipyard.db") as conn:
        query = "SELECT coalesce(sum(rows), 0) FROM prediction_segments WHERE endpoint = ?"
        return int(conn.execute(query, (endpoint,)).fetchone()[0])


# -- the driver: the report ---------------------------------------------------------------------


def ratios(servers: dict[str, dict[str, Any]], top: int) -> dict[str, Any]:
    """Shipyard against the others at the highest concurrency, and its p99 at C=1."""

    def rps(name: str, c: int) -> float | None:
        point = servers.get(name, {}).get("points", {}).get(str(c))
        return point["rps"] if point and point["ok"] else None

    ship = rps("shipyard", top)
    out: dict[str, Any] = {"concurrency": top}
    for other in ("mlflow", "bentoml", "starlette", "noop"):
        theirs = rps(other, top)
        out[f"shipyard_over_{other}"] = ship / theirs if ship and theirs else None
    c1 = servers.get("shipyard", {}).get("points", {}).get("1")
    out["shipyard_p99_c1_ms"] = c1["p99_ms"] if c1 and c1["ok"] else None
    out["aims"] = {
        "shipyard_over_mlflow": {"aim": f"≥ {AIM_MLFLOW_RATIO:g}", "value": None, "met": None},
        "shipyard_over_noop": {"aim": f"≥ {AIM_CEILING_SHARE:g}", "value": None, "met": None},
        "shipyard_p99_c1_ms": {"aim": f"< {AIM_P99_C1_MS:g}", "value": None, "met": None},
    }
    for key, check in (
        ("shipyard_over_mlflow", lambda v: v >= AIM_MLFLOW_RATIO),
        ("shipyard_over_noop", lambda v: v >= AIM_CEILING_SHARE),
        ("shipyard_p99_c1_ms", lambda v: v < AIM_P99_C1_MS),
    ):
        value = out[key]
        out["aims"][key].update(value=value, met=None if value is None else check(value))
    return out


def show(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if console.width < 130:  # not a terminal (make, CI, a pipe): Rich would assume 80 columns
        console = Console(width=130)
    levels = report["sizes"]["concurrency"]
    top = max(levels)
    for model in report["models"].values():
        table = Table(
            title=f"{model['ref']}: {model['estimator']}, one-row POST",
            caption=(
                f"closed loop (wrk), {report['sizes']['duration_s']} s per point after "
                f"{report['sizes']['warmup_s']} s of warm-up; p50 and p99 in ms"
            ),
        )
        table.add_column("server", no_wrap=True)
        for c in levels:
            for what in ("req/s", "p50", "p99"):
                table.add_column(f"c={c} {what}", justify="right", no_wrap=True)
        for name, result in model["servers"].items():
            cells: list[str] = []
            for c in levels:
                point = result.get("points", {}).get(str(c))
                if point is None:
                    cells += ["—", "—", "—"]
                elif not point["ok"]:
                    failed = point.get("error_count") or 0
                    cells += [f"errors: {failed:,}" if failed else "no answer", "", ""]
                else:
                    cells += [f"{point['rps']:,.0f}", _ms(point["p50_ms"]), _ms(point["p99_ms"])]
            table.add_row(LABELS[name], *cells)
        console.print(table)
        r = model["ratios"]
        aims = r["aims"]
        lines = [
            _aim(f"Shipyard / MLflow req/s at c={top}", aims["shipyard_over_mlflow"], "×"),
            _aim(f"Shipyard / no-op ceiling req/s at c={top}", aims["shipyard_over_noop"], ""),
            _aim("Shipyard p99 at c=1", aims["shipyard_p99_c1_ms"], " ms"),
        ]
        for other in ("bentoml", "starlette"):
            value = r[f"shipyard_over_{other}"]
            if value is not None:
                lines.append(f"  Shipyard / {LABELS[other]} req/s at c={top}: {value:,.2f}×")
        for line in lines:
            console.print(line, highlight=False)
        for name, result in model["servers"].items():
            if not result["ok"]:
                console.print(f"  {LABELS[name]}: {result.get('why', 'not measured')}")
        if "logged_predictions" in model:
            console.print(
                f"  Shipyard's prediction log holds {model['logged_predictions']:,} rows for "
                f"{model['endpoint']} (every answered request, warm-ups included).",
                highlight=False,
            )
        cpu = [
            f"c={c} {point['server_cpu_ms_per_request']:.2f}"
            for c, point in model["servers"].get("shipyard", {}).get("points", {}).items()
            if point.get("server_cpu_ms_per_request")
        ]
        if cpu:
            console.print(f"  Shipyard's CPU time per request (ms): {', '.join(cpu)}")
        little = [
            f"c={c} {point['little_mean_ms']:.2f}"
            for c, point in model["servers"].get("shipyard", {}).get("points", {}).items()
            if point.get("little_mean_ms")
        ]
        if little:
            console.print(f"  Shipyard's mean latency by Little's law (ms): {', '.join(little)}")
        busy = [
            (point["cpu"]["other_s"] / (point["seconds"] * report["cpu_count"]), name, c)
            for name, result in model["servers"].items()
            for c, point in result.get("points", {}).items()
            if point.get("cpu")
        ]
        worst = max(busy, default=None)
        if worst and worst[0] > 0.05:
            console.print(
                f"  [bold]other processes took up to {worst[0]:.0%} of the machine's CPU "
                f"during a run ({LABELS[worst[1]]}, c={worst[2]}): those figures are low.[/]"
            )
        agree = model.get("probabilities", {})
        if agree:
            shown = ", ".join(f"{LABELS[k]} {v:.6f}" for k, v in agree.items())
            console.print(f"  P(late) of the request row: {shown}", highlight=False)
        console.print()
    notes = [
        f"data: {report['data']['source']}; {report['data']['rows']:,} rows, "
        f"{report['data']['features']} features.",
        "Shipyard: `shipyard serve --rate 0`: token auth, signature validation and the "
        "prediction log on; one process.",
        "all servers: one process, default thread pools; wrk (threads = min(2, c)) shares the "
        f"{report['cpu_count']} cores.",
        "p50/p99 are wrk's: wrk 4 corrects for coordinated omission (a response slower than the "
        "mean interval adds the samples a steady-rate client would have seen meanwhile), so a "
        "rare long stall weighs on p99 as it would on real traffic.",
        f"load average before/after: {report['load_average_before'][0]:.2f} / "
        f"{report['load_average_after'][0]:.2f} (figures compare only on an idle machine).",
    ]
    for tool, status in report["venvs"].items():
        notes.append(f"{LABELS[tool]}: {status}")
    for note in notes:
        console.print(note, highlight=False)


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _aim(label: str, aim: dict[str, Any], unit: str) -> str:
    value = aim["value"]
    if value is None:
        return f"  {label}: — (aim {aim['aim']}{unit}: not measured)"
    shown = f"{value:,.2f}{unit}"
    verdict = "met" if aim["met"] else "MISSED"
    return f"  {label}: {shown} (aim {aim['aim']}{unit}) {verdict}"


# -- the driver ---------------------------------------------------------------------------------


def prepare(tmp: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "prepare", "--out", str(tmp)]
    command += ["--sizes", json.dumps(sizes)]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(), cwd=tmp, check=False
    )
    if proc.returncode != 0:
        sys.exit(
            f"preparing the workspace and models failed (exit {proc.returncode}):\n{proc.stderr}"
        )
    manifest: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s, c=1 and 8, 2 servers")
    parser.add_argument("--servers", help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--duration", type=int, help="measured seconds per point (10)")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="before each server, wait up to this many seconds for other work to stop (120)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("prepare", "mlflow-save"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=("starlette", "noop"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_starlette(args.serve, args.model, args.port)
        return
    if args.child == "prepare":
        print(json.dumps(child_prepare(args.out, args.sizes["train_rows"])))
        return
    if args.child == "mlflow-save":
        print(json.dumps(child_mlflow_save(args.model, args.dest, args.row)))
        return

    sizes = dict(QUICK if args.quick else FULL)
    if args.servers:
        sizes["servers"] = [s for s in args.servers.split(",") if s]
        unknown = sorted(set(sizes["servers"]) - set(SERVERS))
        if unknown:
            parser.error(
                f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}"
            )
    if args.duration:
        sizes["duration_s"] = args.duration
    sizes["wait_idle_s"] = max(0.0, args.wait_idle)
    model_keys = [m for m in (args.models or ",".join(MODELS)).split(",") if m]
    if set(model_keys) - set(MODELS):
        parser.error(f"--models: choose from {', '.join(MODELS)}")

    wrk, wrk_status = find_wrk()
    if wrk is None:
        print(f"wrk is not available: {wrk_status}", file=sys.stderr)
        sys.exit(EX_UNAVAILABLE)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    pythons: dict[str, Path] = {}
    venvs: dict[str, str] = {}
    for tool in ("mlflow", "bentoml"):
        if tool not in sizes["servers"]:
            continue
        python, status = tool_python(out, tool)
        if python is None:
            venvs[tool] = f"UNAVAILABLE: {status}"
            progress(f"\n{LABELS[tool]} cannot be measured: {status}\n")
            sizes["servers"] = [s for s in sizes["servers"] if s != tool]
        else:
            pythons[tool] = python
            venvs[tool] = f"{status} ({_tool_version(python, tool)})"

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(dir=out, prefix="serving-"))
    try:
        progress("training and registering the models in a fresh workspace …")
        manifest = prepare(tmp, sizes)
        models: dict[str, Any] = {}
        for key in model_keys:
            model = manifest["models"][key]
            servers: dict[str, Any] = {}
            for name in sizes["servers"]:
                servers[name] = measure_server(
                    name, model, manifest, pythons, wrk, sizes, tmp, progress
                )
            entry = {k: v for k, v in model.items() if k != "pipeline"}
            entry["servers"] = servers
            entry["ratios"] = ratios(servers, max(sizes["concurrency"]))
            entry["probabilities"] = {
                name: s["probability"]
                for name, s in servers.items()
                if s.get("probability") is not None
            }
            if "shipyard" in servers:
                entry["logged_predictions"] = logged_predictions(
                    manifest["home"], model["endpoint"]
                )
            models[key] = entry
    finally:
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": sizes,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "python": sys.version.split()[0],
        "shipyard_commit": git_commit(),
        "wrk": {"path": wrk, "version": wrk_version(wrk), "status": wrk_status},
        "data": manifest["data"],
        "request_row": manifest["row"],
        "versions": manifest["versions"],
        "venvs": venvs,
        "aims": {
            "shipyard_over_mlflow_at_top": AIM_MLFLOW_RATIO,
            "shipyard_over_noop_at_top": AIM_CEILING_SHARE,
            "shipyard_p99_c1_ms": AIM_P99_C1_MS,
        },
        "models": models,
    }
    show(report)
    (out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    progress(f"raw figures: {out / 'serving.json'}")


def git_commit() -> str | None:
    """The commit measured, with "+dirty" when the tree has changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _tool_version(python: Path, tool: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({tool!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return f"{tool} {proc.stdout.strip() or '?'}"


if __name__ == "__main__":
    main()
