"""The README's tour, run from top to bottom as a user would type it, so it cannot drift.

Every ```bash block preceded by a `<!-- tour -->` line is part of the tour. The blocks run in
order, in one bash session, in a fresh directory with the virtual environment on PATH. Each
command must exit 0, or the code its comment names (`# exits 6 ...`). A command ending in `&`
runs in the background and is stopped at the end. The README's port 8000 is swapped for a free
one so that the test never collides with a server already running.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_MARK = "<!-- tour -->"
_EXPECT = re.compile(r"#\s*exits (\d+)\b")
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def tour_blocks(text: str) -> list[str]:
    """The tagged ```bash blocks of the README, in order."""
    blocks: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != _MARK:
            continue
        start = i + 1
        if start >= len(lines) or lines[start].strip() != "```bash":
            raise AssertionError(f"README line {i + 1}: {_MARK} must be followed by ```bash")
        end = lines.index("```", start + 1)
        blocks.append("\n".join(lines[start + 1 : end]))
    return blocks


def commands(block: str) -> list[str]:
    """Split a block into commands: `\\` continuations joined, heredocs kept whole."""
    out: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = line
        while command.rstrip().endswith("\\") and i < len(lines):
            command = command.rstrip()[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        heredoc = _HEREDOC.search(command)
        if heredoc:
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            command = "\n".join([command, *body, heredoc.group(1)])
            i += 1
        out.append(command)
    return out


def expected_exit(command: str) -> int:
    first = command.splitlines()[0]
    found = _EXPECT.search(first)
    return int(found.group(1)) if found else 0


def script(blocks: list[str], port: int) -> str:
    """One bash script that runs every command and stops at the first unexpected exit code."""
    parts = [
        "set -u",
        "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT",
    ]
    for block in blocks:
        for command in commands(block):
            command = command.replace("8000", str(port))
            shown = command.splitlines()[0]
            want = expected_exit(command)
            parts.append(f"echo {_quote('$ ' + shown)}")
            parts.append(command)
            if command.rstrip().endswith("&"):
                continue
            parts.append(
                f'rc=$?; if [ "$rc" -ne {want} ]; then echo {_quote("TOUR FAILED: " + shown)}'
                f' "(exit $rc, expected {want})"; exit 1; fi'
            )
    parts.append("echo TOUR DONE")
    return "\n".join(parts) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_blocks_split_into_commands() -> None:
    block = (
        "# a comment\n"
        "shipyard data ingest a.csv \\\n"
        "    --name x     # exits 6 when it is broken\n"
        "cat > f.yaml <<'EOF'\n"
        "a: 1\n"
        "EOF\n"
        "shipyard serve --port 8000 &\n"
    )
    got = commands(block)
    assert got == [
        "shipyard data ingest a.csv --name x     # exits 6 when it is broken",
        "cat > f.yaml <<'EOF'\na: 1\nEOF",
        "shipyard serve --port 8000 &",
    ]
    assert [expected_exit(c) for c in got] == [6, 0, 0]


def test_the_readme_has_a_tour() -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 5, "the README's tour blocks lost their <!-- tour --> tags"
    joined = "\n".join(blocks)
    for step in ("shipyard init", "shipyard data ingest", "shipyard train", "shipyard serve"):
        assert step in joined, f"the tour no longer runs `{step}`"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_tour_runs(tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text())
    (tmp_path / "tour.sh").write_text(script(blocks, _free_port()))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SHIPYARD_") or key == "SHIPYARD_REQUIRE_SERVICES"
    }
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), COLUMNS="100")
    done = subprocess.run(
        ["bash", str(tmp_path / "tour.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "TOUR DONE" in done.stdout, output[-6000:]
