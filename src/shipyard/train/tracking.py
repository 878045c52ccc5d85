"""Experiment tracking: runs with params, metrics (with steps), tags and artifacts.

Logging calls only append to an in-memory buffer (a few microseconds); a background thread
writes the buffer in one transaction every `FLUSH_SECONDS` or when it grows past
`FLUSH_ITEMS`, and `flush()` / the end of the run / interpreter exit write whatever is left,
so nothing a call has acknowledged is lost when the process exits normally or by exception,
and a SIGKILL loses at most the last flush interval. Each write also beats the run's
heartbeat; a `running` run whose heartbeat is older than `KILLED_AFTER_SECONDS` is reported
`killed` (its process died), and recorded so by the next run that starts.

    with shipyard.start_run(experiment="churn") as run:
        shipyard.log_params({"C": 0.1})
        for step in range(100):
            shipyard.log_metric("loss", loss, step=step)
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import math
import secrets
import subprocess
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shipyard.core.errors import Conflict, Invalid, NotFound
from shipyard.core.records import RunStatus
from shipyard.store import audit
from shipyard.store.tables import LatestMetricRow, MetricRow, RunArtifactRow, RunRow
from shipyard.store.workspace import Workspace

_METRICS = cast(Table, MetricRow.__table__)
_RUNS = cast(Table, RunRow.__table__)
FLUSH_SECONDS = 1.0
FLUSH_ITEMS = 10_000
# Ten flush intervals: a writer starved for a few seconds (a long call holding the GIL, a busy
# database) is not declared dead, and a wrong verdict is undone by its next heartbeat.
KILLED_AFTER_SECONDS = 10.0
_STEP_RANGE = (-(2**31), 2**31 - 1)
Point = tuple[
    str, float, int, datetime
]  # a metric point: key, value, step, time  # the step column is a 32-bit integer on PostgreSQL
PACKAGES = (
    "shipyard",
    "numpy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "optuna",
    "pyarrow",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 250:
        raise Invalid(f"{what} name {key!r} must be a non-empty string of at most 250 characters.")
    return key


def _check_step(key: str, step: Any) -> int:
    low, high = _STEP_RANGE
    if not isinstance(step, int) or not low <= step <= high:
        try:
            number = int(step)
        except (TypeError, ValueError, OverflowError):
            number = None
        if number is None or number != step or not low <= number <= high:
            raise Invalid(
                f"metric {key!r}: step {step!r} must be a whole number from {low} to {high}; "
                "log a counter (0, 1, 2, ...), not a timestamp."
            )
        step = number
    return step


def killed_cutoff() -> datetime:
    """A `running` run whose heartbeat is older than this is presumed dead."""
    return _now() - timedelta(seconds=KILLED_AFTER_SECONDS)


def killed_note(heartbeat_at: datetime) -> str:
    return (
        f"no heartbeat since {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC: its process died "
        "(killed, out of memory or power lost); points logged before its last flush are kept."
    )


class RunLogger:
    """Buffered writer for one run. Thread-safe; one flush at a time. While open it beats the
    run's heartbeat, so keep it open until the run ends (`end_run` closes it)."""

    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws = ws
        self.run_id = run_id
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._metrics: list[Point] = []
        self._params: dict[str, Any] = {}
        self._tags: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._background, name=f"shipyard-log-{run_id}", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)

    # -- logging (fast path) ---------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, at: datetime | None = None
    ) -> None:
        # Checked here, not in the writer, where one bad point would fail every later flush;
        # a name once, when first seen, and a plain int step inline: this is the hot path.
        if key.__class__ is not str or key not in self._steps:
            _check_key(key, "metric")
        try:
            number = float(value)  # NaN and ±inf included: a diverged loss is worth keeping
        except (TypeError, ValueError):
            raise Invalid(f"metric {key!r}: value {value!r} is not a number.") from None
        if step is not None and not (step.__class__ is int and -(2**31) <= step < 2**31):
            step = _check_step(key, step)
        with self._lock:
            if step is None:
                step = self._steps.get(key, -1) + 1
            self._steps[key] = step
            self._metrics.append((key, number, step, at or _now()))
            full = len(self._metrics) >= FLUSH_ITEMS
        if full:
            self._wake.set()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        at = _now()
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, at=at)

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = {_check_key(k, "param"): _param_value(v) for k, v in params.items()}
        with self._lock:
            self._params.update(clean)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with self._lock:
            self._tags.update({_check_key(k, "tag"): str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Store a file's bytes (content-addressed) and record it on the run."""
        file = Path(path)
        if not file.is_file():
            raise NotFound(f"artifact file {str(file)!r} does not exist.")
        digest = self.ws.artifacts.put_file(file)
        artifact_name = _check_key(name or file.name, "artifact")
        with self.ws.db.write() as s:
            s.merge(
                RunArtifactRow(
                    run_id=self.run_id,
                    name=artifact_name,
                    digest=digest,
                    size=file.stat().st_size,
                    created_at=_now(),
                )
            )
        return digest

    # -- writing ---------------------------------------------------------------------------------

    def flush(self, *, beat: bool = False) -> None:
        """Write everything logged so far, with a heartbeat, in one transaction (with `beat`,
        the heartbeat alone when nothing is pending)."""
        with self._flush_lock:
            with self._lock:
                metrics, self._metrics = self._metrics, []
                params, self._params = self._params, {}
                tags, self._tags = self._tags, {}
            if not (metrics or params or tags or beat):
                return
            try:
                self._write(metrics, params, tags)
            except BaseException:
                with self._lock:  # keep them for the next attempt
                    self._metrics[:0] = metrics
                    self._params = {**params, **self._params}
                    self._tags = {**tags, **self._tags}
                raise

    def _write(
        self,
        metrics: list[Point],
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        with self.ws.db.write() as s:
            write_batch(s, self.run_id, metrics, params, tags)

    def _background(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            # A failed background write keeps its rows for the next attempt; close() raises.
            with contextlib.suppress(Exception):
                self.flush(beat=True)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            self.flush()
        finally:  # a failed final write is raised to the caller, not retried at exit
            _OPEN.discard(self)


def _param_value(value: Any) -> Any:
    """A param as a JSON column holds it: NaN and ±inf become 'nan', 'inf', '-inf' (JSON, and
    so PostgreSQL, has neither), NumPy scalars Python ones, anything else not JSON its repr."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _param_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_param_value(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:  # a NumPy scalar
        return _param_value(item())
    return repr(value)


# Built once: these run at every flush and every run start, where building them cost more
# than running them.
_WHEN = _RUNS.c.heartbeat_at.type
_BEAT = update(_RUNS).where(_RUNS.c.id == bindparam("run_id")).values(heartbeat_at=bindparam("now"))
_REVIVE = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _RUNS.c.status == RunStatus.killed.value)
    .values(status=RunStatus.running.value, ended_at=null(), note=null())
)
_STALE = select(_RUNS.c.id, _RUNS.c.parent_id, _RUNS.c.heartbeat_at).where(
    _RUNS.c.status == RunStatus.running.value,
    _RUNS.c.heartbeat_at < bindparam("cutoff", type_=_WHEN),
)


def _beat(s: Session, run_id: str) -> None:
    """The run's heartbeat; a run wrongly presumed killed (its writer was only slow) lives again."""
    s.execute(_BEAT, {"run_id": run_id, "now": _now()})
    s.execute(_REVIVE, {"run_id": run_id})


def mark_killed(s: Session, actor: str) -> list[str]:
    """Record as `killed` the running runs whose heartbeat stopped; returns their ids."""
    stale = s.execute(_STALE, {"cutoff": killed_cutoff()}).all()
    marked = []
    for run_id, parent_id, heartbeat_at in stale:
        done = s.execute(
            update(_RUNS)
            .where(_RUNS.c.id == run_id, _RUNS.c.status == RunStatus.running.value)
            .values(
                status=RunStatus.killed.value, ended_at=heartbeat_at, note=killed_note(heartbeat_at)
            )
        )
        if not getattr(done, "rowcount", 0):
            continue  # another writer recorded it first
        marked.append(run_id)
        if parent_id is None:
            audit.append(
                s,
                actor=actor,
                action="run.killed",
                object_type="run",
                object_id=run_id,
                details={"heartbeat_at": heartbeat_at.isoformat()},
            )
    return marked


def _upsert_latest(s: Any, run_id: str, latest: dict[str, tuple[float, int, datetime]]) -> None:
    rows = [
        {"run_id": run_id, "key": k, "value": v, "step": st, "at": at}
        for k, (v, st, at) in latest.items()
    ]
    dialect = s.get_bind().dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = make(LatestMetricRow).values(rows)
    newer = (stmt.excluded.step > LatestMetricRow.step) | (
        (stmt.excluded.step == LatestMetricRow.step) & (stmt.excluded.at >= LatestMetricRow.at)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"value": stmt.excluded.value, "step": stmt.excluded.step, "at": stmt.excluded.at},
        where=newer,
    )
    s.execute(stmt)


def write_batch(
    s: Session,
    run_id: str,
    metrics: Sequence[Point],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    *,
    beat: bool = True,
) -> None:
    """Write checked points, params and tags of a run in the caller's transaction (with its
    heartbeat): the one writer of `RunLogger` and `log_batch`."""
    if beat:
        _beat(s, run_id)
    if params or tags:
        row = s.get(RunRow, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist.")
        if params:
            row.params = {**row.params, **params}
        if tags:
            row.tags = {**row.tags, **tags}
    if metrics:
        s.execute(
            insert(_METRICS),  # Core, not ORM: several times faster in bulk
            [
                {"run_id": run_id, "key": k, "value": v, "step": st, "at": at}
                for k, v, st, at in metrics
            ],
        )
        latest: dict[str, tuple[float, int, datetime]] = {}
        for k, v, st, at in metrics:
            old = latest.get(k)
            if old is None or (st, at) >= (old[1], old[2]):
                latest[k] = (v, st, at)
        _upsert_latest(s, run_id, latest)


def _presumed_dead(row: RunRow) -> bool:
    """Recorded `killed` by `mark_killed` (its heartbeat stopped), not ended on purpose."""
    return row.status == RunStatus.killed.value and row.ended_at == row.heartbeat_at


def _check_open(row: RunRow) -> None:
    """`Conflict` naming the status when the run has ended (a stopped heartbeat aside: a run
    presumed dead that still writes was only slow, and lives again)."""
    if row.status == RunStatus.running.value or _presumed_dead(row):
        return
    ended = f" at {row.ended_at:%Y-%m-%d %H:%M:%S} UTC" if row.ended_at else ""
    raise Conflict(
        f"run {row.id} ended{ended} with status {row.status!r}; an ended run takes no more "
        "points or a second end. Start a new run to log more.",
        details={"run_id": row.id, "status": row.status},
    )


def log_batch(
    ws: Workspace,
    run_id: str,
    metrics: Sequence[tuple[str, Any, int | None, datetime | None]] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> int:
    """Write one batch to a running run now, in one transaction, committed on return, and beat
    its heartbeat (if it has one); returns the points written.

    `metrics`: (key, value, step, time); NaN and ±inf are values like any other. A step of
    None is the next after the key's latest (as `RunLogger` counts); a time of None is now.
    A bad point refuses the whole batch (`Invalid`, nothing written); an ended run is a
    `Conflict` naming its status; an empty batch is a heartbeat alone.
    """
    now = _now()
    checked: list[tuple[str, float, int | None, datetime]] = []
    for key, value, step, at in metrics:
        _check_key(key, "metric")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise Invalid(f"metric {key!r}: value {value!r} is not a number.") from None
        checked.append((key, number, None if step is None else _check_step(key, step), at or now))
    clean_params = {_check_key(k, "param"): _param_value(v) for k, v in (params or {}).items()}
    clean_tags = {_check_key(k, "tag"): str(v) for k, v in (tags or {}).items()}
    with ws.db.write() as s:
        row = s.get(RunRow, run_id, with_for_update=True)
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist; `shipyard runs ls` lists runs.")
        _check_open(row)
        steps: dict[str, int] = {}
        unstepped = sorted({key for key, _, step, _ in checked if step is None})
        if unstepped:
            found = select(LatestMetricRow.key, LatestMetricRow.step).where(
                LatestMetricRow.run_id == run_id, LatestMetricRow.key.in_(unstepped)
            )
            steps = {key: step for key, step in s.execute(found)}
        points: list[Point] = []
        for key, number, step, at in checked:
            if step is None:
                step = steps.get(key, -1) + 1
            steps[key] = step
            points.append((key, number, step, at))
        write_batch(s, run_id, points, clean_params, clean_tags, beat=row.heartbeat_at is not None)
    return len(points)


_OPEN: weakref.WeakSet[RunLogger] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for logger in list(_OPEN):
        try:
            logger.close()
        except Exception:  # noqa: S112 - best effort at interpreter exit
            continue


# -- runs ---------------------------------------------------------------------------------------


@functools.cache
def _git_commit(cwd: str) -> str | None:
    """The commit of the working directory's repository (once per directory and process)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=cwd,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in PACKAGES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(out)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result (read once per process)."""
    return dict(_versions())


def create_run(
    ws: Workspace,
    *,
    experiment: str,
    name: str | None = None,
    parent_id: str | None = None,
    dataset_version_id: str | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    capture_env: bool = True,
    heartbeat: bool = False,
) -> str:
    """Insert a run row (status running) and return its id.

    `heartbeat=True` starts its heartbeat, for a caller that opens a `RunLogger` at once (as
    `start_run` does); without one the run is never presumed killed."""
    _check_key(experiment, "experiment")
    run_id = "run_" + secrets.token_hex(10)
    now = _now()
    with ws.db.write() as s:
        mark_killed(s, ws.actor)
        s.add(
            RunRow(
                id=run_id,
                experiment=experiment,
                name=name,
                status=RunStatus.running.value,
                parent_id=parent_id,
                dataset_version_id=dataset_version_id,
                seed=seed,
                git_commit=_git_commit(str(Path.cwd())) if capture_env else None,
                packages=package_versions() if capture_env else {},
                params={k: _param_value(v) for k, v in (params or {}).items()},
                tags={k: str(v) for k, v in (tags or {}).items()},
                started_at=now,
                created_by=ws.actor,
                heartbeat_at=now if heartbeat else None,
            )
        )
        if parent_id is None:
            audit.append(
                s,
                actor=ws.actor,
                action="run.start",
                object_type="run",
                object_id=run_id,
                details={"experiment": experiment, "name": name},
            )
    return run_id


def end_run(
    ws: Workspace,
    run_id: str,
    status: RunStatus = RunStatus.finished,
    note: str | None = None,
    *,
    if_open: bool = False,
) -> None:
    """Write what this process's loggers of the run hold, then its end; both committed on return.

    With `if_open`, a run that already ended is a `Conflict` naming its status (the REST API's
    end: a second end is refused, not recorded over the first)."""
    for logger in [lg for lg in list(_OPEN) if lg.run_id == run_id]:
        logger.close()
    with ws.db.write() as s:
        row = s.get(RunRow, run_id, with_for_update=if_open)
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist; `shipyard runs ls` lists runs.")
        if if_open:
            _check_open(row)
        row.status = status.value
        row.ended_at = _now()
        if note:
            row.note = note
        if row.parent_id is None:
            audit.append(
                s,
                actor=ws.actor,
                action=f"run.{status.value}",
                object_type="run",
                object_id=run_id,
                details={"note": note} if note else {},
            )


# -- the in-process API -------------------------------------------------------------------------


class ActiveRun:
    """The run `start_run()` opened: log to it directly or through the module functions."""

    def __init__(self, ws: Workspace, run_id: str, *, owns_workspace: bool) -> None:
        self.ws = ws
        self.id = run_id
        self.logger = RunLogger(ws, run_id)
        self._owns = owns_workspace

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.logger.log_metric(key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.logger.log_metrics(metrics, step)

    def log_param(self, key: str, value: Any) -> None:
        self.logger.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.logger.log_params(params)

    def set_tag(self, key: str, value: Any) -> None:
        self.logger.set_tags({key: value})

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        return self.logger.log_artifact(path, name)

    def end(self, status: RunStatus = RunStatus.finished, note: str | None = None) -> None:
        try:
            self.logger.close()
        finally:
            end_run(self.ws, self.id, status, note)
            if self._owns:
                self.ws.close()


_CURRENT: ContextVar[ActiveRun | None] = ContextVar("shipyard_active_run", default=None)


@contextmanager
def start_run(
    experiment: str = "default",
    *,
    name: str | None = None,
    workspace: Workspace | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    parent_id: str | None = None,
) -> Iterator[ActiveRun]:
    """Open a run; it ends `finished`, `failed` (exception) or `interrupted` (Ctrl-C).

    >>> with start_run(experiment="churn") as run:
    ...     log_metric("auc", 0.91)
    """
    owns = workspace is None
    if workspace is None:
        from shipyard.core.settings import Settings

        workspace = Workspace.open(Settings.load())
    run_id = create_run(
        workspace,
        experiment=experiment,
        name=name,
        params=params,
        tags=tags,
        seed=seed,
        parent_id=parent_id,
        heartbeat=True,
    )
    run = ActiveRun(workspace, run_id, owns_workspace=owns)
    token = _CURRENT.set(run)
    try:
        yield run
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            status, note = RunStatus.interrupted, "interrupted by the user"
        else:
            status, note = RunStatus.failed, f"{type(exc).__name__}: {exc}"[:2000]
        try:
            run.end(status, note)
        except Exception as failure:  # the user's own exception is the one to see
            exc.add_note(f"shipyard could not record the end of run {run_id}: {failure!r}")
        raise
    else:
        run.end(RunStatus.finished)
    finally:
        _CURRENT.reset(token)


def active_run() -> ActiveRun:
    run = _CURRENT.get()
    if run is None:
        raise Invalid("no active run: wrap the logging calls in `with shipyard.start_run(): ...`.")
    return run


def log_metric(key: str, value: float, step: int | None = None) -> None:
    active_run().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    active_run().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    active_run().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    active_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    active_run().set_tag(key, value)


def log_artifact(path: str | Path, name: str | None = None) -> str:
    return active_run().log_artifact(path, name)
