"""Benchmark: data drift between two tables, Shipyard against Evidently and a NumPy floor.

Data (benchmarks/drift/synthetic.py): two seeded sides of 25 columns, 20 numeric (normal,
lognormal, uniform, Poisson counts) and 5 categorical strings; the current side has a 0.5-std
mean shift in 5 numeric columns and a frequency change (PSI about 0.25) in 2 categorical ones.
Sizes: 10k, 100k and 1M rows per side (`--sizes`, `--quick` for 10k and 100k). Each side is
written to Parquet once (bench-output/drift-data/) so every tool reads the same frames.

Jobs, each in its own fresh subprocess, at each size:

- shipyard     `shipyard.monitor.drift_between(reference, current, multivariate=False)`;
- shipyard+mv  the same with `multivariate=True` (adds the domain classifier);
- evidently    `Report([DataDriftPreset()])` (Evidently's current API, default preset) run on
               `Dataset.from_pandas(..., data_definition=DataDefinition(numerical_columns=...,
               categorical_columns=...))` for both sides, then `snapshot.dict()`; a column's
               verdict is its `ValueDrift` score against the method's threshold, the way
               Evidently's own stat tests decide (p-values: below; distances: at or above), and
               the count is checked against Evidently's `DriftedColumnsCount`;
- numpy        the floor: per numeric column one `np.histogram` of each side on 20 equal-width
               bins over the reference's range (current values clipped into it) and PSI; per
               categorical column `value_counts()` of each side and PSI (threshold 0.1);
- sketch       the production path: `WindowSketch.reference_from(reference)`, `.empty_like()`,
               then `.update(columns)` with 1,000-row batches of the current side (up to
               `--sketch-rows`, 100,000): µs per logged prediction. Measured twice: with the
               columns as the prediction log hands them over (`window.scan()`: object arrays of
               Python values) and as typed NumPy arrays (float64/int64, strings as objects).

Time is wall time from reading both Parquet files into pandas (`pd.read_parquet`, included,
the same call for every tool; also recorded apart as `read_s`) to having the verdicts as plain
values; imports and interpreter start-up are not included. Peak memory is the job's peak RSS
(the child's own high-water mark, VmHWM, so one job's alone, imports included; MB of 10^6
bytes); the peak after imports is recorded beside it, and so is each job's CPU time (all
threads; steadier than wall time on a busy machine). Shipyard, the floor and the sketch run
`--repeat` times, Evidently `--evidently-repeat` (default 1: it takes minutes at 1M rows),
interleaved; the table shows medians and the largest peak RSS.

Evidently runs in its own venv (bench-output/evidently-venv, created on first use with the
latest `evidently` and, where it can import with them, this project's NumPy, pandas and PyArrow
versions; reused after), so it never becomes a Shipyard dependency. Its telemetry is switched
off. If it cannot be installed or a job times out (`--evidently-timeout`), the rest is reported
without it.

Correctness: Shipyard's per-column verdicts (both jobs) must flag exactly the shifted columns at
every size; the benchmark prints what every tool flagged and exits with status 1 if Shipyard's
do not match (after writing the report). Evidently's and the floor's verdicts are reported,
not checked. Aims (the issue): Evidently / Shipyard at least 50 times at 1M rows, Shipyard / floor
at most 2 times, Shipyard's peak memory at most half of Evidently's, sketch updates under 20 µs per
prediction. Raw figures, verdicts, versions and the machine go to bench-output/drift.json.

    .venv/bin/python benchmarks/drift/bench.py [--quick] [--sizes 10k,100k,1M] [--repeat K]
        [--no-evidently] [--evidently-timeout S]
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

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from peak import peak_mb  # noqa: E402  benchmarks/peak.py: the standard library only

TOOLS = ("numpy", "shipyard", "shipyard_mv", "evidently", "sketch")
LABELS = {
    "numpy": "NumPy floor",
    "shipyard": "Shipyard",
    "shipyard_mv": "Shipyard +mv",
    "evidently": "Evidently",
    "sketch": "sketch",
}
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
BATCH = 1_000
FLOOR_BINS = 20
FLOOR_PSI = 0.1


# -- the measured jobs (children) ----------------------------------------------------------------
# Only the standard library is imported at module level: the Evidently child runs this file in a
# venv that has Evidently and not Shipyard, Rich or anything else of this project.


def _read(reference: str, current: str) -> tuple[Any, Any]:
    import pandas as pd

    return pd.read_parquet(reference), pd.read_parquet(current)


def _psi(expected: Any, actual: Any) -> float:
    import numpy as np

    p = np.maximum(expected / max(expected.sum(), 1), 1e-4)
    q = np.maximum(actual / max(actual.sum(), 1), 1e-4)
    return float(((q - p) * np.log(q / p)).sum())


def job_numpy(reference: str, current: str, columns: dict[str, list[str]]) -> dict[str, Any]:
    import numpy as np

    start = time.perf_counter()
    ref, cur = _read(reference, current)
    read = time.perf_counter() - start
    verdicts = {}
    for name in columns["numeric"]:
        r, c = ref[name].to_numpy(), cur[name].to_numpy()
        lo, hi = float(r.min()), float(r.max())
        counts_r = np.histogram(r, FLOOR_BINS, (lo, hi))[0]
        counts_c = np.histogram(np.clip(c, lo, hi), FLOOR_BINS, (lo, hi))[0]
        score = _psi(counts_r, counts_c)
        verdicts[name] = {"drifted": score >= FLOOR_PSI, "test": "psi", "score": score}
    for name in columns["categorical"]:
        counts_r, counts_c = ref[name].value_counts(), cur[name].value_counts()
        levels = counts_r.index.union(counts_c.index)
        score = _psi(
            counts_r.reindex(levels, fill_value=0).to_numpy(dtype=float),
            counts_c.reindex(levels, fill_value=0).to_numpy(dtype=float),
        )
        verdicts[name] = {"drifted": score >= FLOOR_PSI, "test": "psi", "score": score}
    for v in verdicts.values():
        v["threshold"] = FLOOR_PSI
    return {"seconds": time.perf_counter() - start, "read_s": read, "verdicts": verdicts}


def job_shipyard(reference: str, current: str, multivariate: bool) -> dict[str, Any]:
    from shipyard.monitor import drift_between

    start = time.perf_counter()
    ref, cur = _read(reference, current)
    read = time.perf_counter() - start
    report = drift_between(ref, cur, multivariate=multivariate)
    verdicts = {
        f.column: {
            "drifted": bool(f.drifted),
            "test": f.test,
            "score": float(f.score),
            "threshold": float(f.threshold),
        }
        for f in report.features
    }
    seconds = time.perf_counter() - start
    figures: dict[str, Any] = {"seconds": seconds, "read_s": read, "verdicts": verdicts}
    figures["report_drifted"] = bool(report.drifted)
    figures["drifted_share"] = float(report.drifted_share)
    if report.multivariate is not None:
        figures["multivariate"] = report.multivariate.model_dump()
    if report.note:
        figures["note"] = report.note
    return figures


def job_evidently(reference: str, current: str, columns: dict[str, list[str]]) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    ref, cur = _read(reference, current)
    read = time.perf_counter() - start
    definition = DataDefinition(
        numerical_columns=columns["numeric"], categorical_columns=columns["categorical"]
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    metrics = snapshot.dict()["metrics"]
    verdicts, counted = {}, None
    for metric in metrics:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            method, threshold, score = config["method"], config["threshold"], metric["value"]
            # Evidently's stat tests: p-values drift below the threshold, distances at or above.
            drifted = score < threshold if "p_value" in method else score >= threshold
            verdicts[config["column"]] = {
                "drifted": bool(drifted),
                "test": method,
                "score": float(score),
                "threshold": float(threshold),
            }
        elif kind == "DriftedColumnsCount":
            counted = metric["value"]["count"]
    seconds = time.perf_counter() - start
    figures = {"seconds": seconds, "read_s": read, "verdicts": verdicts}
    figures["evidently_drifted_count"] = counted
    return figures


def job_sketch(reference: str, current: str, rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from shipyard.monitor import WindowSketch

    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current).iloc[:rows]
    start = time.perf_counter()
    sketch = WindowSketch.reference_from(ref)
    reference_s = time.perf_counter() - start

    def logged(values: Any) -> Any:  # what window.scan() hands over: Python values in objects
        column = np.empty(len(values), dtype=object)
        column[:] = values.tolist()
        return column

    typed = {name: cur[name].to_numpy() for name in cur.columns}
    as_logged = {name: logged(values) for name, values in typed.items()}
    figures: dict[str, Any] = {"reference_s": reference_s, "rows": len(cur), "batch": BATCH}
    for label, columns in (("logged", as_logged), ("typed", typed)):
        batches = [
            {name: values[i : i + BATCH] for name, values in columns.items()}
            for i in range(0, len(cur), BATCH)
        ]
        window = sketch.empty_like()
        start = time.perf_counter()
        for batch in batches:
            window.update(batch)
        seconds = time.perf_counter() - start
        figures[f"{label}_s"] = seconds
        figures[f"{label}_us_per_row"] = seconds / len(cur) * 1e6
        figures[f"{label}_batches"] = len(batches)
        figures[f"{label}_verdicts"] = _sketch_verdicts(sketch, window)
    figures["seconds"] = reference_s
    return figures


def _sketch_verdicts(reference: Any, window: Any) -> dict[str, Any] | None:
    """What the sketches say (the monitor's `compare`), when the monitor exports it."""
    try:
        from shipyard.monitor import compare
    except ImportError:
        return None
    report = compare(reference, window)
    return {
        f.column: {"drifted": bool(f.drifted), "test": f.test, "score": float(f.score)}
        for f in report.features
    }


def _versions(tool: str) -> dict[str, str]:
    import importlib.metadata

    names = ["numpy", "pandas", "pyarrow"]
    names += ["evidently", "scipy"] if tool == "evidently" else []
    names += ["shipyard", "scikit-learn"] if tool.startswith(("shipyard", "sketch")) else []
    return {name: importlib.metadata.version(name) for name in names}


def child(tool: str, reference: str, current: str, params: dict[str, Any]) -> None:
    """Run one measured job in this (fresh) process and print its figures as JSON."""
    started = time.perf_counter()
    import numpy  # noqa: F401  (every job needs them; their import is not measured)
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if tool == "evidently":
        import evidently.presets  # noqa: F401
    elif tool != "numpy":
        import shipyard.monitor  # noqa: F401
    imports = time.perf_counter() - started
    imports_mb = peak_mb()
    cpu = time.process_time()
    if tool == "numpy":
        figures = job_numpy(reference, current, params["columns"])
    elif tool == "shipyard":
        figures = job_shipyard(reference, current, multivariate=False)
    elif tool == "shipyard_mv":
        figures = job_shipyard(reference, current, multivariate=True)
    elif tool == "evidently":
        figures = job_evidently(reference, current, params["columns"])
    else:
        figures = job_sketch(reference, current, params["sketch_rows"])
    figures["cpu_s"] = time.process_time() - cpu
    figures.update(imports_s=imports, imports_mb=imports_mb, rss_mb=peak_mb())
    figures["versions"] = _versions(tool)
    print(json.dumps(figures))


# -- the driver ----------------------------------------------------------------------------------


def evidently_python(out: Path) -> tuple[Path | None, str]:
    """Evidently's own venv under `out`, created once and reused; (None, why) if it cannot be.

    First with this project's NumPy, pandas and PyArrow pinned; if Evidently then fails to
    import (it does with pandas 3), again with pandas < 3 and the other two still pinned.
    """
    import importlib.metadata

    venv = out / "evidently-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    pins = {name: importlib.metadata.version(name) for name in ("numpy", "pandas", "pyarrow")}
    wanted = ["evidently", *(f"{name}=={version}" for name, version in pins.items())]
    key = " ".join(wanted)
    if python.exists() and stamp.exists() and stamp.read_text().splitlines()[0] == key:
        return python, f"reused {venv} ({stamp.read_text().splitlines()[1]})"
    print(f"creating {venv} with {key} (once; reused by later runs) …", file=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pip += ["--timeout", "60", "--retries", "2"]
    check = [str(python), "-c", "import evidently, evidently.presets"]
    for command in ([sys.executable, "-m", "venv", "--clear", str(venv)], [*pip, *wanted]):
        ok, why = _run(command)
        if not ok:
            return None, why
    ok, first = _run(check)
    if not ok:
        print(f"Evidently does not import: {first}\nretrying with pandas<3", file=sys.stderr)
        fallback = ["pandas<3" if r.startswith("pandas==") else r for r in wanted]
        for command in ([*pip, *fallback], check):
            ok, why = _run(command)
            if not ok:
                return None, f"{first}; then with pandas<3: {why}"
    code = "import evidently, pandas; print(evidently.__version__, pandas.__version__)"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    evidently, pandas = proc.stdout.split()
    detail = f"evidently {evidently}, pandas {pandas}"
    if first:
        detail += f"; with pandas {pins['pandas']} it fails: {first.splitlines()[-1]}"
    stamp.write_text(f"{key}\n{detail}\n")
    return python, f"created {venv} ({detail})"


def _run(command: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        return False, f"{command[0]} could not start: {exc}"
    if proc.returncode == 0:
        return True, ""
    tail = ((proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"])[-1]
    return False, f"`{' '.join(command[2:5])} …` failed (exit {proc.returncode}): {tail}"


def run_child(
    python: Path,
    tool: str,
    files: tuple[Path, Path],
    params: dict[str, Any],
    timeout: float | None,
) -> dict[str, Any]:
    """One job's figures, or {"error": why} if it failed or ran out of time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "EVIDENTLY_"))}
    env.update(DO_NOT_TRACK="1", EVIDENTLY_DISABLE_TELEMETRY="1")
    command = [str(python), __file__, "--child", tool, "--reference", str(files[0])]
    command += ["--current", str(files[1]), "--params", json.dumps(params)]
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "timeout": True, "load_before": load}
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        return {"error": f"exit {proc.returncode}: {tail}", "load_before": load}
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["load_before"] = load
    return figures


def flagged(verdicts: dict[str, Any]) -> list[str]:
    return sorted(name for name, v in verdicts.items() if v["drifted"])


def summarise(tool: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the jobs that ran; raw figures kept alongside."""
    done = [j for j in jobs if "error" not in j]
    summary: dict[str, Any] = {"jobs": jobs}
    if not done:
        summary["error"] = jobs[-1]["error"]
        return summary
    summary["versions"] = done[0]["versions"]
    summary["peak_rss_mb"] = max(j["rss_mb"] for j in done)
    summary["imports_mb"] = statistics.median(j["imports_mb"] for j in done)
    if tool == "sketch":
        for key in ("reference_s", "logged_us_per_row", "typed_us_per_row"):
            summary[key] = statistics.median(j[key] for j in done)
        summary["rows"] = done[0]["rows"]
        summary["verdicts"] = done[0]["logged_verdicts"]
        return summary
    for key in ("seconds", "read_s", "cpu_s"):
        summary[key] = statistics.median(j[key] for j in done)
    summary["min_s"] = min(j["seconds"] for j in done)
    summary["verdicts"] = done[0]["verdicts"]
    summary["flagged"] = flagged(done[0]["verdicts"])
    summary["consistent"] = all(flagged(j["verdicts"]) == summary["flagged"] for j in done)
    if "multivariate" in done[0]:
        summary["multivariate"] = done[0]["multivariate"]
    return summary


def verdict_check(
    summary: dict[str, Any], columns: list[str], shifted: list[str]
) -> dict[str, Any]:
    """Which shifted columns a tool missed and which unshifted ones it flagged."""
    if "verdicts" not in summary:
        return {"ok": False, "error": summary.get("error", "no verdicts")}
    marked = set(flagged(summary["verdicts"]))
    missing = sorted(set(columns) - set(summary["verdicts"]))
    check = {
        "flagged": sorted(marked),
        "missed": sorted(set(shifted) - marked),
        "false_alarms": sorted(marked - set(shifted)),
        "not_judged": missing,
        "consistent_over_repeats": summary.get("consistent", True),
    }
    check["ok"] = (
        not (check["missed"] or check["false_alarms"] or missing)
        and check["consistent_over_repeats"]
    )
    return check


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table_rows(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for size, by_tool in results.items():

        def get(tool: str, key: str, by_tool: dict[str, Any] = by_tool) -> float | None:
            value = by_tool.get(tool, {}).get(key)
            return float(value) if value is not None else None

        row: dict[str, Any] = {"rows": size}
        for tool in ("numpy", "shipyard", "shipyard_mv", "evidently"):
            row[f"{tool}_s"] = get(tool, "seconds")
            row[f"{tool}_mb"] = get(tool, "peak_rss_mb")
        row["evidently_over_shipyard"] = _ratio(row["evidently_s"], row["shipyard_s"])
        row["evidently_over_shipyard_cpu"] = _ratio(
            get("evidently", "cpu_s"), get("shipyard", "cpu_s")
        )
        row["evidently_over_shipyard_mv"] = _ratio(row["evidently_s"], row["shipyard_mv_s"])
        row["shipyard_over_floor"] = _ratio(row["shipyard_s"], row["numpy_s"])
        row["shipyard_mem_over_evidently"] = _ratio(row["shipyard_mb"], row["evidently_mb"])
        row["sketch_us_logged"] = get("sketch", "logged_us_per_row")
        row["sketch_us_typed"] = get("sketch", "typed_us_per_row")
        row["sketch_reference_s"] = get("sketch", "reference_s")
        out.append(row)
    return out


def show(
    rows: list[dict[str, Any]],
    results: dict[int, dict[str, Any]],
    checks: dict[int, dict[str, Any]],
    notes: list[str],
) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(value: float | None, unit: str = "") -> str:
        if value is None:
            return "—"
        text = (
            f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        )
        return text + unit

    console = Console()
    if console.width < 120:  # not a terminal (make, CI, a pipe): Rich would assume 80 columns
        console = Console(width=120)

    tools = ("numpy", "shipyard", "shipyard_mv", "evidently")
    names = [LABELS[t] for t in tools]
    speed = Table(title="Drift between two tables, 25 columns: seconds (median; smaller is better)")
    ratio_headers = ("Evidently / Shipyard", "(CPU time)", "Shipyard / floor")
    for header in ("rows/side", *names, *ratio_headers):
        speed.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        ratios = (
            cell(row["evidently_over_shipyard"], "×"),
            cell(row["evidently_over_shipyard_cpu"], "×"),
            cell(row["shipyard_over_floor"], "×"),
        )
        speed.add_row(f"{row['rows']:,}", *(cell(row[f"{t}_s"]) for t in tools), *ratios)
    console.print(speed)

    memory = Table(title="The same jobs: peak RSS (MB, imports included)")
    for header in ("rows/side", *names, "Shipyard / Evidently"):
        memory.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        ratio = cell(row["shipyard_mem_over_evidently"])
        memory.add_row(f"{row['rows']:,}", *(cell(row[f"{t}_mb"]) for t in tools), ratio)
    console.print(memory)

    sketch = Table(title=f"Production sketch: WindowSketch.update in batches of {BATCH:,} rows")
    for header in (
        "rows/side",
        "reference_from (s)",
        "rows updated",
        "µs/pred, as logged",
        "µs/pred, typed",
    ):
        sketch.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        updated = results[row["rows"]].get("sketch", {}).get("rows")
        sketch.add_row(
            f"{row['rows']:,}",
            cell(row["sketch_reference_s"]),
            f"{updated:,}" if updated else "—",
            cell(row["sketch_us_logged"]),
            cell(row["sketch_us_typed"]),
        )
    console.print(sketch)

    verdicts = Table(title="Verdicts: shifted columns flagged, unshifted columns flagged")
    for header in ("rows/side", "tool", "shifted flagged", "missed", "false alarms", "check"):
        verdicts.add_column(header, no_wrap=header != "false alarms")
    for size, by_tool in checks.items():
        for tool, check in by_tool.items():
            if "error" in check:
                verdicts.add_row(f"{size:,}", LABELS[tool], "—", "—", check["error"][:60], "error")
                continue
            hits = len(check["flagged"]) - len(check["false_alarms"])
            total = hits + len(check["missed"])
            status = (
                "—" if tool not in ("shipyard", "shipyard_mv") else "ok" if check["ok"] else "FAIL"
            )
            verdicts.add_row(
                f"{size:,}",
                LABELS[tool],
                f"{hits}/{total}",
                ", ".join(check["missed"]) or "none",
                ", ".join(check["false_alarms"]) or "none",
                status,
            )
    console.print(verdicts)
    for note in notes:
        console.print(note)


def parse_sizes(text: str) -> list[int]:
    scale = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        factor = scale.get(part[-1:], 1)
        sizes.append(int(float(part[:-1] if factor > 1 else part) * factor))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10k and 100k, 1 repeat")
    parser.add_argument("--sizes", help="rows per side, comma-separated (10k,100k,1M)")
    parser.add_argument("--repeat", type=int, help="jobs per tool and size, not Evidently (3)")
    parser.add_argument("--evidently-repeat", type=int, default=1, help="Evidently jobs (1)")
    parser.add_argument("--evidently-timeout", type=float, default=1200, help="seconds (1200)")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently entirely")
    parser.add_argument("--sketch-rows", type=int, default=100_000, help="rows updated (100k)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    parser.add_argument("--params", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.reference, args.current, args.params)
        return

    sys.path.insert(0, str(HERE))
    import synthetic

    sizes = (
        parse_sizes(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    )
    repeat = args.repeat or (1 if args.quick else 3)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    design = synthetic.design()
    columns = {"numeric": synthetic.NUMERIC, "categorical": synthetic.CATEGORICAL}
    params = {"columns": columns, "sketch_rows": args.sketch_rows}
    load_start = os.getloadavg()

    pythons = {tool: Path(sys.executable) for tool in TOOLS if tool != "evidently"}
    if args.no_evidently:
        status = "skipped (--no-evidently)"
    else:
        python, status = evidently_python(out)
        if python is None:
            status = f"UNAVAILABLE, the others are shown without it. {status}"
            print(f"\nEvidently cannot be measured: {status}\n", file=sys.stderr)
        else:
            pythons["evidently"] = python

    results: dict[int, dict[str, Any]] = {}
    for size in sizes:
        print(f"data: {size:,} rows per side …", file=sys.stderr)
        files = synthetic.files(out, size)
        for path in files:  # warm the page cache so no job pays for the cold read
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
        jobs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in pythons}
        for i in range(max(repeat, args.evidently_repeat)):
            for tool, python in pythons.items():
                if i >= (args.evidently_repeat if tool == "evidently" else repeat):
                    continue
                timeout = args.evidently_timeout if tool == "evidently" else None
                figures = run_child(python, tool, files, params, timeout)
                jobs[tool].append(figures)
                took = figures.get("seconds")
                said = f"{took:.2f} s" if took is not None else figures["error"].splitlines()[0]
                print(f"  {size:,} rows, run {i + 1}: {tool}: {said}", file=sys.stderr)
        results[size] = {tool: summarise(tool, js) for tool, js in jobs.items()}

    checks: dict[int, dict[str, dict[str, Any]]] = {
        size: {
            tool: verdict_check(
                by_tool[tool], synthetic.NUMERIC + synthetic.CATEGORICAL, design["shifted"]
            )
            for tool in ("shipyard", "shipyard_mv", "evidently", "numpy")
            if tool in by_tool
        }
        for size, by_tool in results.items()
    }
    failed = [
        f"{size:,} rows, {LABELS[tool]}: "
        + (
            check.get("error")
            or f"missed {check['missed']}, false alarms {check['false_alarms']}, "
            f"not judged {check['not_judged']}, consistent {check['consistent_over_repeats']}"
        )
        for size, by_tool in checks.items()
        for tool, check in by_tool.items()
        if tool.startswith("shipyard") and not check["ok"]
    ]
    rows = table_rows(results)
    load_end = os.getloadavg()
    notes = [
        "Time: from pd.read_parquet of both sides (included, same for all) to the verdicts; "
        "peak RSS: the job's own, imports included.",
        "Evidently / Shipyard: seconds (and, steadier on a busy machine, CPU seconds of all "
        "threads), Shipyard with multivariate=False; Shipyard / floor: seconds. Aims: ≥ 50× at "
        "1M, ≤ 2×, memory ≤ 0.5, sketch < 20 µs.",
        "Shipyard +mv adds LightGBM's domain classifier (5,000 rows per side, 5 folds): its "
        "wall time swings with other load on the machine.",
        f"shifted: {', '.join(design['shifted'])} (0.5 std; categorical PSI ≈ 0.24).",
        f"Evidently: {status}",
        f"load average (1, 5, 15 min): {load_start[0]:.1f}/{load_start[1]:.1f}/"
        f"{load_start[2]:.1f} at the start, {load_end[0]:.1f}/{load_end[1]:.1f}/"
        f"{load_end[2]:.1f} at the end, on {os.cpu_count()} CPUs.",
    ]
    show(rows, results, checks, notes)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes,
        "repeat": repeat,
        "evidently_repeat": args.evidently_repeat,
        "sketch_rows": args.sketch_rows,
        "batch": BATCH,
        "timing": "wall time from pd.read_parquet of both sides (included) to the verdicts",
        "memory": "peak RSS (VmHWM) of each job's own process, imports included, MB of 1e6",
        "design": design,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "python": sys.version.split()[0],
        "evidently_status": status,
        "table": rows,
        "verdict_checks": checks,
        "failed": failed,
        "results": results,
    }
    (out / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw figures: {out / 'drift.json'}", file=sys.stderr)
    if failed:
        sys.exit("Shipyard's drift verdicts are wrong:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
