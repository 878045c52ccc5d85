"""Instructions per one-row prediction in the serving app, counted by callgrind: a figure that
does not move with a noisy machine, for comparing two versions of the code side by side.

The app is called in-process as uvicorn would call it (ASGI scope, receive, send), by
`--connections` concurrent clients sending the benchmark's request; after a warm-up of the same
size, callgrind counts every instruction of the process (event loop, model, the prediction
log's writer) for `--requests` more. uvicorn and the network are not in it: they are the same
for every version. Token and routing look-ups are trusted for the whole run and the log writes
a segment every `--flush-rows` rows, so that clock-driven work does not grow with valgrind's
slowdown.

    python benchmarks/serving/bench.py --servers shipyard --keep     # makes the workspace
    python benchmarks/serving/instructions.py bench-output/serving-XXXX
    PYTHONPATH=/other/checkout/src python benchmarks/serving/instructions.py bench-output/...

Needs valgrind (Debian: `apt-get install valgrind`); `--no-valgrind` times the same loop
instead (requests/s and CPU per request: noisy, for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def drive(kept: Path, endpoint: str, connections: int, requests: int, flush_rows: int) -> None:
    """The child: warm up, print GO, pause for callgrind to start counting, then measure."""
    import uvloop

    from shipyard.core.settings import Settings
    from shipyard.serve.app import create_app

    script = (kept / "shipyard.lua").read_text()
    body = re.search(r"\[==\[(.*)\]==\]", script, re.S).group(1).encode()  # type: ignore[union-attr]
    token = re.search(r'Bearer (\S+)"', script).group(1)  # type: ignore[union-attr]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/endpoints/{endpoint}/predict",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def main() -> None:
        app = create_app(Settings(home=kept / "ws"), rate=None, poll_interval=1e5, token_ttl=1e5)
        runtime = app.state.runtime
        await runtime.start()
        log = runtime._log
        if log is not None:
            log.flush_seconds, log._flush_rows = 1e6, flush_rows
        failed = 0

        async def receive() -> dict[str, object]:
            return message

        async def client(count: int) -> None:
            nonlocal failed
            for _ in range(count):
                status: list[int] = []

                async def send(m: dict[str, object], status: list[int] = status) -> None:
                    if m["type"] == "http.response.start":
                        status.append(int(m["status"]))  # type: ignore[call-overload]

                await app(dict(scope), receive, send)
                failed += status != [200]

        each = max(1, requests // connections)
        await asyncio.gather(*(client(each) for _ in range(connections)))  # warm-up
        print("GO", flush=True)
        await asyncio.sleep(3)  # callgrind starts counting meanwhile
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(each) for _ in range(connections)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        done = each * connections
        print(f"DONE {done} {failed} {done / wall:.0f} {1e6 * cpu / done:.1f}", flush=True)
        await runtime.stop()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", type=Path, help="a directory `bench.py --keep` left")
    parser.add_argument("--endpoint", default="flights-hgb")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--flush-rows", type=int, default=3200)
    parser.add_argument("--no-valgrind", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (args.endpoint, args.connections, args.requests, args.flush_rows)
    if args.child:
        drive(args.kept, *sizes)
        return
    command = [sys.executable, __file__, str(args.kept), "--child"]
    command += ["--endpoint", args.endpoint, "--connections", str(args.connections)]
    command += ["--requests", str(args.requests), "--flush-rows", str(args.flush_rows)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        if not args.no_valgrind:
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                       f"--callgrind-out-file={out}", *command]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("GO") and not args.no_valgrind:
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)],
                               capture_output=True, check=True)  # fmt: skip
            if line.startswith("DONE"):
                done, failed, rps, cpu_us = line.split()[1:]
        if proc.wait() != 0:
            raise SystemExit(f"the driver failed (exit {proc.returncode})")
        print(f"{args.endpoint}: {int(done):,} requests at {args.connections} connections, "
              f"{failed} not 200; {float(rps):,.0f} req/s, {cpu_us} µs CPU each")  # fmt: skip
        if not args.no_valgrind:
            totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
            assert totals is not None, "callgrind wrote no totals"
            print(f"instructions per request: {int(totals.group(1)) // int(done):,}")


if __name__ == "__main__":
    main()
