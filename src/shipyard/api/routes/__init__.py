"""The routers of /api/v1, one module per resource; `OPERATIONS` lists every operation."""

from shipyard.api.operation import Operation
from shipyard.api.routes import audit, datasets, endpoints, models, runs, tokens

OPERATIONS: list[Operation] = [
    *tokens.OPERATIONS,
    *audit.OPERATIONS,
    *datasets.OPERATIONS,
    *runs.OPERATIONS,
    *models.OPERATIONS,
    *endpoints.OPERATIONS,
]

__all__ = ["OPERATIONS"]
