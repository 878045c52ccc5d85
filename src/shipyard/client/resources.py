"""The client's methods, one class per API resource (`client.runs`, `client.endpoints`, …).

Each method is one operation of `api/routes/`: its path, its query or body as plain keyword
arguments, and its result type. Requests are checked by the server (a 422 names the field), so
the client never disagrees with it. Adding an operation is a few lines:

    def archive(self, name: str) -> DatasetView:
        return self._call("POST", f"/datasets/{q(name)}/archive", DatasetView)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from shipyard.client.files import Downloaded, Source, opened, receiver
from shipyard.client.pages import Pages
from shipyard.client.results import (
    AlertView,
    AuditEventView,
    BatchLogged,
    ChainView,
    DatasetView,
    DiffView,
    EndpointState,
    IngestView,
    LoopState,
    MetricPointView,
    ModelVersionView,
    ProfileView,
    ReportView,
    Result,
    RunDetail,
    RunView,
    TokenCreated,
    TokenView,
    TurnsView,
    ValidationView,
    VersionSummary,
    VersionView,
    metric_wire,
)
from shipyard.client.transport import Transport

R = TypeVar("R", bound=Result)
PREFIX = "/api/v1"


def q(segment: str | int) -> str:
    """A path segment, escaped: a name can never reach another route."""
    return quote(str(segment), safe="")


class Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _call(
        self,
        method: str,
        path: str,
        result: type[R],
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
    ) -> R:
        data = self._t.call(
            method, PREFIX + path, query=query, body=body, idempotent=idempotent, timeout=timeout
        )
        return result.model_validate(data)

    def _upload(self, path: str, source: Source, result: type[R], query: dict[str, Any]) -> R:
        """POST the file's bytes, streamed (sent once: the file can be read only once)."""
        with opened(source) as (fh, name):
            query = {**query, "filename": query.get("filename") or name}
            headers = {"content-type": "application/octet-stream"}  # format: from the name
            data = self._t.call("POST", PREFIX + path, query=query, content=fh, headers=headers)
        return result.model_validate(data)

    def _download(self, path: str, dest: str | os.PathLike[str], what: str) -> Downloaded:
        return self._t.download(PREFIX + path, receiver(dest, what))

    def _list(self, path: str, item: type[R], **query: Any) -> Pages[R]:
        return Pages(
            lambda paging: self._t.call("GET", PREFIX + path, query={**query, **paging}), item
        )


class Tokens(Resource):
    """API tokens (admin)."""

    def list(self, *, include_revoked: bool = False) -> Pages[TokenView]:
        return self._list("/tokens", TokenView, include_revoked=include_revoked)

    def create(self, name: str, role: str) -> TokenCreated:
        """A new token; `.secret` is in this answer only. Not retried (a replay makes two)."""
        return self._call("POST", "/tokens", TokenCreated, body={"name": name, "role": role})

    def revoke(self, token_id: str) -> TokenView:
        return self._call("DELETE", f"/tokens/{q(token_id)}", TokenView)


class Audit(Resource):
    """The audit log (viewer)."""

    def log(
        self, *, action: str | None = None, object_id: str | None = None
    ) -> Pages[AuditEventView]:
        """Events, newest first; `action` is a prefix ("endpoint." for every endpoint change)."""
        return self._list("/audit", AuditEventView, action=action, object_id=object_id)

    def verify(self, *, head: str | None = None) -> ChainView:
        """The chain check; `head` (a hash kept earlier) also detects events cut from the end."""
        return self._call("GET", "/audit/verify", ChainView, query={"head": head})


