"""One turn of the loop for every endpoint of a project, and the scheduler that repeats it.

`run_once()` is what `shipyard loop run-once` (cron) and the scheduler inside `shipyard serve`
both do, per endpoint whose champion is a version of the spec's project:

- an endpoint whose loop is paused (`shipyard loop pause`) is only watched: its report and
  alerts as usual, no retrain, no rollout step, and the turn says what would have happened;
- an active rollout takes its next step (`rollout.progress`): nothing else happens meanwhile;
- otherwise the monitor judges the latest window (alerts raised and sent), the retrain policies
  are checked, and when one holds — and the last rollout ended at least `retrain.cooldown`
  (default: one window) ago — a
  retrain starts (`retrain.retrain`), which ends in a shadow, a canary or a rejection.

    >>> for turn in run_once(ws, load_spec()):
    ...     print(turn.endpoint, turn.action, turn.reason)
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shipyard.core.errors import ShipyardError
from shipyard.core.records import MonitorReport, Rollout
from shipyard.core.settings import Settings
from shipyard.core.spec import ProjectSpec, parse_duration
from shipyard.loop.policies import check_policies, check_spec_policies
from shipyard.loop.retrain import retrain
from shipyard.loop.rollout import progress
from shipyard.loop.rollouts import active_rollout, list_rollouts
from shipyard.loop.watch import endpoint_report
from shipyard.monitor import raise_alert
from shipyard.registry import get_version
from shipyard.serve.endpoints import get_endpoint, list_endpoints
from shipyard.store.workspace import Workspace
from shipyard.train.search import OnTrial

log = logging.getLogger("shipyard.loop")


@dataclass
class Turn:
    """What one turn of the loop did for one endpoint."""

    endpoint: str
    action: str  # watched | retrained | rollout | waiting | paused | error
    reason: str
    rollout: Rollout | None = None
    report: MonitorReport | None = None


def run_once(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    endpoints: Sequence[str] | None = None,
    now: datetime | None = None,
    trials: int | None = None,
    on_trial: OnTrial | None = None,
) -> list[Turn]:
    """Evaluate every retrain policy and advance every rollout of the project's endpoints now."""
    now = now or datetime.now(UTC)
    names = list(endpoints) if endpoints is not None else project_endpoints(ws, spec)
    return [_turn(ws, spec, name, now=now, trials=trials, on_trial=on_trial) for name in names]


def project_endpoints(ws: Workspace, spec: ProjectSpec) -> list[str]:
    """Endpoints whose champion is a version of the spec's project model."""
    return [e.name for e in list_endpoints(ws) if e.champion_ref.split("@")[0] == spec.project]


def _turn(
    ws: Workspace,
    spec: ProjectSpec,
    endpoint: str,
    *,
    now: datetime,
    trials: int | None,
    on_trial: OnTrial | None,
) -> Turn:
    route = get_endpoint(ws, endpoint)
    active = active_rollout(ws, endpoint)
    if active is not None and route.loop_paused is None:
        moved = progress(ws, spec, active)
        return Turn(endpoint, "rollout", moved.reason, rollout=moved)
    champion = get_version(ws, route.champion_ref)
    check_spec_policies(spec, champion)
    report = endpoint_report(ws, endpoint, spec, end=now, raise_alerts=True)
    last = list_rollouts(ws, endpoint, limit=1)
    last_retrain = last[0].created_at if last else None
    triggers = check_policies(spec, champion, report, now=now, last_retrain=last_retrain)
    if route.loop_paused is not None:
        held = (
            f"rollout {active.id} waits at {active.stage}"
            if active is not None
            else f"would retrain: {'; '.join(t.reason for t in triggers)}"
            if triggers
            else _summary(report)
        )
        return Turn(
            endpoint,
            "paused",
            f"loop paused ({route.loop_paused}; `shipyard loop resume {endpoint}`); {held}",
            rollout=active,
            report=report,
        )
    if not triggers:
        return Turn(endpoint, "watched", _summary(report), report=report)
    pause = spec.retrain.cooldown or spec.monitor.window
    if last and now - last[0].updated_at < parse_duration(pause, what="retrain.cooldown"):
        return Turn(
            endpoint,
            "waiting",
            f"{triggers[0].reason}; the last rollout ended {last[0].updated_at:%H:%M:%S}, less "
            f"than the cooldown ({pause}) ago",
            report=report,
        )
    reason = "; ".join(t.reason for t in triggers)
    raise_alert(
        ws,
        endpoint,
        "loop",
        f"{endpoint}: retraining ({reason})",
        key=f"{endpoint}:loop:{now:%Y%m%dT%H%M%S%f}",
        details={"triggers": [t.policy for t in triggers]},
    )
    rollout = retrain(
        ws,
        spec,
        endpoint,
        trigger=triggers[0].policy,
        reason=reason,
        trials=trials,
        now=now,
        on_trial=on_trial,
    )
    return Turn(endpoint, "retrained", rollout.reason, rollout=rollout, report=report)


