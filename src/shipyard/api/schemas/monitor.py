"""An endpoint's monitor report on the wire: what `shipyard monitor report NAME` shows."""

from __future__ import annotations

from pydantic import Field

from shipyard.api.schemas.common import WireRequest, WireResult
from shipyard.core.records import MonitorReport
from shipyard.core.spec import Duration


class ReportQuery(WireRequest):
    window: Duration | None = Field(
        default=None,
        max_length=20,
        description="The window judged, e.g. 15m, 1h, 1d (default: the spec's monitor.window).",
    )
    history: int = Field(default=24, ge=1, le=1000, description="Windows of history before it.")


class ReportView(WireResult):
    endpoint: str
    report: MonitorReport = Field(
        description="Drift per feature and overall, prediction drift, decay, SLOs, traffic and "
        "the window's alerts (judged with the server's project spec)."
    )