class Datasets(Resource):
    """Datasets and their versions (viewer). `version` is N or "latest"."""

    def list(self) -> Pages[DatasetView]:
        return self._list("/datasets", DatasetView)

    def get(self, name: str) -> DatasetView:
        return self._call("GET", f"/datasets/{q(name)}", DatasetView)

    def versions(self, name: str) -> Pages[VersionSummary]:
        return self._list(f"/datasets/{q(name)}/versions", VersionSummary)

    def show(self, name: str, version: int | str = "latest") -> VersionView:
        return self._call("GET", f"/datasets/{q(name)}/versions/{q(version)}", VersionView)

    def profile(self, name: str, version: int | str = "latest") -> ProfileView:
        path = f"/datasets/{q(name)}/versions/{q(version)}/profile"
        return self._call("GET", path, ProfileView)

    def diff(self, name: str, before: int | str, after: int | str = "latest") -> DiffView:
        """What changed from `before` to `after` (N, "latest", or another dataset's NAME@N)."""
        query = {"before": str(before), "after": str(after)}
        return self._call("GET", f"/datasets/{q(name)}/diff", DiffView, query=query)

    def upload(
        self,
        source: Source,
        name: str,
        *,
        target: str | None = None,
        id: str | None = None,  # the API's name for it
        time: str | None = None,
        sensitive: Sequence[str] = (),
        clean: Sequence[Mapping[str, Any]] = (),
        allow: bool = False,
        format: Literal["csv", "parquet", "jsonl"] | None = None,
        filename: str | None = None,
    ) -> IngestView:
        """Ingest a file (a path, or a binary file open for reading) as the next version of
        dataset `name`, as `shipyard data ingest` does; the file is streamed, never read whole.

        `.created` is False when the same data already is a version (that version is
        answered). A file breaking a blocking rule of the contract raises `ValidationFailed`
        with the report in `details["report"]` and stores nothing (unless `allow`). The format
        comes from `format`, else the file name's suffix (`filename` names a nameless file).
        Sent once: an upload is never retried."""
        query: dict[str, Any] = {
            "target": target,
            "id": id,
            "time": time,
            "sensitive": list(sensitive) or None,
            "clean": json.dumps([dict(c) for c in clean]) if clean else None,
            "allow": allow or None,
            "format": format,
            "filename": filename,
        }
        return self._upload(f"/datasets/{q(name)}/versions", source, IngestView, query)

    def validate(
        self,
        source: Source,
        against: str,
        *,
        format: Literal["csv", "parquet", "jsonl"] | None = None,
        filename: str | None = None,
    ) -> ValidationView:
        """Check a file against the contract of version `against` (NAME or NAME@N), storing
        nothing; a blocking violation raises `ValidationFailed` with `details["report"]`."""
        query = {"against": against, "format": format, "filename": filename}
        return self._upload("/datasets/validate", source, ValidationView, query)

    def download(self, ref: str, dest: str | os.PathLike[str]) -> Downloaded:
        """Version `ref` (NAME, NAME@N, NAME@latest) as Parquet to `dest` (a file, or a
        directory for NAME-N.parquet), streamed; raises `Integrity` (and leaves `dest` as it
        was) when what arrived does not match the version's sha256."""
        return self._download(f"/datasets/{q(ref)}/download", dest, f"dataset version {ref}")


class Runs(Resource):
    """Tracked runs (viewer)."""

    def search(
        self,
        *,
        experiment: str | None = None,
        filter: str | None = None,  # the API's name for it
        order_by: str | None = None,
        parent_id: str | None = None,
        trials: bool = False,
    ) -> Pages[RunView]:
        """Runs matching `filter` ("metrics.auc > 0.8 and params.model = 'lgbm'"), newest
        first unless `order_by` ("metrics.auc desc"); search trials only with `trials` or
        `parent_id`."""
        return self._list(
            "/runs",
            RunView,
            experiment=experiment,
            filter=filter,
            order_by=order_by,
            parent_id=parent_id,
            trials=trials,
        )

    def get(self, run_id: str) -> RunDetail:
        return self._call("GET", f"/runs/{q(run_id)}", RunDetail)

    def metric_history(self, run_id: str, key: str) -> Pages[MetricPointView]:
        return self._list(f"/runs/{q(run_id)}/metrics/{q(key)}", MetricPointView)

    def create(
        self,
        experiment: str,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_id: str | None = None,
        seed: int | None = None,
        heartbeat: bool = True,
    ) -> RunView:
        """A new running run (scientist). With `heartbeat`, the server marks it killed once no
        `log` came for a while (`log(run_id)` with nothing beats). Sent once: a replay after a
        lost answer would make a second run."""
        body = {
            "experiment": experiment,
            "name": name,
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            "parent_id": parent_id,
            "seed": seed,
            "heartbeat": heartbeat,
        }
        return self._call("POST", "/runs", RunView, body=body)

    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | Iterable[Point] = (),
        *,
        step: int | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> BatchLogged:
        """Log a batch in one transaction (all of it or, on any error, none of it).

        `metrics` is {key: value} (each at `step`, default the key's next step) or points
        (key, value), (key, value, step) or (key, value, step, timestamp). Values are floats;
        NaN and ±inf are kept. Logging to an ended run raises `Conflict`.

        Sent once: the API has no batch id to recognise a replay, so a batch whose answer was
        lost may or may not be stored (read the run back before sending it again)."""
        body = {
            "metrics": _points(metrics, step),
            "params": dict(params or {}),
            "tags": dict(tags or {}),
        }
        return self._call("POST", f"/runs/{q(run_id)}/log", BatchLogged, body=body)

    def end(
        self,
        run_id: str,
        status: Literal["finished", "failed", "killed", "interrupted"] = "finished",
        note: str | None = None,
    ) -> RunView:
        """End a running run; `Conflict` if it has already ended. Sent once."""
        body = {"status": status, "note": note}
        return self._call("POST", f"/runs/{q(run_id)}/end", RunView, body=body)


