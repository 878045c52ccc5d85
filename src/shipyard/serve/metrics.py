"""Prometheus metrics of one serving app, in a registry of its own (no process globals).

Labels: `endpoint` and `model` (the version ref that answered, e.g. "credit-risk@3"); requests
refused before a model was chosen (401, 404, 413, …) carry model="". The prediction log's
state (rows pending, written, dropped because its buffer was full, rejected, whether writes
are failing) is read from the log when Prometheus scrapes, so it costs requests nothing.

`shipyard_out_of_range_values_total{endpoint, model, column, rule}` counts the values served
although the model never saw their like in training (`rule="range"`: a number outside the
training data's min-max; `"category"`: an unknown category). A rising count on a column is an
early drift signal, per column, before a monitor window closes; alert on its rate. Under the
endpoint's flag `strict_ranges=on` such requests are refused (422) and counted in
`shipyard_errors` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
_UNSEEN_LOG_SECONDS = 60.0
log = logging.getLogger("shipyard.serve")
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10_000)


class Answered(NamedTuple):
    """The series of one endpoint and model that an answered request updates."""

    requests: Counter  # code="200"
    latency: Histogram
    rows: Counter  # shadow="false"


class LogState(Protocol):
    """What the metrics read of the prediction log (`serve.predlog.PredictionLog`)."""

    @property
    def pending(self) -> int: ...

    written: int
    dropped: int
    rejected: int
    last_error: BaseException | None


class _LogCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        log = self._metrics.log
        if log is None:
            return
        yield GaugeMetricFamily(
            "shipyard_prediction_log_pending_rows",
            "Rows answered and accepted by the prediction log, not yet written.",
            value=log.pending,
        )
        for name, value, text in (
            ("written_rows", log.written, "Rows written to the prediction log."),
            ("dropped_rows", log.dropped, "Rows not logged: the log's buffer was full."),
            ("rejected_rows", log.rejected, "Rows left out: they could not be stored."),
        ):
            yield CounterMetricFamily(f"shipyard_prediction_log_{name}", text, value=value)
        yield GaugeMetricFamily(
            "shipyard_prediction_log_failing",
            "1 while the log's last write failed (its rows are kept and retried), else 0.",
            value=0 if log.last_error is None else 1,
        )


class Metrics:
    """The app's counters and histograms, and their Prometheus text rendering.

    `log`: the prediction log whose state `/metrics` shows (set by the runtime once open).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._answered: dict[tuple[str, str], Answered] = {}
        self._unseen: dict[tuple[str, ...], tuple[float, int]] = {}  # last logged, count since
        self.log: LogState | None = None
        r = self.registry
        r.register(_LogCollector(self))
        self.requests = Counter(
            "shipyard_requests",
            "Prediction requests answered, by endpoint, model version and HTTP status.",
            ["endpoint", "model", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            "Time from reading the request to the response, by endpoint and model version.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "shipyard_errors",
            "Failed prediction requests, by endpoint, model version and error class.",
            ["endpoint", "model", "error"],
            registry=r,
        )
        self.rows = Counter(
            "shipyard_predicted_rows",
            "Rows predicted, by endpoint and model version (shadow copies included).",
            ["endpoint", "model", "shadow"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "shipyard_batch_rows",
            "Rows per micro-batch sent to a model version.",
            ["model"],
            buckets=_ROW_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "shipyard_batch_requests",
            "Requests merged into one micro-batch, by model version.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.shadow_errors = Counter(
            "shipyard_shadow_errors",
            "Shadow predictions that failed (never visible to clients).",
            ["endpoint", "model"],
            registry=r,
        )
        self.shadows_dropped = Counter(
            "shipyard_shadows_dropped",
            "Shadow copies not sent because too many were already in flight.",
            ["endpoint"],
            registry=r,
        )
        self.models_loaded = Gauge(
            "shipyard_models_loaded", "Model versions loaded and compiled.", registry=r
        )
        self.route_reloads = Counter(
            "shipyard_route_reloads",
            "Endpoint routing changes applied without a restart.",
            ["endpoint"],
            registry=r,
        )
        self.out_of_range = Counter(
            "shipyard_out_of_range_values",
            "Values served that lie outside what the model saw in training, by endpoint, model "
            "version, column and rule (range: outside the min-max; category: unknown).",
            ["endpoint", "model", "column", "rule"],
            registry=r,
        )
        self.canary_rollbacks = Counter(
            "shipyard_canary_rollbacks",
            "Canaries rolled back automatically by their guard.",
            ["endpoint"],
            registry=r,
        )

    def answered(self, endpoint: str, model: str) -> Answered:
        """The series one answered request updates, looked up once per endpoint and model
        (`labels()` takes a lock and builds a key on every call)."""
        key = (endpoint, model)
        series = self._answered.get(key)
        if series is None:
            series = Answered(
                self.requests.labels(endpoint, model, "200"),
                self.latency.labels(endpoint, model),
                self.rows.labels(endpoint, model, "false"),
            )
            if len(self._answered) >= 10_000:  # endpoints and versions come and go
                self._answered.clear()
            self._answered[key] = series
        return series

    def unseen(self, endpoint: str, model: str, warnings: list[dict[str, Any]]) -> None:
        """Count a request's out-of-range values (`Batch.warnings`: one entry per column and
        rule, with its count and first example) and log them: at most once a minute per
        endpoint, column and rule, with the count since, so drifting traffic does not flood
        the server log."""
        now = time.monotonic()
        for warning in warnings:
            labels = (endpoint, model, warning["column"], warning["rule"])
            self.out_of_range.labels(*labels).inc(warning["count"])
            since, count = self._unseen.get(labels, (0.0, 0))
            count += warning["count"]
            if now - since < _UNSEEN_LOG_SECONDS:
                self._unseen[labels] = (since, count)
                continue
            self._unseen[labels] = (now, 0)
            what = "outside the training range" if warning["rule"] == "range" else "unknown"
            log.warning(
                "endpoint %s (%s): %d value(s) of column %r %s served (e.g. %r); "
                "shipyard_out_of_range_values_total counts them",
                endpoint,
                model,
                count,
                warning["column"],
                what,
                warning["value"],
            )

    def render(self) -> tuple[bytes, str]:
        """(body, content type) in the Prometheus text format."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
