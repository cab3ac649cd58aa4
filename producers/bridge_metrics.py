"""The MQTT bridge's Prometheus metrics (names: ``lakehouse.catalog.ops_metrics``), served on
``bridge_metrics.port``: the bridge's own counts and the broker's numbers.

Mosquitto has no Prometheus endpoint; it publishes its numbers as retained messages under
``$SYS/broker/`` every ``sys_interval`` seconds (the embedded broker: ``scripts.services``). The
bridge subscribes to them on the connection it already has and keeps the last value of each; a
scrape reads them, so they are as fresh as the broker's last ``$SYS`` update. While the bridge is
disconnected it serves none of them (they would be stale), only its own counts.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.settings import Settings

log = logging.getLogger(__name__)

#: the ``$SYS`` topic of each broker number (Mosquitto 2); other ``$SYS`` topics are ignored
SYS_TOPICS: dict[str, m.Metric] = {
    "$SYS/broker/clients/connected": m.BROKER_CLIENTS_CONNECTED,
    "$SYS/broker/publish/messages/received": m.BROKER_MESSAGES_RECEIVED,
    "$SYS/broker/publish/messages/sent": m.BROKER_MESSAGES_SENT,
    "$SYS/broker/publish/messages/dropped": m.BROKER_MESSAGES_DROPPED,
    "$SYS/broker/store/messages/count": m.BROKER_MESSAGES_STORED,
    "$SYS/broker/bytes/received": m.BROKER_BYTES_RECEIVED,
    "$SYS/broker/bytes/sent": m.BROKER_BYTES_SENT,
    "$SYS/broker/uptime": m.BROKER_UPTIME,
}


def broker_sample(topic: str, payload: bytes) -> tuple[m.Metric, float] | None:
    """The metric and value of one ``$SYS`` message — its payload's leading number (``"42"``,
    ``"3600 seconds"``); None for a topic that is not one of ``SYS_TOPICS`` or a payload
    without a finite number."""
    metric = SYS_TOPICS.get(topic)
    if metric is None:
        return None
    try:
        value = float(payload.decode("ascii").split()[0])
    except (UnicodeDecodeError, IndexError, ValueError):
        return None
    return (metric, value) if math.isfinite(value) else None


def metric_family(metric: m.Metric, value: float) -> Family:
    """One unlabelled sample of ``metric`` as the family its kind is."""
    family = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
    return family(metric.name, metric.help, value=value)


class BridgeMetrics(Collector):
    """The bridge's metrics in a registry of their own, collected at scrape time: ``own()``
    (the bridge's counts, asked then) and the broker's last ``$SYS`` numbers."""

    def __init__(self, own: Callable[[], Mapping[m.Metric, float]]) -> None:
        self.own = own
        self._broker: dict[m.Metric, float] = {}
        self._lock = threading.Lock()  # the MQTT loop writes, the HTTP server's thread reads
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def broker_message(self, topic: str, payload: bytes) -> None:
        """Keep the number of a ``$SYS`` message; one that is none is ignored."""
        sample = broker_sample(topic, payload)
        if sample is None:
            log.debug("$SYS message ignored", extra={"topic": topic})
            return
        with self._lock:
            self._broker[sample[0]] = sample[1]

    def forget_broker(self) -> None:
        """Drop the broker's numbers (the connection is gone: they would be stale)."""
        with self._lock:
            self._broker.clear()

    def collect(self) -> Iterator[Family]:
        with self._lock:
            broker = dict(self._broker)
        for metric, value in (*self.own().items(), *broker.items()):
            yield metric_family(metric, value)


def serve(metrics: BridgeMetrics, settings: Settings) -> WSGIServer | None:
    """Serve ``metrics`` on ``bridge_metrics``'s address (None when disabled); the caller
    shuts the server down."""
    config = settings.bridge_metrics
    if not config.enabled:
        return None
    server, _ = start_http_server(config.port, config.host, registry=metrics.registry)
    log.info("bridge metrics served", extra={"host": config.host, "port": config.port})
    return server