Point = (
    tuple[str, float]
    | tuple[str, float, int | None]
    | tuple[str, float, int | None, datetime | None]
)


def _points(metrics: Mapping[str, float] | Iterable[Point], step: int | None) -> list[Any]:
    """Metric points as the API takes them: NaN and ±inf as its strings."""
    if isinstance(metrics, Mapping):
        return [{"key": k, "value": metric_wire(v), "step": step} for k, v in metrics.items()]
    points = []
    for key, value, *rest in metrics:
        at: datetime | None = rest[1] if len(rest) > 1 else None  # type: ignore[assignment]
        points.append(
            {
                "key": key,
                "value": metric_wire(value),
                "step": rest[0] if rest else step,
                "timestamp": at.isoformat() if at is not None else None,
            }
        )
    return points


class Models(Resource):
    """Registered model versions: read (viewer), aliases and status (scientist)."""

    def list(
        self, *, name: str | None = None, status: str | None = None, alias: str | None = None
    ) -> Pages[ModelVersionView]:
        return self._list("/models", ModelVersionView, name=name, status=status, alias=alias)

    def get(self, name: str, version: int | str = "latest") -> ModelVersionView:
        """A version: N, an alias such as "champion", or "latest"."""
        return self._call("GET", f"/models/{q(name)}/versions/{q(version)}", ModelVersionView)

    def alias(self, name: str, alias: str, version: int) -> ModelVersionView:
        """Point `alias` at version `version` (a rejected version can never be champion)."""
        path = f"/models/{q(name)}/aliases/{q(alias)}"
        return self._call("PUT", path, ModelVersionView, body={"version": version})

    def remove_alias(self, name: str, alias: str) -> ModelVersionView:
        """Remove `alias`; answers the version it pointed at."""
        return self._call("DELETE", f"/models/{q(name)}/aliases/{q(alias)}", ModelVersionView)

    def set_status(self, name: str, version: int | str, status: str) -> ModelVersionView:
        path = f"/models/{q(name)}/versions/{q(version)}/status"
        return self._call("PUT", path, ModelVersionView, body={"status": status})

    def download(self, ref: str, dest: str | os.PathLike[str]) -> Downloaded:
        """Version `ref`'s signed bundle (NAME, NAME@N, NAME@ALIAS) as a zip to `dest` (a file,
        or a directory for NAME-N.zip), streamed; raises `Integrity` (and leaves `dest` as it
        was) when what arrived does not match the bundle's sha256. The manifest's signature is
        the workspace's, checked when the workspace loads the bundle."""
        return self._download(f"/models/{q(ref)}/bundle", dest, f"model bundle {ref}")


Weighted = Mapping[str, Any] | tuple[str, float]


