"""`import shipyard` does not load the client; the client loads no server and no model library.

Each check runs in a fresh interpreter (this session has imported everything).
"""

from __future__ import annotations

import subprocess
import sys

SERVER_SIDE = (
    "lightgbm",
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "starlette",
    "uvicorn",
    "shipyard.api",
    "shipyard.serve",
    "shipyard.registry",
    "shipyard.data",
)


def _loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    probe = (
        f"{code}\nimport sys\nprint('LOADED=' + ','.join(m for m in {names!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED="), done.stdout
    return [m for m in last.removeprefix("LOADED=").split(",") if m]


def test_import_shipyard_does_not_load_the_client() -> None:
    assert _loaded_after("import shipyard", ("shipyard.client", "httpx")) == []


def test_the_client_loads_nothing_of_the_server() -> None:
    code = "import shipyard\nassert shipyard.Client.__module__ == 'shipyard.client.client'"
    assert _loaded_after(code, SERVER_SIDE) == []
