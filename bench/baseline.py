"""The baseline every benchmark prints next to its numbers: the raw confluent-kafka produce
rate of the same payloads, with the platform's producer configuration and nothing else."""

from __future__ import annotations

import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.config.settings import Settings
from lakehouse.io.kafka_clients import client_config
from lakehouse.io.kafka_io import EventProducer

WARM_UP = 1000


def raw_produce_rate(settings: Settings, payloads: list[tuple[bytes, str]]) -> float:
    """Messages/s for producing ``payloads`` (value, key) to a fresh topic of their own, after a
    warm-up (connection, producer id, metadata) that is not timed."""
    topic = f"{settings.kafka.topics.prices}.raw"
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, settings.kafka.partitions, 1)])[topic].result()
    producer = Producer(EventProducer.config(settings))
    for value, key in payloads[:WARM_UP]:
        producer.produce(topic, value, key)
    producer.flush()
    began = time.monotonic()
    for value, key in payloads:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)
    producer.flush()
    return len(payloads) / (time.monotonic() - began)
