"""Records as the silver transforms receive them, for their tests: bronze rows of the given
topics and texts, and price and sensor events to change one field of."""

from __future__ import annotations

from datetime import UTC, datetime

TOPICS = {"market.prices": "price", "market.sensors": "sensor"}
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
BRONZE = (
    "topic string, partition int, offset long, kafka_timestamp timestamp, key string, "
    "value string, ingest_time timestamp, ingest_date date"
)


def price(event_id: str = "p1", **change) -> dict:
    return {
        "event_id": event_id, "schema_version": 1, "event_type": "price", "market_id": "IP-001",
        "commodity": "beras", "price": 14000.0, "unit": "kg", "source": "test",
        "observed_at": T0.isoformat(), "region": "DKI Jakarta", **change,
    }  # fmt: skip


def sensor(event_id: str = "s1", **change) -> dict:
    return {
        "event_id": event_id, "schema_version": 1, "event_type": "sensor", "market_id": "IP-001",
        "device_id": "IP-001-d1", "metric": "temperature_c", "value": 28.0, "source": "dev",
        "observed_at": T0.isoformat(), **change,
    }  # fmt: skip


def bronze(spark, records: list[tuple[str, str]]):
    rows = [
        (topic, 0, offset, T0, None, value, NOW, NOW.date())
        for offset, (topic, value) in enumerate(records)
    ]
    return spark.createDataFrame(rows, BRONZE)
