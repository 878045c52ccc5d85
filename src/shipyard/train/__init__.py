"""Training and experiment tracking (DESIGN.md section 3, train/).

Tracking is imported eagerly (it is what `import shipyard` offers); the trainer, which pulls
in scikit-learn and Optuna, loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.lazy import lazy_exports
from shipyard.train.runs import get_run, metric_history, plot_histories, search_runs
from shipyard.train.tracking import (
    ActiveRun,
    RunLogger,
    active_run,
    create_run,
    end_run,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    start_run,
)

if TYPE_CHECKING:
    from shipyard.train.search import Executor, InProcess, LocalProcesses, TrialResult
    from shipyard.train.trainer import TrainResult, check_spec, train

_LAZY = {
    "Executor": "shipyard.train.search",
    "InProcess": "shipyard.train.search",
    "LocalProcesses": "shipyard.train.search",
    "TrialResult": "shipyard.train.search",
    "TrainResult": "shipyard.train.trainer",
    "check_spec": "shipyard.train.trainer",
    "train": "shipyard.train.trainer",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "ActiveRun",
    "Executor",
    "InProcess",
    "LocalProcesses",
    "RunLogger",
    "TrainResult",
    "TrialResult",
    "active_run",
    "check_spec",
    "create_run",
    "end_run",
    "get_run",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "metric_history",
    "plot_histories",
    "search_runs",
    "set_tag",
    "start_run",
    "train",
]
