"""The CLI starts fast: building it, `--help` and the quick commands load no model library.

scikit-learn, LightGBM, SciPy, skops, matplotlib, pandas and Arrow cost seconds to import; only
the commands that train, score, monitor or read data need them, and they import them inside the
command. Each check runs in a fresh interpreter, since this test session has imported them all.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.app import app

HEAVY = (
    "lightgbm",
    "matplotlib",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "skops",
    "sklearn",
)
GROUPS = (
    "alerts",
    "audit",
    "data",
    "endpoints",
    "flags",
    "loop",
    "models",
    "monitor",
    "runs",
    "tokens",
)
COMMANDS = ("init", "predict", "serve", "train")


def _loaded_after(code: str, *args: str) -> list[str]:
    """Run `code` in a fresh interpreter; the heavy modules it left in `sys.modules`."""
    probe = (
        f"{code}\nimport sys\nprint('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY="), done.stdout
    return [m for m in last.removeprefix("HEAVY=").split(",") if m]


def test_building_the_cli_loads_no_model_library() -> None:
    assert _loaded_after("import shipyard.cli.app") == []


_RUN = """
import sys
from shipyard.cli.app import main

home, commands = sys.argv[1], [c.split() for c in sys.argv[2:]]
for args in commands:
    try:
        main(["--home", home, *args])
    except SystemExit as exc:
        if exc.code:
            raise SystemExit(f"shipyard {' '.join(args)} exited {exc.code}") from None
"""


def test_quick_commands_load_no_model_library(tmp_path: Path) -> None:
    quick = [
        "init --json",
        "tokens ls --json",
        "tokens ls",
        "endpoints ls --json",
        "alerts ls --json",
        "loop status --json",
        "audit log --json",
        "audit verify --json",
        "models ls --json",
        "runs ls --json",
    ]
    assert _loaded_after(_RUN, str(tmp_path / "ws"), *quick) == []


def test_help_of_every_command_loads_no_model_library(tmp_path: Path) -> None:
    helps = ["--help", *[f"{name} --help" for name in (*GROUPS, *COMMANDS)]]
    assert _loaded_after(_RUN, str(tmp_path / "ws"), *helps) == []


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
    assert {*GROUPS, *COMMANDS} <= listed


@pytest.mark.parametrize(
    "package", ["shipyard", "shipyard.loop", "shipyard.monitor", "shipyard.registry"]
)
def test_lazily_loaded_public_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018
