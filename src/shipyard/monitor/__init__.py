"""Monitor: drift per feature and jointly, from fixed-size window sketches (DESIGN.md §3).

Also the alerts a crossed threshold raises (stored, acknowledged, sent to webhooks) and the
self-contained HTML report.

Alerts are imported eagerly (`shipyard alerts ls` needs nothing else); the webhooks (httpx)
and drift, the sketches and the report, which pull in pandas, SciPy and matplotlib, load on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.lazy import lazy_exports
from shipyard.monitor.alerts import (
    ack_alert,
    alerts_with_keys,
    deliver_alert,
    get_alert,
    list_alerts,
    raise_alert,
)

if TYPE_CHECKING:
    from shipyard.monitor.drift import compare, drift_between
    from shipyard.monitor.html import monitor_html
    from shipyard.monitor.multivariate import domain_classifier
    from shipyard.monitor.sketch import WindowSketch
    from shipyard.monitor.webhooks import check_webhook_url

_LAZY = {
    "compare": "shipyard.monitor.drift",
    "drift_between": "shipyard.monitor.drift",
    "monitor_html": "shipyard.monitor.html",
    "domain_classifier": "shipyard.monitor.multivariate",
    "WindowSketch": "shipyard.monitor.sketch",
    "check_webhook_url": "shipyard.monitor.webhooks",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "WindowSketch",
    "ack_alert",
    "alerts_with_keys",
    "check_webhook_url",
    "compare",
    "deliver_alert",
    "domain_classifier",
    "drift_between",
    "get_alert",
    "list_alerts",
    "monitor_html",
    "raise_alert",
]
