"""Registered models on the wire: versions, one version, aliases and status changes."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import Field

from shipyard.api.schemas.common import ListQuery, PageResult, WireRequest, WireResult
from shipyard.core.records import GateResult, ModelStatus, ModelVersion, Signature


class ModelQuery(ListQuery):
    name: str | None = Field(default=None, max_length=200, description="Only this model.")
    status: ModelStatus | None = None
    alias: str | None = Field(default=None, max_length=100, description="Only versions with it.")


class ModelVersionView(WireResult):
    ref: str = Field(description="NAME@N")
    id: str
    model: str
    version: int
    status: ModelStatus
    aliases: list[str]
    task: Literal["classification", "regression", "clustering"]
    flavor: str
    artifact: str = Field(description="Digest of the signed bundle.")
    run_id: str | None
    dataset_version_id: str | None
    signature: Signature
    metrics: dict[str, float | None]
    gates: list[GateResult]
    documents: list[str] = Field(description="Names of its documents (card, report).")
    description: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, v: ModelVersion) -> ModelVersionView:
        return cls(
            ref=v.ref,
            id=v.id,
            model=v.model,
            version=v.version,
            status=v.status,
            aliases=list(v.aliases),
            task=v.task,
            flavor=v.flavor,
            artifact=v.artifact,
            run_id=v.run_id,
            dataset_version_id=v.dataset_version_id,
            signature=v.signature,
            metrics={k: x if math.isfinite(x) else None for k, x in v.metrics.items()},
            gates=list(v.gates),
            documents=sorted(v.documents),
            description=v.description,
            created_at=v.created_at,
            created_by=v.created_by,
        )


class ModelPage(PageResult):
    items: list[ModelVersionView]


class AliasSet(WireRequest):
    version: int = Field(ge=1, description="The version the alias should name.")


class StatusSet(WireRequest):
    status: ModelStatus
