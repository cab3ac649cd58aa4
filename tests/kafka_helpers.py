"""Reading topics back in integration tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from lakehouse.config.settings import Settings
from lakehouse.io.kafka_clients import client_config


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High-water mark of each partition of ``topic``."""
    consumer = Consumer({**client_config(settings), "group.id": "offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def consume(
    settings: Settings,
    topic: str,
    expected: int | None = None,
    since: dict[int, int] | None = None,
    timeout: float = 60.0,
) -> list[tuple[str | None, Any]]:
    """(key, JSON value) of the records of ``topic`` from offsets ``since`` (default: the
    beginning), until ``expected`` were read or the topic stays quiet for two seconds."""
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, (since or {}).get(p, 0)) for p in partitions])
    records: list[tuple[str | None, Any]] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(records) >= expected:
                break
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            if not batch:
                if expected is None and time.monotonic() - quiet_since > 2:
                    break
                continue
            quiet_since = time.monotonic()
            for msg in batch:
                assert msg.error() is None, msg.error()
                key = msg.key().decode() if msg.key() is not None else None
                records.append((key, json.loads(msg.value())))
    finally:
        consumer.close()
    return records