def _summary(report: MonitorReport) -> str:
    drift = report.drift
    if drift.note:
        return drift.note
    parts = [f"{len(drift.drifted_columns)} of {len(drift.features)} features drifted"]
    if report.decay is not None:
        parts.append(f"{report.decay.metric} {report.decay.current:.4f}")
    return ", ".join(parts) + "; no retrain policy holds"


class _Stop(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...
    def set(self) -> None: ...


class Scheduler:
    """Runs `run_once()` every `interval` seconds on a daemon thread.

    In-process, for tests and embedding; `shipyard serve --loop` runs it in a process of its
    own (`LoopProcess`), so retraining never shares the server's interpreter lock.
    """

    def __init__(
        self,
        open_workspace: Callable[[], Workspace],
        spec: ProjectSpec,
        *,
        interval: float = 60.0,
        on_turn: Callable[[Turn], None] | None = None,
        stop: _Stop | None = None,
    ) -> None:
        self.open_workspace = open_workspace
        self.spec = spec
        self.interval = interval
        self.on_turn = on_turn
        self.turns = 0
        self._stop: _Stop = stop if stop is not None else threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-loop", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        ws = self.open_workspace()
        try:
            while not self._stop.wait(self.interval):
                try:
                    for turn in run_once(ws, self.spec):
                        self.turns += 1
                        log.info("loop %s: %s: %s", turn.endpoint, turn.action, turn.reason)
                        if self.on_turn is not None:
                            self.on_turn(turn)
                except ShipyardError as exc:
                    log.warning("loop turn failed: %s", exc.message)
                except Exception:  # the scheduler must outlive one bad turn
                    log.exception("loop turn failed")
        finally:
            ws.close()


class LoopProcess:
    """The scheduler in a process of its own, as `shipyard serve --loop` runs it.

    A retrain (an Optuna search, LightGBM fits, SHAP) in the server's own process would share
    its interpreter lock with the event loop, and the requests answered meanwhile would wait
    for it. The child is started with `spawn` (the server has threads; forking them is
    unsafe), calls `setup_logging` first (a picklable callable: the CLI passes its own), and
    stops when `stop()` is called or the process that started it is gone. If it dies otherwise
    (killed, out of memory), the error is logged and a new one is started, after
    `restart_delay` seconds, doubling up to ten minutes while it keeps dying.

    >>> loop = LoopProcess(settings, spec, interval=60).start()
    >>> loop.stop()
    """

    def __init__(
        self,
        settings: Settings,
        spec: ProjectSpec,
        *,
        interval: float = 60.0,
        actor: str = "shipyard-loop",
        setup_logging: Callable[[], None] | None = None,
        restart_delay: float = 5.0,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._args = (settings, spec, interval, actor, setup_logging, self._stop, os.getpid())
        self._delay = restart_delay
        self.restarts = 0
        self._process = self._new_process()
        self._watcher = threading.Thread(target=self._watch, name="shipyard-loop-watch")
        self._watcher.daemon = True

    def _new_process(self) -> Any:
        return self._context.Process(target=_loop_main, args=self._args, name="shipyard-loop")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> LoopProcess:
        self._process.start()
        self._watcher.start()
        return self

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop after its current step; terminate it after `timeout`."""
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("the retrain loop did not stop within %g s; terminating it", timeout)
            self._process.terminate()
            self._process.join(5)
        if self._watcher.is_alive():
            self._watcher.join(timeout)

    def _watch(self) -> None:
        delay = self._delay
        while True:
            self._process.join()
            if self._stop.wait(0):
                return
            log.error(
                "the retrain loop process %s exited with code %s; starting a new one in %g s",
                self._process.pid,
                self._process.exitcode,
                delay,
            )
            if self._stop.wait(delay):
                return
            self._process = self._new_process()
            self._process.start()
            self.restarts += 1
            delay = min(delay * 2, 600.0)


def _loop_main(
    settings: Settings,
    spec: ProjectSpec,
    interval: float,
    actor: str,
    setup_logging: Callable[[], None] | None,
    stop: _Stop,
    parent: int,
) -> None:
    if setup_logging is not None:
        setup_logging()

    def orphaned() -> None:  # the server is gone (killed, not stopped): stop too
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=orphaned, name="shipyard-loop-parent", daemon=True).start()
    scheduler = Scheduler(
        lambda: Workspace.open(settings, actor=actor), spec, interval=interval, stop=stop
    )
    scheduler._run()
