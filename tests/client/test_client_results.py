"""The client's result types mirror the API's result schemas field for field.

The client cannot import `shipyard.api.schemas` (it would load the whole server), so it keeps
its own copies; this pins them to the server's, so a field added to a schema fails here until
the client has it too.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shipyard.api import schemas
from shipyard.client import resources, results

PAIRS = [
    (results.TokenView, schemas.TokenView),
    (results.TokenCreated, schemas.TokenCreated),
    (results.AuditEventView, schemas.AuditEventView),
    (results.ChainView, schemas.ChainView),
    (results.VersionSummary, schemas.VersionSummary),
    (results.DatasetView, schemas.DatasetView),
    (results.VersionView, schemas.VersionView),
    (results.ProfileView, schemas.ProfileView),
    (results.SchemaChangeView, schemas.datasets.SchemaChangeView),
    (results.ShiftView, schemas.datasets.ShiftView),
    (results.DiffView, schemas.DiffView),
    (results.RunView, schemas.RunView),
    (results.RunDetail, schemas.RunDetail),
    (results.MetricPointView, schemas.MetricPointView),
    (results.ModelVersionView, schemas.ModelVersionView),
    (results.EndpointState, schemas.EndpointState),
    (results.BatchLogged, schemas.runs.BatchLogged),
    (results.IngestView, schemas.datasets.IngestView),
    (results.ValidationView, schemas.datasets.ValidationView),
    (results.ReportView, schemas.monitor.ReportView),
    (results.AlertView, schemas.alerts.AlertView),
    (results.RolloutView, schemas.loop.RolloutView),
    (results.TurnView, schemas.loop.TurnView),
    (results.TurnsView, schemas.loop.TurnsView),
    (results.LoopState, schemas.loop.LoopState),
]

# Operations answering a file (`result=None`): the client method that downloads each.
DOWNLOADS = {
    "/api/v1/datasets/{ref}/download": "datasets.download",
    "/api/v1/models/{ref}/bundle": "models.download",
}


def _fields(model: type[BaseModel]) -> dict[str, tuple[str | None, bool]]:
    return {name: (f.alias, f.is_required()) for name, f in model.model_fields.items()}


@pytest.mark.parametrize(("mine", "theirs"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_a_result_has_the_schemas_fields(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert mine.__name__ == theirs.__name__
    assert _fields(mine) == _fields(theirs)


def test_every_result_schema_of_the_api_has_a_client_type() -> None:
    """Each operation's result is covered (or is a page of a covered item); each download
    (an operation without a result schema) has its client method."""
    from shipyard.api.routes import OPERATIONS

    covered = {theirs for _, theirs in PAIRS}
    missing = set()
    for op in OPERATIONS:
        result = op.result
        if result is None:
            resource, _, method = DOWNLOADS.get(op.path, ".").partition(".")
            cls = getattr(resources, resource.title(), None)
            if op.method != "GET" or not callable(getattr(cls, method, None)):
                missing.add(f"{op.method} {op.path}: a file without a client method")
            continue
        if issubclass(result, schemas.PageResult):
            item = result.model_fields["items"].annotation.__args__[0]  # type: ignore[union-attr]
            result = item
        if result not in covered:
            missing.add(f"{op.method} {op.path}: {result.__name__}")
    assert not missing, sorted(missing)


def test_a_newer_servers_extra_field_is_ignored() -> None:
    view = results.ChainView.model_validate(
        {"ok": True, "events": 1, "head": "h", "problems": [], "added_later": 1}
    )
    assert view.ok
