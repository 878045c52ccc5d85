"""Shipyard: from notebook to a secured, monitored production service.

The in-process API for notebooks and scripts:

    import shipyard
    with shipyard.start_run(experiment="churn"):
        shipyard.log_params({"C": 0.1})
        shipyard.log_metric("loss", 0.42, step=1)
    model = shipyard.load_model("models:/credit-risk@champion")
    model.predict(frame)

A Shipyard server's REST API, from anywhere (SHIPYARD_URL, SHIPYARD_TOKEN):

    with shipyard.Client() as client:
        for run in client.runs.search(filter="metrics.auc > 0.8"): ...

Everything else is under the capability packages (`shipyard.data`, `shipyard.train`, …) and the
`shipyard` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.train.tracking import (
    active_run,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    start_run,
)

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.registry import LoadedModel
    from shipyard.store.workspace import Workspace

__all__ = [
    "Client",
    "active_run",
    "load_model",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "start_run",
]


def __getattr__(name: str) -> object:
    """`shipyard.Client`, imported on first use: `import shipyard` stays light."""
    if name == "Client":
        from shipyard.client import Client

        return Client
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def load_model(uri: str, *, workspace: Workspace | None = None) -> LoadedModel:
    """Load a registered model: "models:/NAME@ALIAS", "models:/NAME/3" or "NAME@3".

    The artifact's digest and signature are verified before anything is deserialised; a
    version rejected by its gates is refused.
    """
    from shipyard.core.settings import Settings
    from shipyard.registry import load_model as _load
    from shipyard.store.workspace import Workspace

    ws = workspace or Workspace.open(Settings.load())
    try:
        return _load(ws, uri)
    finally:
        if workspace is None:
            ws.close()
