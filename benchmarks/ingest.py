"""Benchmark: CSV → Parquet with pandas versus `shipyard.data.ingest`.

What is measured, on one synthetic CSV (1,000,000 rows x 30 columns by default: an integer
id, a timestamp, 17 floats of which 5 have missing values, 6 integers, 4 low-cardinality
strings and a binary target; fixed seed, generated once in bounded memory and cached under
bench-output/):

- pandas:   `pandas.read_csv(path).to_parquet(out)` (default C parser, pyarrow engine);
- shipyard: `shipyard.data.ingest(ws, path, name="bench", id="id", target="target",
            time="ts")` into a fresh SQLite workspace, i.e. reading, type checks, validation,
            profiling, SHA-256 content addressing and the metadata commit;
- empty:    a child that only does the imports, to show the fixed cost every child carries.

How: every run is its own fresh subprocess doing the same imports (pandas, pyarrow, shipyard),
so its peak RSS (VmHWM, in MB of 10^6 bytes) is that job's alone, imports included.
Wall time covers the measured call only, not interpreter start-up, imports or workspace
creation. Runs are interleaved (empty, pandas, shipyard) `--repeat` times after the CSV is read
once to warm the page cache; the table shows the median and minimum time and the largest peak
RSS. Raw figures (with each run's CPU time, all threads, steadier than wall time on a busy
machine) and the machine's description go to bench-output/ingest.json. Nothing here asserts on
timings.

    .venv/bin/python benchmarks/ingest.py [--rows N] [--repeat K] [--quick]
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

from peak import peak_mb  # benchmarks/peak.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240917
CHUNK = 100_000
COLS = 30
TOOLS = ("empty", "pandas", "shipyard")
MISSING = (0.01, 0.05, 0.2, 0.02, 0.1)
INTS = {"age": (18, 91), "balance": (-5_000, 250_000), "zip": (10_000, 99_999), "tenure": (0, 3650)}
CATEGORIES = {
    "region": (["north", "south", "east", "west", "central"], [0.3, 0.25, 0.2, 0.15, 0.1]),
    "channel": (["web", "store", "phone"], [0.6, 0.3, 0.1]),
    "product": ([f"P{i:02d}" for i in range(12)], None),
    "grade": (list("ABCDEFG"), [0.05, 0.15, 0.3, 0.25, 0.15, 0.07, 0.03]),
}


def generate(path: Path, rows: int) -> None:
    """Write the CSV chunk by chunk (one seeded generator), so memory stays bounded."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(SEED)
    tmp = path.with_suffix(".partial")
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        ids = np.arange(start + 1, start + n + 1)
        cols: dict[str, pa.Array] = {"id": pa.array(ids)}
        seconds = ids * 30 + rng.integers(0, 30, n)
        cols["ts"] = pa.array(np.datetime64("2023-01-01T00:00:00") + seconds.astype("m8[s]"))
        for j in range(17):  # normal, skewed (amounts) and bounded, with 2-6 decimals
            draws = (rng.normal(j * 10, 1 + j, n), rng.lognormal(3, 1, n), rng.uniform(-1, 1, n))
            missing = (rng.random(n) < MISSING[j]) if j < len(MISSING) else None
            cols[f"f{j:02d}"] = pa.array(np.round(draws[j % 3], 2 + j % 5), mask=missing)
        for name, (low, high) in INTS.items():
            cols[name] = pa.array(rng.integers(low, high, n))
        cols["visits"] = pa.array(rng.poisson(3, n))
        cols["items"] = pa.array(rng.geometric(0.3, n))
        for name, (values, p) in CATEGORIES.items():
            cols[name] = pa.array(np.array(values)[rng.choice(len(values), n, p=p)])
        f02 = np.nan_to_num(cols["f02"].to_numpy(zero_copy_only=False))
        logit = 0.02 * cols["age"].to_numpy() + f02 - 1.2
        cols["target"] = pa.array((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8))
        table = pa.table(cols)
        if writer is None:
            options = pacsv.WriteOptions(quoting_style="none")
            writer = pacsv.CSVWriter(tmp, table.schema, write_options=options)
        writer.write_table(table)
    assert writer is not None and len(cols) == COLS
    writer.close()
    tmp.replace(path)


