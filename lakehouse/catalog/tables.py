"""Table registry: every Delta table of the lakehouse, its layer, location and meaning.

A table lives at ``<lakehouse_root>/<layer>/<name>``; a streaming query's checkpoint at
``<checkpoint_root>/queries/<query name>`` (``query_checkpoint``). Code never builds these paths
by hand. Both are text — a folder path or an ``s3a://`` URI (lakehouse.config.storage) — never
``pathlib`` paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from lakehouse.config.settings import Settings
from lakehouse.config.storage import join

if TYPE_CHECKING:
    import pyarrow as pa


class Layer(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"


class Typed(NamedTuple):
    """A column declared with its Spark DDL type (``bigint``, ``array<struct<…>>``) and meaning."""

    type: str
    meaning: str


@dataclass(frozen=True)
class Table:
    """One Delta table. Each column is declared once, in ``columns``: its meaning, and its type
    where the table has a declared schema (every column ``Typed``: tables that must exist before
    their first write, or that delta-rs writes). The other tables take their schema from the
    frame their writer appends (silver from the event schemas, gold from its aggregates)."""

    layer: Layer
    name: str
    description: str
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # what identifies a row (gold tables are upserted on it)
    #: each commit's rows readable by version (Delta's change data feed), for a table that is
    #: only appended to and read by the batches that wrote it (``SparkTable.commits``)
    change_feed: bool = False
    #: every column: its meaning, or its type and meaning (the data dictionary: `./run.sh tables`)
    columns: Mapping[str, str | Typed] = field(default_factory=dict, hash=False, compare=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def meanings(self) -> dict[str, str]:
        """Column name → one-line meaning."""
        return {n: c.meaning if isinstance(c, Typed) else c for n, c in self.columns.items()}

    @property
    def schema(self) -> str:
        """The declared DDL (``name type, …``) when every column is typed, else empty."""
        if not self.columns or not all(isinstance(c, Typed) for c in self.columns.values()):
            return ""
        return ", ".join(f"{n} {c.type}" for n, c in self.columns.items())

    def path(self, settings: Settings) -> str:
        """The table's location: a folder path or a URI (``s3a://bucket/prefix/silver/prices``)."""
        return join(settings.paths.lakehouse_root, self.layer, self.name)

    def log(self, settings: Settings, version: int | None = None) -> str:
        """The table's ``_delta_log`` folder, or the commit file of ``version`` in it."""
        if version is None:
            return join(self.path(settings), "_delta_log")
        return join(self.path(settings), "_delta_log", f"{version:020d}.json")


def query_checkpoint(settings: Settings, query_name: str) -> str:
    """Where the streaming query ``query_name`` keeps its offsets, commits and state."""
    return join(settings.paths.checkpoint_root, "queries", query_name)


