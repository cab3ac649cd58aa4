"""Table registry: every Delta table of the lakehouse, its layer, location and meaning.

A table lives at ``<lakehouse_root>/<layer>/<name>``; its streaming checkpoint (if a query
writes it) at ``<checkpoint_root>/<layer>/<name>``. Code never builds these paths by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa

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

GOLD_FORECASTS = Table(
    Layer.gold,
    "forecasts",
    "7-day daily price forecasts per series (market × commodity or region × commodity) with 80 % "
    "and 95 % intervals and the model, registry version and MLflow run that made them.",
    keys=("series_id", "origin_date", "target_date"),
    schema="series_id string, series_kind string, market_id string, region string, "
    "commodity string, origin_date date, target_date date, horizon int, yhat double, "
    "yhat_lower_80 double, yhat_upper_80 double, yhat_lower_95 double, yhat_upper_95 double, "
    "model_name string, model_version string, run_id string, data_version bigint, "
    "created_at timestamp",
)
GOLD_ANOMALIES = Table(
    Layer.gold,
    "anomalies",
    "Anomaly scores 0..1 per market × commodity × day: temporal (IsolationForest on the "
    "series) or geographic (DBSCAN against the other markets that day), with an explanation.",
    keys=("market_id", "commodity", "date", "kind"),
    schema="market_id string, region string, commodity string, date date, kind string, "
    "score double, price double, explanation string, model_name string, model_version string, "
    "run_id string, created_at timestamp",
)
GOLD_ALERTS = Table(
    Layer.gold,
    "alerts",
    "Early-warning alerts: one row per alert (rule × key episode), opened and later resolved, "
    "with severity, value, reference and messages in Indonesian and English.",
    keys=("alert_id",),
    schema="alert_id string, rule string, severity string, status string, market_id string, "
    "region string, commodity string, metric string, value double, reference double, "
    "message_id string, message_en string, details string, opened_at timestamp, "
    "resolved_at timestamp, updated_at timestamp, alert_key string, last_firing_at timestamp",
)
GOLD_ALERT_DELIVERIES = Table(
    Layer.gold,
    "alert_deliveries",
    "One row per alert state (status:severity) × notifier channel once its delivery finished: "
    "delivered or undelivered after the last retry, with the attempts and the last error.",
    keys=("alert_id", "channel", "state"),
    schema="alert_id string, channel string, state string, rule string, severity string, "
    "delivered boolean, attempts int, last_error string, first_attempt_at timestamp, "
    "finished_at timestamp",
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
        GOLD_FORECASTS,
        GOLD_ANOMALIES,
        GOLD_ALERTS,
        GOLD_ALERT_DELIVERIES,
    )
}


_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The declared DDL ``schema`` of a table as a pyarrow schema, for writers without Spark
    (delta-rs). Only the simple types the registry uses are supported."""
    if not table.schema:
        raise ValueError(f"{table.qualified_name} has no declared schema")
    fields = []
    for column in table.schema.split(","):
        name, type_name = column.split()
        fields.append(pa.field(name, _ARROW_TYPES[type_name.lower()]))
    return pa.schema(fields)
