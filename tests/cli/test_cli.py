"""The `shipyard` CLI end to end: real workspaces in a temporary directory, real exit codes.

Most tests call `main()` (the console script's entry point, where exit codes are mapped)
inside Typer's `CliRunner.isolation()`; one runs the installed console script in a subprocess.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from projects import LOGISTIC, write_project
from shipyard import start_run
from shipyard.cli import _output, tokens
from shipyard.cli.app import app, main
from shipyard.core.errors import Unauthorized
from shipyard.core.records import Role, Token
from shipyard.core.settings import Settings
from shipyard.security import authenticate
from shipyard.store.workspace import Workspace
from tiny_disk import fill, tiny_disk

SECRET_RE = re.compile(r"shp_[A-Za-z0-9_-]{40,}")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `shipyard ARGS` through `main()` and capture exit code, stdout and stderr."""
    code: Any = None
    with CliRunner().isolation(env={"COLUMNS": "200", **(env or {})}) as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int), f"main() must exit with an int code, got {code!r}"
    return Result(code, stdout, stderr)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def sy(home: Path) -> Any:
    """`sy("tokens", "ls")` runs `shipyard --home <home> tokens ls`."""

    def _run(*args: str) -> Result:
        return run("--home", str(home), *args)

    return _run


@pytest.fixture
def initialised(sy: Any) -> dict[str, Any]:
    result = sy("init", "--json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


def _authenticate(home: Path, secret: str) -> Token:
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        return authenticate(ws, secret)
    finally:
        ws.close()


# -- init ---------------------------------------------------------------------------------------


def test_init_prints_where_and_a_token_that_authenticates(sy: Any, home: Path) -> None:
    result = sy("init")

    assert result.exit_code == 0, result.stderr
    assert f"Created a Shipyard workspace at {home}" in result.stdout
    assert f"sqlite:///{home / 'shipyard.db'}" in result.stdout
    assert str(home / "artifacts") in result.stdout
    assert "not stored and cannot be shown again" in result.stdout
    secrets = SECRET_RE.findall(result.stdout)
    assert len(secrets) == 1
    token = _authenticate(home, secrets[0])
    assert token.role is Role.admin
    assert token.id in result.stdout


def test_init_json(sy: Any, home: Path) -> None:
    result = sy("init", "--json")

    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert set(data) == {"home", "db", "artifacts", "token", "secret"}
    assert data["home"] == str(home)
    assert data["db"] == f"sqlite:///{home / 'shipyard.db'}"
    assert data["token"]["role"] == "admin"
    assert _authenticate(home, data["secret"]).id == data["token"]["id"]


def test_init_with_db_and_artifacts(sy: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = sy("init", "--db", db, "--artifacts", str(tmp_path / "blobs"), "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["db"] == db
    assert result.json()["artifacts"] == str(tmp_path / "blobs")
    assert (tmp_path / "elsewhere.db").exists()
    assert sy("tokens", "ls", "--json").exit_code == 0  # config.toml remembers both


@pytest.mark.skipif(
    importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed: s3:// would work"
)
def test_init_on_s3_without_s3fs_names_the_extra_and_leaves_nothing(
    sy: Any, home: Path, tmp_path: Path
) -> None:
    result = sy("init", "--artifacts", "s3://a-bucket/shipyard")

    assert result.exit_code == 2, result.stderr
    assert "pip install 'shipyard[s3]' (installs s3fs)" in result.stderr
    assert not home.exists()  # no half-made workspace: init again just works
    assert sy("init", "--artifacts", str(tmp_path / "blobs")).exit_code == 0
    assert sy("data", "ls").exit_code == 0

    # A workspace half-made by an older version: commands say what to install, not crash.
    (home / "config.toml").write_text('artifacts = "s3://a-bucket/shipyard"\n')
    listed = sy("data", "ls")
    assert listed.exit_code == 2, listed.stderr
    assert "pip install 'shipyard[s3]'" in listed.stderr and "unexpected" not in listed.stderr


def test_a_failed_init_removes_only_what_it_made(sy: Any, home: Path, tmp_path: Path) -> None:
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    bad_store = sy("init", "--artifacts", str(blocker / "artifacts"))
    assert bad_store.exit_code == 8, bad_store.stderr
    assert "cannot create the artifact store" in bad_store.stderr

    bad_db = sy("init", "--db", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert bad_db.exit_code == 8, bad_db.stderr
    assert "cannot connect to the metadata database" in bad_db.stderr
    assert "secret" not in bad_db.stderr

    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert sy("init").exit_code == 0


def test_init_twice_is_a_conflict(sy: Any, initialised: dict[str, Any]) -> None:
    result = sy("init")

    assert result.exit_code == 4
    assert result.stderr.startswith("error: a workspace already exists at")
    assert "shipyard tokens create" in result.stderr
    assert result.stdout == ""


def test_home_option_overrides_shipyard_home(tmp_path: Path) -> None:
    env_home, option_home = tmp_path / "from-env", tmp_path / "from-option"
    env = {"SHIPYARD_HOME": str(env_home)}

    assert run("--home", str(option_home), "init", "--json", env=env).exit_code == 0
    assert (option_home / "config.toml").exists()
    assert not env_home.exists()
    assert run("init", "--json", env=env).exit_code == 0  # without --home: SHIPYARD_HOME
    assert (env_home / "config.toml").exists()


# -- errors and exit codes ------------------------------------------------------------------------


def test_never_initialised_home_exits_3_and_says_to_run_init(sy: Any, home: Path) -> None:
    result = sy("tokens", "ls")

    assert result.exit_code == 3
    assert f"no Shipyard workspace at {home}" in result.stderr
    assert "`shipyard init`" in result.stderr
    assert result.stdout == ""


def test_json_errors_are_json_on_stdout(sy: Any) -> None:
    result = sy("audit", "log", "--json")

    assert result.exit_code == 3
    assert result.stderr == ""
    error = result.json()
    assert error["error"] == "NotInitialised"
    assert "shipyard init" in error["message"]
    assert error["details"] == {}


def test_usage_errors_keep_exit_code_2(sy: Any) -> None:
    missing = sy("tokens", "create")
    unknown = sy("frobnicate")

    assert missing.exit_code == 2
    assert "Missing argument" in missing.stderr
    assert unknown.exit_code == 2
    assert "No such command" in unknown.stderr


def test_unexpected_errors_exit_1_with_a_hint(
    sy: Any, initialised: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tokens, "list_tokens", boom)

    plain = sy("tokens", "ls")
    assert plain.exit_code == 1
    assert "error: unexpected RuntimeError: disk on fire" in plain.stderr
    assert "--debug" in plain.stderr
    assert "Traceback" not in plain.stderr

    debug = sy("--debug", "tokens", "ls")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
    assert "disk on fire" in debug.stderr

    as_json = sy("tokens", "ls", "--json")
    assert as_json.exit_code == 1
    assert as_json.json()["error"] == "InternalError"


def test_a_full_disk_exits_9_and_says_so(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "2m") as disk:
        home = disk / "ws"
        assert run("--home", str(home), "init", "--json").exit_code == 0
        fill(disk)

        result = run("--home", str(home), "tokens", "create", "ci", "--role", "viewer")

        assert result.exit_code == 9, result.stderr
        assert "is out of space" in result.stderr and "Free space" in result.stderr
        assert "server is running" not in result.stderr
        (disk / "filler").unlink()
        assert run("--home", str(home), "tokens", "create", "ci", "--role", "viewer").exit_code == 0


def test_ctrl_c_exits_130_with_a_message(
    sy: Any, initialised: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tokens, "list_tokens", interrupted)

    result = sy("tokens", "ls")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _command_paths(sub, (*path, name))
    return found


def test_every_help_names_its_placeholders_in_words() -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert len(paths) > 40  # every command and sub-command

    for path in paths:
        result = run(*path, "--help")
        assert result.exit_code == 0, (path, result.stderr)
        assert "Usage: shipyard" in result.stdout
        typed = re.findall(r"<(?:str|int|bool|float|path|list|file)[^>]*>", result.stdout)
        assert not typed, (path, typed)
    compare = run("runs", "compare", "--help").stdout
    assert "{RUN}..." in compare and re.search(r"--plot\s+PATH", compare)
    assert re.search(r"--trials\s+INTEGER", run("train", "--help").stdout)
    assert re.search(r"\*\s+NAME\s+A label", run("tokens", "create", "--help").stdout)


def test_help_and_version() -> None:
    help_ = run("--help")
    assert help_.exit_code == 0
    for command in ("init", "tokens", "audit"):
        assert command in help_.stdout
    version = run("--version")
    assert version.exit_code == 0
    assert version.stdout.startswith("shipyard ")


# -- tokens -------------------------------------------------------------------------------------


def test_tokens_create_ls_revoke_round_trip(
    sy: Any, home: Path, initialised: dict[str, Any]
) -> None:
    created = sy("tokens", "create", "ci-deployer", "--role", "deployer", "--json")
    assert created.exit_code == 0, created.stderr
    new = created.json()
    token_id, secret = new["token"]["id"], new["secret"]
    assert new["token"]["role"] == "deployer"
    assert _authenticate(home, secret).role is Role.deployer

    listed = sy("tokens", "ls", "--json")
    assert listed.exit_code == 0
    assert [t["name"] for t in listed.json()] == ["admin", "ci-deployer"]
    assert all("secret" not in t and "secret_hash" not in t for t in listed.json())

    table = sy("tokens", "ls")
    assert table.exit_code == 0
    assert token_id in table.stdout
    assert "deployer" in table.stdout
    assert secret not in table.stdout

    revoked = sy("tokens", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.stderr
    assert f"Token {token_id} ('ci-deployer', role deployer) is revoked" in revoked.stdout

    assert [t["id"] for t in sy("tokens", "ls", "--json").json()] == [initialised["token"]["id"]]
    everything = {t["id"]: t for t in sy("tokens", "ls", "--all", "--json").json()}
    assert everything[token_id]["revoked_at"] is not None
    assert "revoked" in sy("tokens", "ls", "--all").stdout
    with pytest.raises(Unauthorized, match="was revoked"):
        _authenticate(home, secret)


def test_tokens_create_prints_the_secret_once(sy: Any, home: Path, initialised: Any) -> None:
    result = sy("tokens", "create", "notebook", "--role", "scientist")

    assert result.exit_code == 0, result.stderr
    (secret,) = SECRET_RE.findall(result.stdout)
    assert "cannot be shown again" in result.stdout
    assert _authenticate(home, secret).name == "notebook"


def test_tokens_create_with_an_unknown_role_names_the_roles(
    sy: Any, initialised: dict[str, Any]
) -> None:
    result = sy("tokens", "create", "ci", "--role", "boss")

    assert result.exit_code == 2
    assert "role 'boss' does not exist" in result.stderr
    for role in Role:
        assert role.value in result.stderr
    as_json = sy("tokens", "create", "ci", "--role", "boss", "--json")
    assert as_json.exit_code == 2
    assert as_json.json()["error"] == "Invalid"


def test_tokens_revoke_unknown_id_exits_3(sy: Any, initialised: dict[str, Any]) -> None:
    result = sy("tokens", "revoke", "tok_nope")

    assert result.exit_code == 3
    assert "token 'tok_nope' does not exist" in result.stderr
    assert "shipyard tokens ls" in result.stderr


def test_tokens_ls_when_all_are_revoked(sy: Any, initialised: dict[str, Any]) -> None:
    assert sy("tokens", "revoke", initialised["token"]["id"]).exit_code == 0

    result = sy("tokens", "ls")
    assert result.exit_code == 0
    assert "No tokens" in result.stdout
    assert sy("tokens", "ls", "--json").json() == []


# -- audit --------------------------------------------------------------------------------------


def test_audit_log_shows_init_and_token_events(sy: Any, initialised: dict[str, Any]) -> None:
    created = sy("tokens", "create", "ci", "--role", "viewer", "--json").json()["token"]
    assert sy("tokens", "revoke", created["id"]).exit_code == 0

    table = sy("audit", "log")
    assert table.exit_code == 0, table.stderr
    for action in ("workspace.init", "token.create", "token.revoke"):
        assert action in table.stdout
    full = sy("audit", "log", "--full")
    assert re.search(r"role\s+viewer", full.stdout), full.stdout

    events = sy("audit", "log", "--json").json()
    assert [e["action"] for e in events] == [
        "token.revoke",
        "token.create",
        "token.create",
        "workspace.init",
    ]
    assert events[-1]["prev_hash"] == "0" * 64

    only_tokens = sy("audit", "log", "--action", "token.", "--json").json()
    assert {e["action"] for e in only_tokens} == {"token.create", "token.revoke"}
    on_object = sy("audit", "log", "--object", created["id"], "--json").json()
    assert [e["action"] for e in on_object] == ["token.revoke", "token.create"]
    assert len(sy("audit", "log", "--limit", "1", "--json").json()) == 1
    assert "No audit events match" in sy("audit", "log", "--action", "model.").stdout


def test_audit_log_is_one_line_per_event_and_full_shows_the_details(
    home: Path, sy: Any, initialised: dict[str, Any]
) -> None:
    long_name = "ci-deployer-for-the-nightly-retraining-pipeline"
    created = sy("tokens", "create", long_name, "--role", "deployer", "--json").json()["token"]
    events = sy("audit", "log", "--json").json()

    for columns in (80, 100, 120):
        out = at_width(columns, home, "audit", "log").stdout
        lines = out.splitlines()
        assert all(len(line) <= columns for line in lines), out
        body = lines[lines.index(next(line for line in lines if line.startswith("───"))) + 1 :]
        assert len(body) == len(events), out  # one line per event, nothing folded under it
        assert not re.search(r"role\W+deployer", out)  # the details are --full's
        assert body[0].split()[4] == "token.create"  # seq, date, time, actor, action

    full = at_width(80, home, "audit", "log", "--full").stdout
    assert re.search(r"role\s+deployer", full)
    assert f"token {created['id']}" in full  # the object's type and id
    assert long_name in full


def test_audit_verify_passes_then_names_a_tampered_event(
    sy: Any, home: Path, initialised: dict[str, Any]
) -> None:
    ok = sy("audit", "verify")
    assert ok.exit_code == 0, ok.stderr
    assert "audit log ok: 2 events" in ok.stdout
    report = sy("audit", "verify", "--json").json()
    assert report["ok"] is True
    assert sy("audit", "verify", "--head", report["head"]).exit_code == 0

    # Someone with database access quietly downgrades the admin token's recorded role.
    with closing(sqlite3.connect(home / "shipyard.db")) as conn, conn:
        conn.execute(
            "UPDATE audit_events SET details = ? WHERE action = 'token.create'",
            (json.dumps({"name": "admin", "role": "viewer"}),),
        )

    broken = sy("audit", "verify")
    assert broken.exit_code == 7
    assert "error: the audit log failed verification" in broken.stderr
    token_id = initialised["token"]["id"]
    assert f"event #2 (token.create on {token_id}) was edited" in broken.stderr

    as_json = sy("audit", "verify", "--json")
    assert as_json.exit_code == 7
    error = as_json.json()
    assert error["error"] == "Integrity"
    assert error["details"]["ok"] is False
    assert any("event #2" in p for p in error["details"]["problems"])


def test_audit_verify_with_a_head_that_is_gone(sy: Any, initialised: dict[str, Any]) -> None:
    result = sy("audit", "verify", "--head", "f" * 64)

    assert result.exit_code == 7
    assert "is not in the chain" in result.stderr


# -- tables at a fixed terminal width ----------------------------------------------------------


def at_width(columns: int, home: Path, *args: str) -> Result:
    result = run("--home", str(home), *args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    return result


def test_identifiers_are_cut_with_an_ellipsis_never_folded_and_wide_shows_them_whole(
    home: Path, sy: Any, initialised: dict[str, Any]
) -> None:
    name = "a-token-name-far-too-long-for-any-column-at-eighty"
    token = sy("tokens", "create", name, "--role", "viewer", "--json").json()["token"]

    for columns in (80, 100, 120):
        out = at_width(columns, home, "tokens", "ls", "--all").stdout
        assert all(len(line) <= columns for line in out.splitlines()), out
        row = next(line for line in out.splitlines() if " viewer " in line)
        assert row.startswith(token["id"][:5])
        # the name is on the token's own line, whole or cut short with an ellipsis ...
        shown = row.split()[1]
        assert shown == name or (shown.endswith("…") and name.startswith(shown[:-1])), row
        # ... and no line holds only the rest of it (what folding did)
        assert not any(line.strip().startswith(name[-8:]) for line in out.splitlines()), out

    wide = at_width(80, home, "tokens", "ls", "--wide").stdout
    assert token["id"] in wide and name in wide and token["prefix"] in wide


def test_a_narrow_table_keeps_every_column() -> None:
    """Rich alone shrank the text column to nothing next to a long identifier."""
    table = _output.table(
        None,
        [_output.ident("RUN"), "NOTE", _output.when_column("AT")],
        [("run_" + "0" * 40, "a note of several words", datetime(2026, 1, 2, 3, 4, tzinfo=UTC))],
    )
    console = Console(width=40, file=io.StringIO())
    console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]

    assert "NOTE" in out and "a note" in out
    assert "2026-01-02 03:04" in out  # a timestamp stays whole
    assert "run_0000000" in out and "…" in out
    assert all(len(line) <= 40 for line in out.splitlines())


# -- runs ---------------------------------------------------------------------------------------


def _search(ws: Workspace, metric: str, trials: list[dict[str, Any]], seed: int = 1) -> str:
    """A search run as `shipyard train` records one: its primary metric, held-out metrics,
    and one child run per trial with its params and CV score."""
    with start_run(
        "wine", name="train wine@1", workspace=ws, params={"metric": metric, "cv": 3}, seed=seed
    ) as parent:
        parent.log_metrics(
            {"test_accuracy": 0.91, "test_balanced_accuracy": 0.9, f"test_{metric}": 0.77}
        )
        parent.log_metric(f"cv_{metric}", 0.75)
        for number, trial in enumerate(trials):
            with start_run(
                "wine",
                name=f"trial {number}",
                workspace=ws,
                parent_id=parent.id,
                params=trial["params"],
                tags={"trial": number},
            ) as child:
                child.log_metrics(
                    {f"cv_{metric}": trial["cv"], f"cv_{metric}_std": 0.01, "fit_seconds": 0.2}
                )
    return parent.id


@pytest.fixture
def searches(home: Path, initialised: dict[str, Any]) -> list[str]:
    ws = Workspace.open(Settings.load(home=str(home)))
    try:
        trials = [
            {"params": {"estimator": "sklearn.svm.SVC", "C": 0.5}, "cv": 0.71},
            {"params": {"estimator": "sklearn.svm.SVC", "C": 2.5}, "cv": 0.74},
        ]
        first = _search(ws, "recall", trials, seed=1)
        second = _search(ws, "recall", trials[:1], seed=2)
    finally:
        ws.close()
    return [first, second]


def test_runs_ls_leads_with_the_primary_metric_and_trials_show_their_own(
    home: Path, searches: list[str]
) -> None:
    for columns in (80, 100, 120):
        out = at_width(columns, home, "runs", "ls").stdout
        assert all(len(line) <= columns for line in out.splitlines()), out
        row = next(line for line in out.splitlines() if line.startswith("run_"))
        # test_accuracy (0.91) is alphabetically first and on every run: test_recall still leads
        assert re.search(r"\d\d:\d\d\s+0\.7700\s+0\.7500\b", row), out
        assert "Runs of wine" in out

    trials = at_width(100, home, "runs", "ls", "--trials").stdout
    assert "PARAMS" in trials
    assert "SVC C=2.5" in trials and "SVC C=0.5" in trials
    row = next(line for line in trials.splitlines() if "SVC C=2.5" in line)
    assert "0.74" in row  # the trial's own CV score, on its line
    narrow = at_width(80, home, "runs", "ls", "--trials").stdout
    assert all(len(line) <= 80 for line in narrow.splitlines()), narrow
    header = narrow.split("─")[0]
    assert header.index("CV") < header.index("TEST")  # a trial has only its CV score: first
    assert re.search(r"finished\s+0\.7400\b", narrow), narrow


def test_runs_compare_shows_what_differs_and_each_trials_cv_score(
    home: Path, searches: list[str]
) -> None:
    out = at_width(100, home, "runs", "compare", *searches, "--plot", str(home / "p.png")).stdout

    params = out.split("Params that differ")[1].split("Metrics")[0]
    assert re.search(r"seed\s+1\s+2", params)
    assert "cv " not in params and "metric " not in params  # the same in both: hidden
    assert "2 more params are the same in every run (--all)" in out
    assert re.search(r"test_recall\s+0.7700\s+0.7700", out)
    cv = out.split("CV score per trial")[1]
    assert re.search(r"0\s+0.7100 ± 0.0100\s+0.7100 ± 0.0100", cv)
    assert re.search(r"1\s+0.7400 ± 0.0100\s*$", cv, re.M)  # the second search had one trial

    every = at_width(100, home, "runs", "compare", *searches, "--all", "--plot", "p.png").stdout
    assert re.search(r"metric\s+recall\s+recall", every)


def test_models_ls_leads_with_the_primary_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path / "churn", metric="recall", trials=2, candidates=[LOGISTIC])
    monkeypatch.chdir(tmp_path / "churn")
    home = tmp_path / "ws"
    for step in (("init",), ("data", "ingest"), ("train", "--json")):
        result = run("--home", str(home), *step)
        assert result.exit_code == 0, (step, result.stderr)
    version = run("--home", str(home), "models", "ls", "--json").json()[0]

    for columns in (80, 100, 120):
        out = at_width(columns, home, "models", "ls").stdout
        assert all(len(line) <= columns for line in out.splitlines()), out
        head = next(line for line in out.splitlines() if line.startswith("MODEL"))
        assert head.split()[4] == "RECALL", out  # MODEL STATUS ALIASES FLAVOR RECALL
        row = next(line for line in out.splitlines() if line.startswith("churn@1"))
        assert row.split()[3] == f"{version['metrics']['recall']:.3f}", out


# -- helpers ------------------------------------------------------------------------------------


def test_emit_dumps_models_as_plain_json(capsys: pytest.CaptureFixture[str]) -> None:
    _output.emit({"at": Path("/x"), "role": Role.admin}, json_mode=True, table=None)

    assert json.loads(capsys.readouterr().out) == {"at": "/x", "role": "admin"}


def test_progress_counts_rows_on_stderr() -> None:
    with CliRunner().isolation() as (out, _err, _):
        with _output.progress() as bar:
            task = bar.add_task("reading loans.csv", total=None)
            bar.advance(task, 1000)
            bar.advance(task, 234)
        assert bar.tasks[0].completed == 1234
        assert out.getvalue() == b""


# -- the installed console script ---------------------------------------------------------------


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "shipyard"
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    home = str(tmp_path / "ws")

    init = subprocess.run(
        [str(script), "--home", home, "init", "--json"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["token"]["role"] == "admin"

    again = subprocess.run([str(script), "--home", home, "init"], capture_output=True, text=True)
    assert again.returncode == 4
    assert "error: a workspace already exists" in again.stderr

    missing = subprocess.run(
        [str(script), "--home", str(tmp_path / "nowhere"), "audit", "verify"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 3
    assert "shipyard init" in missing.stderr


def test_json_output_stays_json_with_nan_and_infinite_metrics(
    home: Path, sy: Any, initialised: dict[str, Any]
) -> None:
    ws = Workspace.open(Settings.load(home=home))
    try:
        with start_run("diverged", workspace=ws) as active:
            active.log_metrics({"loss": float("nan"), "grad": float("inf"), "low": -float("inf")})
            active.log_metric("auc", 0.75)
    finally:
        ws.close()

    def strict(text: str) -> Any:  # a parser that refuses NaN / Infinity, as jq and JS do
        def refuse(token: str) -> None:
            raise ValueError(f"not JSON: {token}")

        return json.loads(text, parse_constant=refuse)

    (listed,) = strict(sy("runs", "ls", "--json").stdout)
    shown = strict(sy("runs", "show", active.id, "--json").stdout)["run"]
    for run in (listed, shown):
        metrics = run["metrics"]
        assert (metrics["loss"], metrics["grad"], metrics["low"]) == (
            "NaN",
            "Infinity",
            "-Infinity",
        )
        assert metrics["auc"] == 0.75