#: meanings shared by several tables (lineage of silver rows, the per-series keys, OHLC columns)
_LINEAGE = {
    "topic": Typed("string", "Kafka topic the record was read from"),
    "partition": Typed("int", "Kafka partition of the record"),
    "offset": Typed("bigint", "Kafka offset of the record within its partition"),
    "kafka_timestamp": Typed("timestamp", "time Kafka stored the record (UTC)"),
    "ingest_time": Typed("timestamp", "time bronze ingested the record (UTC)"),
}
#: the silver batch number of the history query's (``./run.sh load-history``) first micro-batch:
#: its batch n is silver batch ``HISTORY_BATCHES + n``, below every batch of the live silver
#: query (numbered from 0), so that the two never share a number (docs/bulk_history.md)
HISTORY_BATCHES = -(1 << 40)
_SILVER_BATCH = {
    "silver_batch_id": Typed("bigint", "micro-batch of the silver query that wrote the row")
}
_EVENT = {
    "event_id": Typed("string", "unique id of the event (uuid; re-sent copies share it)"),
    "market_id": Typed("string", "market id of conf/markets.csv (IP-… for InfoPangan markets)"),
    "observed_at": Typed("timestamp", "when the price or reading was observed (UTC)"),
    "source": Typed("string", "feed, file or device that reported it"),
    "schema_version": "version of the event schema the producer used",
}
_PRICE_SERIES = {
    "market_id": _EVENT["market_id"],
    "commodity": Typed(
        "string", "commodity id of conf/commodities.yaml (e.g. bawang_merah, cabai_merah)"
    ),
    "region": Typed("string", "province of the market"),
}
#: what a gold aggregate row records to take in each silver batch once
_COUNTED = {"silver_batch_id": "newest silver micro-batch counted in the row"}
_OHLC = {
    "open": "first price of the period (IDR per catalogue unit)",
    "high": "highest price of the period",
    "low": "lowest price of the period",
    "close": "last price of the period",
    "mean": "mean price of the period",
    "count": "number of valid prices in the period",
    "last_observed_at": "time of the newest price in the period (UTC)",
    "open_order": "when the open was reported (observed_at, topic, partition, offset): a later "
    "batch with an earlier price replaces it",
    "close_order": "when the close was reported: a later batch with a later price replaces it",
    "total": "sum of the prices of the period (mean = total / count as batches add up)",
    **_COUNTED,
}
_QUALITY_COUNTS = {
    "source": Typed("string", "feed or file that sent the records (the Kafka topic when unknown)"),
    "device_id": Typed("string", "reporting device (empty when none)"),
    "received": Typed("bigint", "records received (= accepted + quarantined + duplicates)"),
    "accepted": Typed("bigint", "records written to silver"),
    "quarantined": Typed("bigint", "records written to silver.quarantine"),
    "duplicates": Typed("bigint", "records dropped as copies of an event already seen"),
    "late": Typed("bigint", "records quarantined as late"),
    "quarantined_by_reason": Typed("map<string,bigint>", "quarantined records per rule id"),
    "released": Typed("bigint", "held prices released into silver (confirmed, or by an operator)"),
    "rejected": Typed(
        "bigint", "held prices an operator rejected (they stay out of silver for good)"
    ),
}
_MODEL = {
    "model_name": Typed("string", "name of the model in the MLflow registry"),
    "model_version": Typed("string", "registry version of the model"),
    "run_id": Typed("string", "MLflow run that produced the row"),
    "created_at": Typed("timestamp", "when the row was written (UTC)"),
}


