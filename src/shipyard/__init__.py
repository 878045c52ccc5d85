"""Shipyard: from notebook to a secured, monitored production service.

The in-process API for notebooks and scripts:

    import shipyard
    with shipyard.start_run(experiment="churn"):
        shipyard.log_params({"C": 0.1})
        shipyard.log_metric("loss", 0.42, step=1)
    model = shipyard.load_model("models:/credit-risk@champion")
    model.predict(frame)

With SHIPYARD_URL (and SHIPYARD_TOKEN) set, `start_run()` without a `workspace` tracks the run
on that server instead (`client.remote`: buffered, sent once a second).

A Shipyard server's REST API, from anywhere (SHIPYARD_URL, SHIPYARD_TOKEN):

    with shipyard.Client() as client:
        for run in client.runs.search(filter="metrics.auc > 0.8"): ...

Everything else is under the capability packages (`shipyard.data`, `shipyard.train`, …) and the
`shipyard` command.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from shipyard.train import tracking
from shipyard.train.tracking import ActiveRun

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.client.remote import RemoteRun
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


@overload
def start_run(
    experiment: str = ...,
    *,
    name: str | None = ...,
    workspace: Workspace,
    params: Mapping[str, Any] | None = ...,
    tags: Mapping[str, Any] | None = ...,
    seed: int | None = ...,
    parent_id: str | None = ...,
) -> AbstractContextManager[ActiveRun]: ...
@overload
def start_run(
    experiment: str = ...,
    *,
    name: str | None = ...,
    workspace: None = ...,
    params: Mapping[str, Any] | None = ...,
    tags: Mapping[str, Any] | None = ...,
    seed: int | None = ...,
    parent_id: str | None = ...,
) -> AbstractContextManager[ActiveRun | RemoteRun]: ...
def start_run(
    experiment: str = "default",
    *,
    name: str | None = None,
    workspace: Workspace | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    parent_id: str | None = None,
) -> AbstractContextManager[ActiveRun | RemoteRun]:
    """Open a run (`with`); it ends `finished`, `failed` (exception) or `interrupted` (Ctrl-C).

    Tracked in `workspace`, else on the server SHIPYARD_URL names if set, else in the local
    workspace (SHIPYARD_HOME).
    """
    if workspace is None:
        from shipyard.core.settings import Settings

        settings = Settings.load()
        if settings.url:
            from shipyard.client import Client
            from shipyard.client.remote import start_run as remote_run

            client = Client(settings=settings)
            return remote_run(
                experiment, name=name, client=client, params=params, tags=tags, seed=seed,
                parent_id=parent_id, owns_client=True,
            )  # fmt: skip
    return tracking.start_run(
        experiment, name=name, workspace=workspace, params=params, tags=tags, seed=seed,
        parent_id=parent_id,
    )  # fmt: skip


def active_run() -> ActiveRun | RemoteRun:
    """The run of the enclosing `start_run()`, local or remote."""
    # A remote run can be open only if its module was imported: `import shipyard` stays light.
    remote = sys.modules.get("shipyard.client.remote")
    run = remote.current() if remote is not None else None
    return run if run is not None else tracking.active_run()


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