class Endpoints(Resource):
    """Endpoints' routing: read (viewer), change (deployer).

    Every change takes the `revision` last read (`get(name).revision`) and answers the new
    state; if someone else changed the endpoint since, it raises `Conflict` naming the current
    revision and changes nothing. Changes are retried like GETs: a replay is refused (409).
    """

    def list(self) -> Pages[EndpointState]:
        return self._list("/endpoints", EndpointState)

    def get(self, name: str) -> EndpointState:
        return self._call("GET", f"/endpoints/{q(name)}", EndpointState)

    def create(self, name: str, model: str) -> EndpointState:
        """A new endpoint whose champion is the version `model` (NAME@N or NAME@ALIAS) names now."""
        body = {"name": name, "model": model}
        return self._call("POST", "/endpoints", EndpointState, body=body)

    def route(
        self,
        name: str,
        *,
        revision: int,
        challengers: Iterable[Weighted] = (),
        shadows: Iterable[str] = (),
        canary: Mapping[str, Any] | str | None = None,
    ) -> EndpointState:
        """The route becomes exactly this: `challengers` as ("credit@2", 10) pairs (percent of
        traffic) or {"model", "weight"}, `shadows` as model refs, `canary` as a model ref or
        {"model", "steps", "guard"}."""
        body = {
            "revision": revision,
            "challengers": [
                {"model": c[0], "weight": c[1]} if isinstance(c, tuple) else dict(c)
                for c in challengers
            ],
            "shadows": list(shadows),
            "canary": {"model": canary} if isinstance(canary, str) else canary,
        }
        return self._call("PUT", f"/endpoints/{q(name)}/route", EndpointState, body=body)

    def set_champion(self, name: str, model: str, *, revision: int) -> EndpointState:
        body = {"revision": revision, "model": model}
        return self._call("PUT", f"/endpoints/{q(name)}/champion", EndpointState, body=body)

    def set_flags(
        self, name: str, flags: Mapping[str, str | None], *, revision: int
    ) -> EndpointState:
        """Set flags (explain, log_inputs, strict_ranges: on|off; pin: a model ref); None drops."""
        body = {"revision": revision, "flags": dict(flags)}
        path = f"/endpoints/{q(name)}/flags"
        return self._call("PATCH", path, EndpointState, body=body, idempotent=True)

    def report(self, name: str, *, window: str | None = None, history: int = 24) -> ReportView:
        """The monitor report of the endpoint's champion over the latest `window` (e.g. "1h";
        default: the server spec's), with `history` windows before it. Raises no alert."""
        query = {"window": window, "history": history}
        return self._call("GET", f"/endpoints/{q(name)}/report", ReportView, query=query)

    def promote_canary(self, name: str, *, revision: int) -> EndpointState:
        return self._canary(name, "promote", revision, None)

    def rollback_canary(self, name: str, reason: str, *, revision: int) -> EndpointState:
        return self._canary(name, "rollback", revision, reason)

    def stop_canary(self, name: str, reason: str | None = None, *, revision: int) -> EndpointState:
        return self._canary(name, "stop", revision, reason)

    def _canary(self, name: str, action: str, revision: int, reason: str | None) -> EndpointState:
        body = {"revision": revision, "action": action, "reason": reason}
        path = f"/endpoints/{q(name)}/canary"
        return self._call("POST", path, EndpointState, body=body, idempotent=True)


class Alerts(Resource):
    """Monitoring alerts: read (viewer), acknowledge (deployer)."""

    def list(self, *, endpoint: str | None = None, open: bool = True) -> Pages[AlertView]:
        """Alerts, newest first: the open ones unless `open` is False."""
        return self._list("/alerts", AlertView, endpoint=endpoint, open=open)

    def ack(self, alert_id: str) -> AlertView:
        """Acknowledge an alert; again changes nothing (so it is retried)."""
        return self._call("POST", f"/alerts/{q(alert_id)}/ack", AlertView, idempotent=True)


class Loop(Resource):
    """The retrain loop: an endpoint's state (viewer); act on it (deployer)."""

    def run_once(
        self, endpoint: str | None = None, *, trials: int | None = None, timeout: float = 600.0
    ) -> TurnsView:
        """One turn now (every endpoint of the server's project, or `endpoint`), answered when
        done, a retrain included: hence the long `timeout`. Sent once (a replay could retrain
        twice). The server needs a project spec (`NotSupported` without)."""
        body = {"endpoint": endpoint, "trials": trials}
        return self._call("POST", "/loop/run-once", TurnsView, body=body, timeout=timeout)

    def status(self, endpoint: str, *, limit: int = 10) -> LoopState:
        """Whether the loop may act on `endpoint`, and its latest `limit` rollouts."""
        return self._call("GET", f"/loop/{q(endpoint)}", LoopState, query={"limit": limit})

    def stop(self, endpoint: str, reason: str | None = None) -> LoopState:
        """Halt the endpoint's rollout (the champion keeps serving); with none, pause the loop.
        Sent once (a replay after a stop would pause)."""
        body = {"reason": reason}
        return self._call("POST", f"/loop/{q(endpoint)}/stop", LoopState, body=body)

    def pause(self, endpoint: str, reason: str | None = None) -> LoopState:
        """Switch the loop off for `endpoint` (still watched, not retrained); retried: a replay
        finds it paused."""
        path = f"/loop/{q(endpoint)}/pause"
        return self._call("POST", path, LoopState, body={"reason": reason}, idempotent=True)

    def resume(self, endpoint: str) -> LoopState:
        """Switch the loop back on for `endpoint`; retried: a replay finds it on."""
        return self._call("POST", f"/loop/{q(endpoint)}/resume", LoopState, idempotent=True)
