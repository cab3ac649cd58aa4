"""HTTP ingest: price events validated by the API, produced to Kafka by the platform's idempotent
producer, acknowledged only once Kafka confirmed every one of them."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from lakehouse.events import PriceEvent
from lakehouse.settings import Settings
from producers.kafka_io import DeliveryError, EventProducer


class KafkaUnavailable(RuntimeError):
    """Kafka did not confirm the events in time; the client may retry with the same ids."""


class PricePublisher:
    """One producer per application, created on first use. Delivery is counted per request, so
    one request's failure is never reported to another; a producer that saw a failure is
    replaced (its failure list is sticky)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: EventProducer | None = None
        self._lock = threading.Lock()

    def _current(self) -> EventProducer:
        with self._lock:
            if self._producer is None or self._producer.failed:
                self._producer = EventProducer(self.settings)
            return self._producer

    def _publish(self, events: list[PriceEvent]) -> int:
        producer = self._current()
        confirmed = 0

        def one_more() -> None:
            nonlocal confirmed
            confirmed += 1

        topic = self.settings.kafka.topics.prices
        for event in events:
            producer.produce(topic, event.to_json(), key=event.key, on_delivered=one_more)
        # only this request's confirmations count, not another request's failure
        with contextlib.suppress(DeliveryError):
            producer.flush(self.settings.api.ingest_timeout_seconds)
        return confirmed

    async def publish(self, events: list[PriceEvent]) -> None:
        """Produce ``events``; raise KafkaUnavailable unless Kafka confirmed all of them."""
        confirmed = await asyncio.to_thread(self._publish, events)
        if confirmed < len(events):
            raise KafkaUnavailable(
                f"Kafka confirmed {confirmed} of {len(events)} events within "
                f"{self.settings.api.ingest_timeout_seconds:g} s; retry with the same event_ids "
                "(duplicates are dropped by event id)"
            )