BRONZE_EVENTS = Table(
    Layer.bronze,
    "market_events",
    "Raw Kafka records of every topic, untouched: value as text plus topic, partition, offset, "
    "Kafka timestamp and ingest time.",
    partition_by=("ingest_date",),
    columns={
        **{k: v for k, v in _LINEAGE.items() if k != "ingest_time"},
        "key": Typed(
            "string", "Kafka message key as text (market_id:commodity or market_id:device_id)"
        ),
        "value": Typed("string", "the record as sent, as text (JSON for events)"),
        "ingest_time": _LINEAGE["ingest_time"],
        "ingest_date": Typed("date", "UTC date of ingest_time (partition column)"),
    },
)
SILVER_PRICES = Table(
    Layer.silver,
    "prices",
    "Valid price events: typed, unit-normalised (IDR per catalogue unit), with statistical "
    "flags, rule details and Kafka lineage.",
    partition_by=("observed_date",),
    change_feed=True,
    columns={
        **_EVENT,
        **_PRICE_SERIES,
        "region": "province of the market (from conf/markets.csv when the event has none)",
        "price": "price in IDR per catalogue unit",
        "unit": "catalogue unit of the commodity (e.g. kg)",
        "reported_unit": "unit as reported, before normalisation",
        "device_id": "reporting device, if any",
        "attributes": "extra columns of the report, as text",
        "flags": "statistical rules that flagged the price without quarantining it",
        "details": "numbers behind the rules (z_score, rolling_median, …)",
        **_LINEAGE,
        "observed_date": "local market date of observed_at (partition column)",
        **_SILVER_BATCH,
    },
)
SILVER_SENSORS = Table(
    Layer.silver,
    "sensors",
    "Valid sensor readings with their flags and Kafka lineage.",
    partition_by=("observed_date",),
    change_feed=True,
    columns={
        **_EVENT,
        "device_id": "sensor device id",
        "metric": "what was measured: temperature_c, humidity_pct or crowd_count",
        "value": "the reading, in the metric's unit",
        "flags": "rules that flagged the reading without quarantining it (sensor_stuck)",
        "details": "numbers behind the rules (previous_median)",
        **_LINEAGE,
        "observed_date": "local market date of observed_at (partition column)",
        **_SILVER_BATCH,
    },
)
SILVER_QUARANTINE = Table(
    Layer.silver,
    "quarantine",
    "Records that failed validation: the original value, Kafka coordinates, the ids of the "
    "rules broken (reasons), rule details and when.",
    partition_by=("quarantine_date",),
    columns={
        "raw": Typed("string", "the record as received, as text"),
        **_LINEAGE,
        "event_id": Typed("string", "event id, when the record parsed"),
        "event_type": Typed("string", "price or sensor, when the record parsed"),
        "market_id": Typed("string", "market id, when the record parsed"),
        "source": Typed("string", "feed, file or device that reported it, when the record parsed"),
        "device_id": Typed("string", "reporting device, if any"),
        "subject": Typed("string", "commodity of a price or metric of a reading"),
        "observed_at": Typed("timestamp", "when it was observed (UTC), when the record parsed"),
        "reasons": Typed("array<string>", "ids of the rules the record broke"),
        "details": Typed(
            "map<string,double>", "numbers behind the rules (z_score, rolling_median, …)"
        ),
        "error": Typed("string", "what was wrong, in words (parse errors and dead letters)"),
        "quarantined_at": Typed("timestamp", "when the record was quarantined (UTC)"),
        "quarantine_date": Typed("date", "UTC date of quarantined_at (partition column)"),
        **_SILVER_BATCH,
    },
)
_HOLD = {
    "hold_reasons": "the statistical rules that held the price",
    "baseline": "the level before the move: the series' rolling median (or the other markets' "
    "median of the day)",
    "move": "price / baseline - 1",
    "held_at": "when the price was held (UTC)",
}
SILVER_HOLDS = Table(
    Layer.silver,
    "holds",
    "Prices held by the statistical rules (a quarantine row with statistical reasons only): the "
    "row silver would have had, and where its review stands. Released rows reach silver.",
    keys=("event_id",),
    columns={
        **{c: m for c, m in SILVER_PRICES.columns.items() if c != "silver_batch_id"},
        **_HOLD,
        "held_batch_id": "micro-batch of the silver query that held the price",
        "status": "held, not_confirmed (a later report came back: stays held), released or "
        "rejected",
        "previous_status": "status before the last decision",
        "decided_batch_id": "micro-batch of the silver query that made the last decision",
    },
)
SILVER_HOLD_DECISIONS = Table(
    Layer.silver,
    "hold_decisions",
    "Every decision on a held price, once: released (confirmed by later reports, or by an "
    "operator), not_confirmed, or rejected — who, when and why.",
    change_feed=True,
    columns={
        "event_id": "the held price's event id",
        "decision": "released, not_confirmed or rejected",
        "decided_by": "rule:confirmation, or operator:<API key name>",
        "note": "why, in words",
        "decided_at": "when the silver batch recorded the decision (UTC)",
        "supports": "reports at the new level within the window (rule decisions)",
        "refutes": "later reports back at the earlier level (rule decisions)",
        "market_id": _PRICE_SERIES["market_id"],
        "commodity": _PRICE_SERIES["commodity"],
        "region": _PRICE_SERIES["region"],
        "source": _EVENT["source"],
        "device_id": "reporting device, if any",
        "price": "the held price (IDR per catalogue unit)",
        "observed_at": _EVENT["observed_at"],
        **_HOLD,
        **_SILVER_BATCH,
    },
)
GOLD_PRICE_LATEST = Table(
    Layer.gold,
    "price_latest",
    "The newest valid price of each market × commodity.",
    keys=("market_id", "commodity"),
    columns={
        **_PRICE_SERIES,
        "price": "newest valid price in IDR per catalogue unit",
        "unit": "catalogue unit of the commodity",
        "observed_at": "when the newest price was observed (UTC)",
        "event_id": "event id of the newest price",
        "source": "feed or file that reported it",
        "flags": "statistical flags the price carries",
    },
)
GOLD_PRICE_DAILY = Table(
    Layer.gold,
    "price_daily",
    "Open/high/low/close/mean/count per market × commodity × region × local day.",
    keys=("market_id", "commodity", "region", "date"),
    columns={
        **_PRICE_SERIES,
        "date": "local market date",
        **_OHLC,
    },
)
GOLD_PRICE_HOURLY = Table(
    Layer.gold,
    "price_hourly",
    "Open/high/low/close/mean/count per market × commodity × region × local hour.",
    keys=("market_id", "commodity", "region", "hour"),
    columns={
        **_PRICE_SERIES,
        "hour": "start of the local market hour (local time, no offset)",
        **_OHLC,
    },
)
GOLD_REGION_DAILY = Table(
    Layer.gold,
    "region_daily",
    "Per province × commodity × day: median, min, max and spread of the markets' closes.",
    keys=("region", "commodity", "date"),
    columns={
        "region": "province",
        "commodity": _PRICE_SERIES["commodity"],
        "date": "local market date",
        "median": "median of the markets' daily closes",
        "min": "lowest daily close among the markets",
        "max": "highest daily close among the markets",
        "spread": "max − min",
        "markets": "number of markets with a price that day",
    },
)
GOLD_SENSOR_HOURLY = Table(
    Layer.gold,
    "sensor_hourly",
    "Mean/min/max/count per market × sensor metric × local hour.",
    keys=("market_id", "metric", "hour"),
    columns={
        "market_id": _EVENT["market_id"],
        "metric": "temperature_c, humidity_pct or crowd_count",
        "hour": "start of the local market hour (local time, no offset)",
        "mean": "mean reading of the hour",
        "min": "lowest reading of the hour",
        "max": "highest reading of the hour",
        "count": "number of valid readings in the hour",
        "total": "sum of the readings of the hour (mean = total / count as batches add up)",
        **_COUNTED,
    },
)
GOLD_DATA_QUALITY = Table(
    Layer.gold,
    "data_quality",
    "Per micro-batch × source × device: received, accepted, quarantined (by reason), "
    "duplicates and late records. A batch's rows are written last: they mark it complete, and "
    "the gold query follows them.",
    partition_by=("date",),
    columns={
        "batch_id": Typed("bigint", "micro-batch of the silver query"),
        "batch_time": Typed("timestamp", "when the micro-batch ran (UTC)"),
        "date": Typed("date", "UTC date of batch_time"),
        **_QUALITY_COUNTS,
    },
)
GOLD_DATA_QUALITY_DAILY = Table(
    Layer.gold,
    "data_quality_daily",
    "The data-quality counts per ingest day × source × device.",
    keys=("date", "source", "device_id"),
    columns={
        "date": "ingest date (UTC)",
        **_QUALITY_COUNTS,
        **_COUNTED,
    },
)