def child(tool: str, csv: Path, scratch: Path) -> None:
    """Run one measured job in this (fresh) process and print its figures as JSON."""
    import tempfile

    started = time.perf_counter()
    import pandas as pd

    from shipyard.core.settings import Settings
    from shipyard.data import ingest
    from shipyard.security import init_workspace

    imports = time.perf_counter() - started
    rows = 0
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        if tool == "shipyard":
            ws, _token, _secret = init_workspace(Settings.load(home=str(Path(tmp) / "ws")))
        start, cpu = time.perf_counter(), time.process_time()
        if tool == "pandas":
            frame = pd.read_csv(csv)
            frame.to_parquet(Path(tmp) / "out.parquet", engine="pyarrow")
            rows = len(frame)
        elif tool == "shipyard":
            result = ingest(ws, csv, name="bench", id="id", target="target", time="ts")
            rows = result.version.rows
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if tool == "shipyard":
            ws.close()
    if tool == "empty":
        seconds = imports
    figures = {"seconds": seconds, "cpu_s": cpu, "imports": imports, "rss_mb": peak_mb()}
    figures["rows"] = rows
    print(json.dumps(figures))


def run_child(tool: str, csv: Path, out: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    command = [sys.executable, __file__, "--child", tool, "--csv", str(csv), "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"the {tool} run failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, float]]) -> dict[str, object]:
    times = [r["seconds"] for r in runs]
    rss = [r["rss_mb"] for r in runs]
    return {
        "seconds": times,
        "rss_mb": rss,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_rss_mb": max(rss),
        "cpu_s": [r["cpu_s"] for r in runs],
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "imports_s": statistics.median(r["imports"] for r in runs),
        "rows": runs[0]["rows"],
    }


def show(results: dict[str, dict], rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    base = results["pandas"]
    table = Table(title=f"CSV → Parquet, {rows:,} rows x {COLS} columns")
    for header in ("tool", "median (s)", "min (s)", "peak RSS (MB)", "time ratio", "mem ratio"):
        table.add_column(header, justify="left" if header == "tool" else "right", no_wrap=True)
    for tool, r in results.items():
        ratios = ("—", "—")
        if tool != "empty":
            time_ratio = base["median_s"] / r["median_s"]
            ratios = (f"{time_ratio:.2f}", f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}")
        times = (f"{r['median_s']:.2f}", f"{r['min_s']:.2f}")
        table.add_row(tool, *times, f"{r['peak_rss_mb']:.0f}", *ratios)
    console = Console()
    console.print(table)
    console.print(
        "time ratio = pandas / tool (>1: faster than pandas); mem ratio = tool / pandas (<1: "
        "less memory). empty: a child that only imports; its times are the import time."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows in the CSV (default 1,000,000)")
    parser.add_argument("--cols", type=int, default=COLS, choices=[COLS], help="fixed at 30")
    parser.add_argument("--repeat", type=int, help="runs per tool; the median is shown (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100,000 rows, 1 run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.csv, args.out)
        return
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 3)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"ingest-{rows}x{COLS}-seed{SEED}.csv"
    if not csv.exists():
        print(f"generating {csv} …", file=sys.stderr)
        generate(csv, rows)
    with csv.open("rb") as fh:  # warm the page cache so no run pays for the cold read
        while fh.read(1 << 24):
            pass
    runs: dict[str, list[dict[str, float]]] = {tool: [] for tool in TOOLS}
    for i in range(repeat):
        for tool in TOOLS:
            runs[tool].append(run_child(tool, csv, out))
            seconds = runs[tool][-1]["seconds"]
            print(f"run {i + 1}/{repeat} {tool}: {seconds:.2f} s", file=sys.stderr)
    results = {tool: summarise(r) for tool, r in runs.items()}
    for tool in ("pandas", "shipyard"):
        if results[tool]["rows"] != rows:
            sys.exit(f"{tool} wrote {results[tool]['rows']} rows, expected {rows}")
    show(results, rows)
    import pandas
    import pyarrow

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "cols": COLS,
        "repeat": repeat,
        "csv": str(csv),
        "csv_bytes": csv.stat().st_size,
        "cpu_count": os.cpu_count(),
        "load_average_after": os.getloadavg(),  # other work on the machine skews wall times
        "python": sys.version.split()[0],
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "tools": results,
    }
    (out / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw figures: {out / 'ingest.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
