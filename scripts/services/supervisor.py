"""The embedded stack's services in start order, started and stopped together."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator

from lakehouse.config.settings import Settings
from scripts.services.api_server import Api
from scripts.services.base import Service, stop_together
from scripts.services.kafka_broker import KafkaBroker
from scripts.services.mlflow_server import MlflowServer
from scripts.services.mqtt_broker import Mosquitto
from scripts.services.platform_processes import (
    Bridge,
    Devices,
    FirstForecasts,
    NewsFeeds,
    NotifierService,
    Pipeline,
    PriceFeed,
    SupplyFeed,
)
from scripts.services.prometheus_server import PrometheusServer
from scripts.services.spark_cluster import SparkMaster, SparkWorker

SERVICE_TYPES: tuple[type[Service], ...] = (
    KafkaBroker,
    Mosquitto,
    MlflowServer,
    SparkMaster,
    SparkWorker,
    Bridge,
    Devices,
    PriceFeed,
    SupplyFeed,
    NewsFeeds,
    Pipeline,
    FirstForecasts,
    NotifierService,
    Api,
    PrometheusServer,
)


def start_services(starting: list[Service]) -> Iterator[tuple[Service, str]]:
    """Start ``starting``: the instances of a kind one after another (the nodes of a Kafka
    cluster share node 1's storage id), the kinds at once, each once the kinds it ``needs``
    among ``starting`` are up. Yields each service with what its start did, as starts finish.
    A kind whose need failed is not started; the first failure is raised once the other
    starts are done."""
    kinds: dict[type[Service], list[Service]] = {}
    for service in starting:
        kinds.setdefault(type(service), []).append(service)
    finished = {kind: threading.Event() for kind in kinds}
    failed: set[type[Service]] = set()
    outcomes: queue.Queue[tuple[Service, str | Exception]] = queue.Queue()

    def start_kind(kind: type[Service]) -> None:
        try:
            for need in kind.needs:
                if need in finished:
                    finished[need].wait()
            if down := [s.name for need in kind.needs if need in failed for s in kinds[need]]:
                failed.add(kind)
                for service in kinds[kind]:
                    outcomes.put((service, f"not started: {', '.join(down)} did not start"))
                return
            for i, service in enumerate(kinds[kind]):
                try:
                    outcomes.put((service, service.start()))
                except Exception as exc:  # noqa: BLE001 - raised by the caller once all are done
                    failed.add(kind)
                    outcomes.put((service, exc))
                    for later in kinds[kind][i + 1 :]:
                        outcomes.put((later, f"not started: {service.name} did not start"))
                    return
        finally:
            finished[kind].set()

    for kind in kinds:
        threading.Thread(target=start_kind, args=(kind,), name=f"start-{kind.__name__}").start()
    errors: list[Exception] = []
    for _ in starting:
        service, outcome = outcomes.get()
        if isinstance(outcome, Exception):
            errors.append(outcome)
            outcome = "failed"
        yield service, outcome
    if errors:
        raise errors[0]


def stop_services(stopping: list[Service]) -> Iterator[tuple[Service, str]]:
    """Stop ``stopping`` in their order, the nodes of a cluster that ``stops_together`` at once;
    each service with what became of it, as it is stopped."""
    for _, wave in itertools.groupby(
        stopping, key=lambda s: type(s) if s.stops_together else id(s)
    ):
        wave = list(wave)
        yield from zip(wave, stop_together(wave), strict=True)


def services(settings: Settings) -> list[Service]:
    """The services of the embedded default, in start order."""
    return [s for cls in SERVICE_TYPES for s in cls.instances(settings)]