#: how good a served forecast has been: its model's rolling-origin backtest on the series'
#: scored origins (ml.backtest.metrics_by_model), beside naive's on the same origins
_BACKTEST_QUALITY = {
    "backtest_mape": Typed(
        "double", "MAPE (%) of the served model's backtest forecasts (null: not backtested)"
    ),
    "naive_mape": Typed("double", "MAPE (%) of naive (same as today) on the same origins"),
    "coverage_80": Typed("double", "share of backtest actuals inside the served 80 % band"),
    "coverage_95": Typed("double", "share of backtest actuals inside the served 95 % band"),
}
GOLD_FORECASTS = Table(
    Layer.gold,
    "forecasts",
    "7-day daily price forecasts per series (market × commodity or region × commodity) with 80 % "
    "and 95 % intervals and the model, registry version and MLflow run that made them.",
    keys=("series_id", "origin_date", "target_date"),
    columns={
        "series_id": Typed("string", "id of the forecast series"),
        "series_kind": Typed(
            "string", "market (market × commodity) or region (region × commodity)"
        ),
        "market_id": Typed("string", "market of a market series (empty for a region series)"),
        "region": Typed("string", "province of the series"),
        "commodity": _PRICE_SERIES["commodity"],
        "origin_date": Typed("date", "date the forecast was made from"),
        "target_date": Typed("date", "the date forecast"),
        "horizon": Typed("int", "days from origin_date to target_date"),
        "yhat": Typed("double", "forecast price in IDR per catalogue unit"),
        "yhat_lower_80": Typed("double", "lower bound of the 80 % interval"),
        "yhat_upper_80": Typed("double", "upper bound of the 80 % interval"),
        "yhat_lower_95": Typed("double", "lower bound of the 95 % interval"),
        "yhat_upper_95": Typed("double", "upper bound of the 95 % interval"),
        "surge_prob": Typed(
            "double",
            "probability that the price rises ≥ ml.surge_rise (10 %) above the origin day's "
            "price within the horizon: the surge classifier's, calibrated, where it is trained, "
            "else the forecast's first passage (same on every row of an origin; null if not "
            "computed)",
        ),
        "surge_warn_at": Typed(
            "double",
            "the surge_prob from which the series warns (the surge_risk alert, the chart's mark): "
            "the threshold that reached ml.surge_model's precision on the classifier's latest "
            "weeks, or on the backtest's origins for a first-passage probability; null: none "
            "did (or a row written before the column), alerts' surge_risk.warning applies",
        ),
        "served_because": Typed(
            "string",
            "why this model serves the series (ml.selection): the rival that beat naive "
            "significantly with its evidence, or why naive serves (null in rows written before "
            "the column)",
        ),
        "surge_because": Typed(
            "string",
            "why surge_prob is what it is: the surge classifier's (ml.surge_model) threshold "
            "and the features that pushed the probability up most, with their values and "
            "log-odds contributions; or that it is the forecast's first-passage probability "
            "(no classifier trained). Null in rows written before the column",
        ),
        **_BACKTEST_QUALITY,
        **{k: v for k, v in _MODEL.items() if k != "created_at"},
        "data_version": Typed("bigint", "Delta version of the data the model was trained on"),
        "created_at": _MODEL["created_at"],
    },
)
GOLD_ANOMALIES = Table(
    Layer.gold,
    "anomalies",
    "Anomaly scores 0..1 per market × commodity × day: temporal (IsolationForest on the "
    "series) or geographic (DBSCAN against the other markets that day), with an explanation.",
    keys=("market_id", "commodity", "date", "kind"),
    columns={
        "market_id": _PRICE_SERIES["market_id"],
        "region": _PRICE_SERIES["region"],
        "commodity": _PRICE_SERIES["commodity"],
        "date": Typed("date", "local market date"),
        "kind": Typed(
            "string", "temporal (against the series) or geographic (against other markets)"
        ),
        "score": Typed("double", "anomaly score, 0 (normal) … 1 (most anomalous)"),
        "price": Typed("double", "the day's price in IDR per catalogue unit"),
        "explanation": Typed("string", "why it is anomalous, in words"),
        **_MODEL,
    },
)
GOLD_ALERTS = Table(
    Layer.gold,
    "alerts",
    "Early-warning alerts: one row per alert (rule × key episode), opened and later resolved, "
    "with severity, value, reference and messages in Indonesian and English.",
    keys=("alert_id",),
    columns={
        "alert_id": Typed("string", "id of the alert (rule × key episode)"),
        "rule": Typed("string", "alert rule that fired"),
        "severity": Typed("string", "how serious the alert is"),
        "status": Typed("string", "open or resolved"),
        "market_id": Typed("string", "market concerned, if any"),
        "region": Typed("string", "province concerned, if any"),
        "commodity": Typed("string", "commodity concerned, if any"),
        "metric": Typed("string", "what the rule measured"),
        "value": Typed("double", "measured value"),
        "reference": Typed("double", "value it was compared with"),
        "message_id": Typed("string", "the alert in Indonesian"),
        "message_en": Typed("string", "the alert in English"),
        "details": Typed("string", "more about the alert"),
        "opened_at": Typed("timestamp", "when the alert opened (UTC)"),
        "resolved_at": Typed("timestamp", "when it was resolved (UTC), empty while open"),
        "updated_at": Typed("timestamp", "last change of the row (UTC)"),
        "alert_key": Typed(
            "string", "what the rule watches (e.g. market × commodity): one open alert per key"
        ),
        "last_firing_at": Typed(
            "timestamp", "last time the condition held (UTC): the cool-down counts from here"
        ),
    },
)
GOLD_ALERT_DELIVERIES = Table(
    Layer.gold,
    "alert_deliveries",
    "One row per alert state (status:severity) × notifier channel once its delivery finished: "
    "delivered or undelivered after the last retry, with the attempts and the last error.",
    keys=("alert_id", "channel", "state"),
    columns={
        "alert_id": Typed("string", "the alert delivered (gold.alerts)"),
        "channel": Typed(
            "string", "notifier channel (webhook, telegram, whatsapp) by its configured name"
        ),
        "state": Typed("string", "the alert state sent, status:severity (e.g. open:critical)"),
        "rule": Typed("string", "alert rule"),
        "severity": Typed("string", "severity of the state sent"),
        "delivered": Typed(
            "boolean", "true if the receiver accepted it, false after the last retry failed"
        ),
        "attempts": Typed("int", "delivery attempts made"),
        "last_error": Typed("string", "error of the last failed attempt, empty when delivered"),
        "first_attempt_at": Typed("timestamp", "first delivery attempt (UTC)"),
        "finished_at": Typed("timestamp", "when delivery succeeded or was given up (UTC)"),
    },
)
GOLD_SUBSCRIPTION_DELIVERIES = Table(
    Layer.gold,
    "subscription_deliveries",
    "One row per alert state × subscriber × channel and recipient once its delivery finished "
    "(lakehouse.domain.accounts.subscriptions; docs/alerts.md#subscriptions): delivered or not "
    "after the last retry, with the attempts and the last error; a digest's alerts share its send.",
    keys=("alert_id", "state", "subscriber", "channel", "recipient"),
    columns={
        "alert_id": GOLD_ALERT_DELIVERIES.columns["alert_id"],
        "state": GOLD_ALERT_DELIVERIES.columns["state"],
        "subscriber": Typed("string", "the user subscribed (the registry's user name)"),
        "channel": Typed("string", "email, webhook, telegram or whatsapp"),
        "recipient": Typed("string", "e-mail address, webhook URL, chat id or phone number"),
        "subscription_id": Typed("string", "the subscription that asked for it"),
        "digest": Typed("boolean", "sent in the subscriber's daily digest"),
        "rule": GOLD_ALERT_DELIVERIES.columns["rule"],
        "severity": GOLD_ALERT_DELIVERIES.columns["severity"],
        "delivered": GOLD_ALERT_DELIVERIES.columns["delivered"],
        "attempts": GOLD_ALERT_DELIVERIES.columns["attempts"],
        "last_error": Typed(
            "string", "why the last attempt failed (e.g. SMTP 550 …), empty when delivered"
        ),
        "first_attempt_at": GOLD_ALERT_DELIVERIES.columns["first_attempt_at"],
        "finished_at": GOLD_ALERT_DELIVERIES.columns["finished_at"],
    },
)
GOLD_PRICE_LEDGER = Table(
    Layer.gold,
    "price_ledger",
    "Tamper-evident ledger of accepted prices: one hash-chain entry per silver.prices row, a "
    "chain per market × commodity (lakehouse.domain.ledger; docs/security.md).",
    keys=("chain", "seq"),
    columns={
        "chain": Typed("string", "market_id|commodity: the chain the entry belongs to"),
        "seq": Typed("bigint", "position in the chain, from 0"),
        "event_id": Typed("string", "the price event (silver.prices)"),
        "market_id": _PRICE_SERIES["market_id"],
        "commodity": _PRICE_SERIES["commodity"],
        "observed_at": _EVENT["observed_at"],
        "price": Typed("double", "price in IDR per catalogue unit, as accepted"),
        "unit": Typed("string", "catalogue unit of the commodity"),
        "source": _EVENT["source"],
        "silver_batch_id": _SILVER_BATCH["silver_batch_id"],
        "content_hash": Typed("string", "SHA-256 of the canonical JSON of the price's fields"),
        "prev_hash": Typed(
            "string", "entry_hash of the previous entry of the chain (64 zeros for the first)"
        ),
        "entry_hash": Typed("string", "SHA-256 of prev_hash + content_hash"),
        "ledgered_at": Typed("timestamp", "when the entry was appended (UTC)"),
    },
)

