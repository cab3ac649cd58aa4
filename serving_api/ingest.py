"""HTTP ingest: price events validated by the API, produced to Kafka by the platform's idempotent
producer, acknowledged only once Kafka confirmed every one of them."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from lakehouse.catalog.events import NewsEvent, PriceEvent, ShipmentEvent, StockEvent
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import DeliveryError, EventProducer


class KafkaUnavailable(RuntimeError):
    """Kafka did not confirm the events in time; the client may retry with the same ids."""


class PricePublisher:
    """One producer per application, created on first use and let go by ``close``. Delivery is
    counted per request, so one request's failure is never reported to another; a producer that
    saw a failure is replaced (its failure list is sticky)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: EventProducer | None = None
        self._lock = threading.Lock()

    def _current(self) -> EventProducer:
        with self._lock:
            if self._producer is None or self._producer.failed:
                self._producer = EventProducer(self.settings)
            return self._producer

    def _publish(self, topic: str, messages: list[tuple[str, str]]) -> int:
        """Produce (key, JSON text) ``messages`` to ``topic``; how many Kafka confirmed."""
        producer = self._current()
        confirmed = 0

        def one_more() -> None:
            nonlocal confirmed
            confirmed += 1

        for key, text in messages:
            producer.produce(topic, text, key=key, on_delivered=one_more)
        # only this request's confirmations count, not another request's failure
        with contextlib.suppress(DeliveryError):
            producer.flush(self.settings.api.ingest_timeout_seconds)
        return confirmed

    async def publish(self, events: list[PriceEvent]) -> None:
        """Produce ``events``; raise KafkaUnavailable unless Kafka confirmed all of them."""
        messages = [(event.key, event.to_json()) for event in events]
        await self._confirmed(self.settings.kafka.topics.prices, messages)

    async def publish_supply(self, events: list[StockEvent | ShipmentEvent]) -> None:
        """Produce stock and shipment events to the supply topic; raise KafkaUnavailable
        unless Kafka confirmed all of them."""
        messages = [(event.key, event.to_json()) for event in events]
        await self._confirmed(self.settings.kafka.topics.supply, messages)

    async def publish_news(self, events: list[NewsEvent]) -> None:
        """Produce news headlines to the news topic; KafkaUnavailable unless all confirmed."""
        messages = [(event.key, event.to_json()) for event in events]
        await self._confirmed(self.settings.kafka.topics.news, messages)

    async def review(self, target_event_id: str, text: str) -> None:
        """Produce an operator's decision on a held price to the reviews topic (keyed by the
        held price, so the reviews of one price stay in order)."""
        await self._confirmed(self.settings.kafka.topics.reviews, [(target_event_id, text)])

    def close(self) -> None:
        """Wait up to ``api.ingest_timeout_seconds`` for the delivery of what is still queued,
        then let the producer go (a later publish makes a new one)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(DeliveryError):
                producer.flush(self.settings.api.ingest_timeout_seconds)

    async def _confirmed(self, topic: str, messages: list[tuple[str, str]]) -> None:
        confirmed = await asyncio.to_thread(self._publish, topic, messages)
        if confirmed < len(messages):
            raise KafkaUnavailable(
                f"Kafka confirmed {confirmed} of {len(messages)} events within "
                f"{self.settings.api.ingest_timeout_seconds:g} s; retry with the same event_ids "
                "(duplicates are dropped by event id)"
            )
