"""Kafka plumbing shared by the producers, the API and the tools: topic creation, the idempotent
producer and a checked consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.catalog.events import (
    DeadLetter,
    NewsEvent,
    PriceEvent,
    SensorEvent,
    ShipmentEvent,
    StockEvent,
)
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_clients import client_config

log = logging.getLogger(__name__)


def admin_client(settings: Settings, bootstrap: str | None = None) -> AdminClient:
    """Admin client (of the cluster, or only of the ``bootstrap`` broker) that stays silent
    while the broker is unreachable (callers report it)."""
    config = {**client_config(settings), "log_level": 0}
    return AdminClient(config | {"bootstrap.servers": bootstrap} if bootstrap else config)


def kafka_reachable(settings: Settings, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether the cluster answers a metadata request, and a one-line detail."""
    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        return False, f"{settings.kafka.bootstrap}: {exc.args[0].str()}"
    brokers = len(metadata.brokers)
    return brokers > 0, f"{brokers} broker(s) at {settings.kafka.bootstrap}"


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the platform's topics if missing (``kafka.partitions``, ``replicas`` and
    ``min_isr``); return the ones created. Existing topics are left as they are."""
    k = settings.kafka
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in k.topics.all() if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=k.partitions,
                replication_factor=k.replicas,
                config={"min.insync.replicas": str(k.min_isr)},
            )
            for t in missing
        ],
        operation_timeout=timeout,
    )
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_until_served(settings, missing, timeout)
    log.info("topics created", extra={"topics": missing})
    return missing


def topic_layout(settings: Settings, timeout: float = 30.0) -> dict[str, tuple[int, int]]:
    """Partitions and replicas (of partition 0) of each of the platform's topics that exists."""
    topics = admin_client(settings).list_topics(timeout=timeout).topics
    return {
        name: (len(meta.partitions), len(meta.partitions[0].replicas))
        for name in settings.kafka.topics.all()
        if (meta := topics.get(name)) is not None and meta.partitions
    }


def _wait_until_served(settings: Settings, topics: list[str], timeout: float) -> None:
    """Block until every partition of ``topics`` answers an offset request: new partitions need
    a moment before their leader serves them."""
    consumer = Consumer(
        {**client_config(settings), "group.id": "smartmarket-admin", "log_level": 0}
    )
    deadline = time.monotonic() + timeout
    try:
        for topic in topics:
            for partition in range(settings.kafka.partitions):
                while True:
                    try:
                        consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=2)
                        break
                    except KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
    finally:
        consumer.close()


class DeliveryError(RuntimeError):
    """Kafka did not confirm one or more messages."""


class EventProducer:
    """Idempotent producer (``acks=all``, ``enable.idempotence=true``) that checks every delivery
    report: ``flush()`` raises DeliveryError if any message was not confirmed."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.settings = settings
        self._config = {**self.config(settings), **overrides}
        self.delivered = 0
        self.failed: list[str] = []

    @cached_property
    def _producer(self) -> Producer:
        """The Kafka client, made at the first message: a command whose input is refused before
        it sends anything never reaches for the broker (nor logs that it cannot)."""
        return Producer(self._config)

    def _on_delivery(
        self, err: KafkaError | None, msg: Message, then: Callable[[], None] | None
    ) -> None:
        if err is not None:
            self.failed.append(f"{msg.topic()} key={msg.key()!r}: {err.str()}")
            return
        self.delivered += 1
        if then is not None:
            then()

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        """Queue one message; ``on_delivered`` runs (inside ``poll``/``flush``) once Kafka has
        confirmed it — never for a message that failed."""

        def report(err: KafkaError | None, msg: Message) -> None:
            self._on_delivery(err, msg, on_delivered)

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    @staticmethod
    def config(settings: Settings) -> dict[str, Any]:
        """The librdkafka configuration of every producer of the platform."""
        return {
            **client_config(settings),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
        }

    def __len__(self) -> int:
        """Messages still waiting for their delivery report."""
        return len(self._producer)

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports."""
        self._producer.poll(timeout)

    def send(self, event: PriceEvent | SensorEvent | NewsEvent) -> None:
        """Produce one event to its topic, keyed so its series stays in order."""
        topics = self.settings.kafka.topics
        topic = (
            topics.prices
            if isinstance(event, PriceEvent)
            else topics.news
            if isinstance(event, NewsEvent)
            else topics.sensors
        )
        self.produce(topic, event.to_json(), key=event.key)

    def send_all(self, events: Iterable[PriceEvent | SensorEvent | NewsEvent]) -> None:
        for event in events:
            self.send(event)

    def send_supply(self, event: StockEvent | ShipmentEvent) -> None:
        """Produce a stock or shipment event to the supply topic, keyed by its entity ×
        commodity or shipment."""
        self.produce(self.settings.kafka.topics.supply, event.to_json(), key=event.key)

    def send_dead_letter(self, letter: DeadLetter) -> None:
        """Produce input that could not become an event to the dead-letter topic."""
        key = letter.file or letter.mqtt_topic or letter.origin
        self.produce(self.settings.kafka.topics.deadletter, letter.to_json(), key=key)

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for all delivery reports; return how many were delivered in total."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryError(f"{remaining} message(s) still unconfirmed after {timeout}s")
        if self.failed:
            raise DeliveryError(f"{len(self.failed)} message(s) failed: {self.failed[:5]}")
        return self.delivered