# ---- supply chain (issue 35; docs/supply.md) -------------------------------------------------
_SUPPLY = {
    "commodity": _PRICE_SERIES["commodity"],
    "quantity": Typed("double", "quantity in kg (litres for oils)"),
    "unit": Typed("string", "kg or l"),
}
_SHIPMENT = {
    "shipment_id": Typed("string", "id of the shipment (the sender's)"),
    **_SUPPLY,
    "origin_id": Typed("string", "supply entity shipping (the registry)"),
    "destination_id": Typed("string", "supply entity receiving"),
    "origin_province": Typed("string", "province of the origin"),
    "destination_province": Typed("string", "province of the destination"),
    "route_id": Typed("string", "origin regency > destination regency, e.g. 32.12>31.72"),
    "departed_at": Typed("timestamp", "when it left the origin (UTC)"),
    "expected_at": Typed("timestamp", "when it is due at the destination (UTC)"),
    "arrived_at": Typed("timestamp", "when it arrived (UTC); empty while in transit"),
    "observed_at": Typed("timestamp", "time of the latest report of the shipment (UTC)"),
}
SILVER_SUPPLY_STOCK = Table(
    Layer.silver,
    "supply_stock",
    "Valid stock reports: one row per entity × commodity × report time, with the entity's "
    "kind and place from the supply registry.",
    columns={
        "event_id": _EVENT["event_id"],
        "entity_id": Typed("string", "supply entity (the registry, /api/v1/supply/entities)"),
        "kind": Typed("string", "warehouse, distributor, farmer_group or market"),
        "regency_code": Typed("string", "regency of the entity (PP.RR)"),
        "province": Typed("string", "province of the entity"),
        **_SUPPLY,
        "observed_at": Typed("timestamp", "when the stock was counted (UTC)"),
        "source": _EVENT["source"],
        **_LINEAGE,
        **_SILVER_BATCH,
    },
)
SILVER_SHIPMENTS = Table(
    Layer.silver,
    "shipments",
    "The latest valid report of each shipment (a shipment reported as it moves keeps one row: "
    "a later report replaces it, an earlier one arriving late does not).",
    keys=("shipment_id",),
    columns={
        **_SHIPMENT,
        "event_id": Typed("string", "event id of the latest report"),
        "source": _EVENT["source"],
        **_SILVER_BATCH,
    },
)
GOLD_SHIPMENTS = Table(
    Layer.gold,
    "shipments",
    "One row per shipment: its current state (in_transit, arrived) and delay.",
    keys=("shipment_id",),
    columns={
        **_SHIPMENT,
        "state": Typed("string", "in_transit or arrived"),
        "late": Typed("boolean", "arrived after expected_at, or still in transit past it"),
        "delay_hours": Typed(
            "double", "arrived_at (in transit: as_of) − expected_at in hours, at least 0"
        ),
        "planned_hours": Typed("double", "expected_at − departed_at in hours"),
        "as_of": Typed("timestamp", "the newest report time of the supply stream (its 'now')"),
    },
)
GOLD_STOCK_DAILY = Table(
    Layer.gold,
    "stock_daily",
    "Per supply entity × commodity × local day: the day's closing stock, inflow (shipments "
    "arrived), outflow and days of cover = stock / mean daily outflow of the last "
    "supply.cover_window_days days.",
    keys=("entity_id", "commodity", "date"),
    columns={
        "entity_id": SILVER_SUPPLY_STOCK.columns["entity_id"],
        "commodity": _PRICE_SERIES["commodity"],
        "date": Typed("date", "local date"),
        "kind": SILVER_SUPPLY_STOCK.columns["kind"],
        "regency_code": SILVER_SUPPLY_STOCK.columns["regency_code"],
        "province": SILVER_SUPPLY_STOCK.columns["province"],
        "stock": Typed("double", "the day's last stock report (kg or l)"),
        "inflow": Typed("double", "quantity of the shipments that arrived here that day"),
        "net_flow": Typed("double", "stock − the previous reported day's stock"),
        "outflow": Typed("double", "inflow − net_flow, at least 0: consumed or shipped out"),
        "mean_outflow": Typed("double", "mean daily outflow over the cover window"),
        "days_of_cover": Typed("double", "stock / mean_outflow; empty when no outflow"),
        "reports": Typed("bigint", "stock reports of the day"),
    },
)
GOLD_SUPPLY_REGION_DAILY = Table(
    Layer.gold,
    "supply_region_daily",
    "Per local day × province × commodity: the entities' stock, days of cover, shipments in "
    "transit to the province and those late (contract read by ml/impact.py).",
    keys=("date", "province", "commodity"),
    columns={
        "date": Typed("date", "local date"),
        "province": Typed("string", "province name as in conf/provinces.csv"),
        "commodity": _PRICE_SERIES["commodity"],
        "stock": Typed("double", "sum of the entities' stock that day (kg or l)"),
        "days_of_cover": Typed(
            "double", "stock / sum of the entities' mean daily outflow; empty when no outflow"
        ),
        "shipments_in_transit": Typed("bigint", "shipments to the province in transit at day end"),
        "shipments_late": Typed(
            "bigint", "of those and the ones arrived that day: past their expected time"
        ),
    },
)
SUPPLY_TABLES = (
    SILVER_SUPPLY_STOCK,
    SILVER_SHIPMENTS,
    GOLD_SHIPMENTS,
    GOLD_STOCK_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
)


