"""The routers of /api/v1, one module per resource; `OPERATIONS` lists every operation."""

from shipyard.api.operation import Operation
from shipyard.api.routes import (
    alerts,
    audit,
    datasets,
    endpoints,
    loop,
    models,
    monitor,
    runs,
    tokens,
)

OPERATIONS: list[Operation] = [
    *tokens.OPERATIONS,
    *audit.OPERATIONS,
    *datasets.OPERATIONS,
    *runs.OPERATIONS,
    *models.OPERATIONS,
    *endpoints.OPERATIONS,
    *monitor.OPERATIONS,
    *alerts.OPERATIONS,
    *loop.OPERATIONS,
]

__all__ = ["OPERATIONS"]
