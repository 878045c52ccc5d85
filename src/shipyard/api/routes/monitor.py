"""/api/v1/endpoints/{name}/report (viewer): the monitor report `shipyard monitor report NAME`
shows, judged with the server's project spec (the monitor's defaults without one). Reading it
raises no alert: the loop and `monitor watch` do."""

from __future__ import annotations

from shipyard.api.access import READ
from shipyard.api.operation import PREFIX, Call, Operation
from shipyard.api.schemas.monitor import ReportQuery, ReportView
from shipyard.core.spec import parse_duration


def report(call: Call) -> ReportView:
    from shipyard.loop.watch import endpoint_report  # pandas, SciPy, the models: on first use

    q: ReportQuery = call.query
    name = call.path["name"]
    window = parse_duration(q.window, what="window") if q.window else None
    found = endpoint_report(call.ws, name, call.spec, window=window, history=q.history)
    return ReportView(endpoint=name, report=found)


OPERATIONS = [
    Operation(
        "GET", f"{PREFIX}/endpoints/{{name}}/report", report, READ,
        "Drift, decay and SLOs of the endpoint's champion over the latest window, with history.",
        result=ReportView, query=ReportQuery, errors=(404,), tag="monitor",
    ),
]  # fmt: skip
