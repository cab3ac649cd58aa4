"""The real embedded Kafka broker: idempotent produce, ordered consume per key."""

import json
import uuid
from collections import defaultdict

from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.io.kafka_clients import client_config
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from tests.kafka_helpers import consume


def test_platform_topics_exist(kafka, settings):
    topics = AdminClient(client_config(settings)).list_topics(timeout=10)
    for name in settings.kafka.topics.all():
        assert len(topics.topics[name].partitions) == settings.kafka.partitions
    assert ensure_topics(settings) == []  # idempotent


def test_thousand_keyed_messages_come_back_in_order_per_key(kafka, settings):
    topic = f"test.order.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()

    producer = EventProducer(settings)
    keys = [f"market-{i}:beras" for i in range(10)]
    for seq in range(1000):
        key = keys[seq % len(keys)]
        producer.produce(topic, json.dumps({"key": key, "seq": seq}).encode(), key=key)
    assert producer.flush() == 1000

    seen: dict[str, list[int]] = defaultdict(list)
    for key, body in consume(settings, topic, expected=1000):
        assert key == body["key"]
        seen[key].append(body["seq"])
    received = sum(len(seqs) for seqs in seen.values())
    assert received == 1000
    assert set(seen) == set(keys)
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), f"out of order for {key}"
        assert len(seqs) == 100
