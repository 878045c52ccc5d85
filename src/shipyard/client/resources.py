"""The client's methods, one class per API resource (`client.runs`, `client.endpoints`, …).

Each method is one operation of `api/routes/`: its path, its query or body as plain keyword
arguments, and its result type. Requests are checked by the server (a 422 names the field), so
the client never disagrees with it. Adding an operation is a few lines:

    def archive(self, name: str) -> DatasetView:
        return self._call("POST", f"/datasets/{q(name)}/archive", DatasetView)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from shipyard.client.pages import Pages
from shipyard.client.results import (
    AuditEventView,
    ChainView,
    DatasetView,
    DiffView,
    EndpointState,
    MetricPointView,
    ModelVersionView,
    ProfileView,
    Result,
    RunDetail,
    RunView,
    TokenCreated,
    TokenView,
    VersionSummary,
    VersionView,
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
    ) -> R:
        data = self._t.call(method, PREFIX + path, query=query, body=body, idempotent=idempotent)
        return result.model_validate(data)

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