# --- news -------------------------------------------------------------------------

_NEWS_MENTIONS = "array<struct<commodity:string,direction:string>>"
SILVER_NEWS = Table(
    Layer.silver,
    "news",
    "One row per news headline (the first copy of each event id), with what it says: the "
    "catalogue commodities it names and the direction it states for each, the province and "
    "regency it names and its topic (lakehouse.domain.intake.news_text). A headline naming no "
    "commodity is kept with no mentions.",
    keys=("event_id",),
    columns={
        "event_id": Typed("string", "id of the headline (its link, else publisher + title)"),
        "published_at": Typed("timestamp", "when it was published (UTC)"),
        "title": Typed("string", "the headline"),
        "source": Typed("string", "publisher"),
        "url": Typed("string", "link to the article, if known"),
        "text": Typed("string", "lead paragraph, if given"),
        "collected_from": Typed("string", "file, feed or API that brought it in"),
        "mentions": Typed(
            _NEWS_MENTIONS,
            "commodities named (ids of conf/commodities.yaml) and the direction stated for each: "
            "up, down, stable or null (none stated)",
        ),
        "province": Typed("string", "province named (conf/provinces.csv), null: none"),
        "regency": Typed("string", "regency or city named (datasets/indonesia_regencies.csv)"),
        "topic": Typed("string", "price, stock, supply_disruption, intervention or other"),
        "partition": _LINEAGE["partition"],
        "offset": _LINEAGE["offset"],
        "kafka_timestamp": _LINEAGE["kafka_timestamp"],
        "ingest_time": _LINEAGE["ingest_time"],
        "news_batch_id": Typed("bigint", "micro-batch of the news query that wrote the row"),
    },
)
GOLD_NEWS_SIGNAL = Table(
    Layer.gold,
    "news_signal",
    "Per local day × commodity × province: how many headlines named the commodity there and "
    "which way they said its price goes (national headlines: province Indonesia).",
    keys=("date", "commodity", "province"),
    columns={
        "date": Typed("date", "local date of publication"),
        "commodity": _PRICE_SERIES["commodity"],
        "province": Typed("string", "province named by the headlines, Indonesia when none"),
        "headlines": Typed("bigint", "headlines naming the commodity there that day"),
        "up": Typed("bigint", "of them, saying its price rises"),
        "down": Typed("bigint", "saying it falls"),
        "stable": Typed("bigint", "saying it is stable (or supply is safe)"),
        "net_direction": Typed("double", "(up − down) / headlines, in [-1, 1]"),
        "intensity": Typed("double", "ln(1 + headlines): how loudly the news speaks, ≥ 0"),
        "updated_at": Typed("timestamp", "when the row was last recomputed (UTC)"),
    },
)


