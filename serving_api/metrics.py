"""Prometheus metrics of one application instance, and the ASGI middleware that times requests.

Each app has its own registry (tests create many apps in one process). Requests are labelled by
route template (``/api/v1/regions/{province}/summary``), never by the raw path, so the number of
series stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse.catalog.ops_metrics import SERVICE_RESTARTS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DELIVERIES_SECONDS = 5.0  # how long counts read from gold.alert_deliveries are served


class ApiMetrics:
    """The API's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "smartmarket_api_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "smartmarket_api_request_seconds",
            "Time to answer a request, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "smartmarket_api_cache",
            "Prepared-view lookups: hit (current) or miss (rebuilt after a new Delta version)",
            ["view", "result"],
            registry=r,
        )
        self.view_failures = Counter(
            "smartmarket_api_view_failures",
            "Rebuilds of a prepared view that failed (the view kept answering from the previous "
            "versions of its tables)",
            ["view"],
            registry=r,
        )
        self.table_version = Gauge(
            "smartmarket_api_table_version",
            "Delta version of each gold table the API serves (-1: not written yet)",
            ["table"],
            registry=r,
        )
        self.lag = Gauge(
            "smartmarket_api_data_lag_seconds",
            "Seconds between now and the newest observation in gold.price_latest",
            registry=r,
        )
        self.ws_clients = Gauge(
            "smartmarket_api_ws_subscribers",
            "WebSocket clients subscribed to a live feed (alerts, prices)",
            ["feed"],
            registry=r,
        )
        self.alerts_pushed = Counter(
            "smartmarket_api_alerts_pushed", "Alert messages sent to WebSocket clients", registry=r
        )
        self.prices_pushed = Counter(
            "smartmarket_api_prices_pushed", "Price messages sent to WebSocket clients", registry=r
        )
        self.events_ingested = Counter(
            "smartmarket_api_events_ingested",
            "Price events accepted by POST /prices and confirmed by Kafka",
            registry=r,
        )

        # the children of labelled metrics, looked up once per label set (per request, the
        # lookup would cost more than the count)
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._looked_up: dict[tuple[str, str], Counter] = {}

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered: counted by method, route template and status, timed."""
        children = self._answered.get((method, route, status))
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
            self._answered[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def looked_up(self, view: str, result: str) -> None:
        """One lookup of a prepared view: hit, stale or miss."""
        child = self._looked_up.get((view, result))
        if child is None:
            child = self._looked_up[(view, result)] = self.cache.labels(view, result)
        child.inc()

    def watch_deliveries(self, counts: Callable[[], dict[str, int]]) -> None:
        """Alert notifications by outcome, read from gold.alert_deliveries at scrape time (a
        scrape runs in a worker thread), at most every ``DELIVERIES_SECONDS``: a failing
        webhook shows as a growing ``undelivered``."""
        gauge = Gauge(
            "smartmarket_alert_deliveries",
            "Finished alert notifications (all channels) by outcome: delivered or undelivered "
            "after the last retry",
            ["outcome"],
            registry=self.registry,
        )
        read: tuple[float, dict[str, int]] | None = None  # when, what

        def count(outcome: str) -> int:
            nonlocal read
            if read is None or time.monotonic() - read[0] >= DELIVERIES_SECONDS:
                read = (time.monotonic(), counts())
            return read[1][outcome]

        for outcome in ("delivered", "undelivered"):
            gauge.labels(outcome).set_function(lambda o=outcome: count(o))

    def scrape(self) -> bytes:
        """The metrics in Prometheus' text format: blocking (the delivery counts read a
        table), so called from a worker thread."""
        return generate_latest(self.registry)

    def watch_lag(self, newest: Callable[[], float | None]) -> None:
        """Compute the lag at scrape time from ``newest`` (a POSIX time, or None: no data)."""

        def lag() -> float:
            at = newest()
            return float("nan") if at is None else max(0.0, time.time() - at)

        self.lag.set_function(lag)


class RestartCollector(Collector):
    """The keepers' restart counts (``smartmarket_service_restarts_total``), read from their
    files at scrape time: the API serves them for the whole embedded stack."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[CounterMetricFamily]:
        metric = SERVICE_RESTARTS
        family = CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))
        for service, restarts in sorted(self.counts().items()):
            family.add_metric([service], restarts)
        yield family


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task as with BaseHTTPMiddleware): counts and times
    every HTTP request by the template of the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.answered(scope["method"], template, status, time.perf_counter() - began)
