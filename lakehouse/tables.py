"""Table registry: every Delta table of the lakehouse, its layer, location and meaning.

A table lives at ``<lakehouse_root>/<layer>/<name>``; its streaming checkpoint (if a query
writes it) at ``<checkpoint_root>/<layer>/<name>``. Code never builds these paths by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lakehouse.settings import Settings


class Layer(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"


@dataclass(frozen=True)
class Table:
    layer: Layer
    name: str
    description: str
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # what identifies a row (gold tables are upserted on it)
    schema: str = ""  # DDL of tables that must exist before their first write

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    def path(self, settings: Settings) -> Path:
        return settings.paths.lakehouse_root / self.layer / self.name

    def checkpoint(self, settings: Settings) -> Path:
        return settings.paths.checkpoint_root / self.layer / self.name


BRONZE_EVENTS = Table(
    Layer.bronze,
    "market_events",
    "Raw Kafka records of every topic, untouched: value as text plus topic, partition, offset, "
    "Kafka timestamp and ingest time.",
    partition_by=("ingest_date",),
    schema="topic string, partition int, offset bigint, kafka_timestamp timestamp, key string, "
    "value string, ingest_time timestamp, ingest_date date",
)
SILVER_PRICES = Table(
    Layer.silver,
    "prices",
    "Valid price events: typed, unit-normalised (IDR per catalogue unit), with statistical "
    "flags, rule details and Kafka lineage.",
    partition_by=("observed_date",),
)
SILVER_SENSORS = Table(
    Layer.silver,
    "sensors",
    "Valid sensor readings with their flags and Kafka lineage.",
    partition_by=("observed_date",),
)
SILVER_QUARANTINE = Table(
    Layer.silver,
    "quarantine",
    "Records that failed validation: the original value, Kafka coordinates, the ids of the "
    "rules broken (reasons), rule details and when.",
    partition_by=("quarantine_date",),
)
SILVER_EVENT_LOG = Table(
    Layer.silver,
    "event_log",
    "Every event id seen, with its time and verdict: the memory behind deduplication and the "
    "event-time watermark.",
    schema="event_id string, event_type string, observed_at timestamp, accepted boolean, "
    "silver_batch_id bigint",
)
SILVER_PRICE_HISTORY = Table(
    Layer.silver,
    "price_history",
    "Prices that passed the hard rules (also those quarantined on statistics): the history the "
    "statistical rules compare with.",
    schema="event_id string, market_id string, commodity string, region string, "
    "observed_at timestamp, price double, silver_batch_id bigint",
)
GOLD_PRICE_LATEST = Table(
    Layer.gold,
    "price_latest",
    "The newest valid price of each market × commodity.",
    keys=("market_id", "commodity"),
)
GOLD_PRICE_DAILY = Table(
    Layer.gold,
    "price_daily",
    "Open/high/low/close/mean/count per market × commodity × region × local day.",
    keys=("market_id", "commodity", "region", "date"),
)
GOLD_PRICE_HOURLY = Table(
    Layer.gold,
    "price_hourly",
    "Open/high/low/close/mean/count per market × commodity × region × local hour.",
    keys=("market_id", "commodity", "region", "hour"),
)
GOLD_REGION_DAILY = Table(
    Layer.gold,
    "region_daily",
    "Per province × commodity × day: median, min, max and spread of the markets' closes.",
    keys=("region", "commodity", "date"),
)
GOLD_SENSOR_HOURLY = Table(
    Layer.gold,
    "sensor_hourly",
    "Mean/min/max/count per market × sensor metric × local hour.",
    keys=("market_id", "metric", "hour"),
)
GOLD_DATA_QUALITY = Table(
    Layer.gold,
    "data_quality",
    "Per micro-batch × source × device: received, accepted, quarantined (by reason), "
    "duplicates and late records.",
)
GOLD_DATA_QUALITY_DAILY = Table(
    Layer.gold,
    "data_quality_daily",
    "The data-quality counts per ingest day × source × device.",
    keys=("date", "source", "device_id"),
)

TABLES: dict[str, Table] = {
    t.qualified_name: t
    for t in (
        BRONZE_EVENTS,
        SILVER_PRICES,
        SILVER_SENSORS,
        SILVER_QUARANTINE,
        SILVER_EVENT_LOG,
        SILVER_PRICE_HISTORY,
        GOLD_PRICE_LATEST,
        GOLD_PRICE_DAILY,
        GOLD_PRICE_HOURLY,
        GOLD_REGION_DAILY,
        GOLD_SENSOR_HOURLY,
        GOLD_DATA_QUALITY,
        GOLD_DATA_QUALITY_DAILY,
    )
}