TABLES: dict[str, Table] = {
    t.qualified_name: t
    for t in (
        BRONZE_EVENTS,
        SILVER_PRICES,
        SILVER_SENSORS,
        SILVER_QUARANTINE,
        SILVER_HOLDS,
        SILVER_HOLD_DECISIONS,
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
        GOLD_SUBSCRIPTION_DELIVERIES,
        GOLD_PRICE_LEDGER,
        *SUPPLY_TABLES,
        SILVER_NEWS,
        GOLD_NEWS_SIGNAL,
    )
}


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas that are not inside ``<…>``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _arrow_type(ddl: str) -> pa.DataType:
    """A Spark DDL type (simple, ``array<…>`` or ``struct<name:type,…>``) as a pyarrow type.
    pyarrow is imported here: the commands that read the registry alone start without it."""
    import pyarrow as pa

    lowered = ddl.strip().lower()
    if lowered.startswith("array<"):
        return pa.list_(_arrow_type(ddl.strip()[6:-1]))
    if lowered.startswith("map<"):
        key, item = _split_top(ddl.strip()[4:-1])
        return pa.map_(_arrow_type(key), _arrow_type(item))
    if lowered.startswith("struct<"):
        fields = [f.split(":", 1) for f in _split_top(ddl.strip()[7:-1])]
        return pa.struct([pa.field(name.strip(), _arrow_type(kind)) for name, kind in fields])
    simple = {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return simple[lowered]


def arrow_schema(table: Table) -> pa.Schema:
    """The declared DDL ``schema`` of a table as a pyarrow schema, for writers without Spark
    (delta-rs)."""
    if not table.schema:
        raise ValueError(f"{table.qualified_name} has no declared schema")
    import pyarrow as pa

    return pa.schema(
        pa.field(name, _arrow_type(kind))
        for name, kind in (column.split(None, 1) for column in _split_top(table.schema))
    )
