"""Monitor: drift per feature and jointly, from fixed-size window sketches (DESIGN.md §3).

Also the alerts a crossed threshold raises (stored, acknowledged, sent to webhooks) and the
self-contained HTML report.
"""

from shipyard.monitor.alerts import ack_alert, deliver_alert, get_alert, list_alerts, raise_alert
from shipyard.monitor.drift import compare, drift_between
from shipyard.monitor.html import monitor_html
from shipyard.monitor.multivariate import domain_classifier
from shipyard.monitor.sketch import WindowSketch
from shipyard.monitor.webhooks import check_webhook_url

__all__ = [
    "WindowSketch",
    "ack_alert",
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
