"""Gold aggregates — pure functions from silver rows to the rows of each gold table, and how a
MERGE combines the rows of new silver batches into the rows already there.

Silver is append-only and each of its rows is there once, so the gold query aggregates only the
rows of the silver batches it follows (``price_daily``, ``price_hourly``, ``sensor_hourly``,
``quality_daily`` of those rows) and MERGEs each aggregate into its table with ``COMBINED``:
counts and sums add up, the extremes keep the larger or smaller, the open and close keep the
price of the earlier or later ``PRICE_ORDER``. A row carries the newest silver batch counted in
it (``silver_batch_id``); a replayed gold batch, whose silver batches a row already counts,
changes nothing (``NEW_BATCHES``). The cost of a batch is that of its own rows, whatever the
history. ``region_daily`` — a median — is recomputed from ``gold.price_daily`` for the province
× commodity × days a batch touched. Dates and hours are local market time (``timezone`` in
conf/settings.yaml).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.domain.metrics import PRICE_ORDER
from streaming_jobs.batch_values import batch_number
from streaming_jobs.silver import local_date

PRICE_KEYS = ("market_id", "commodity", "region")


def local_hour(ts: Column, tz: str) -> Column:
    """Start of the local hour, as a naive local timestamp."""
    return F.date_trunc("hour", F.from_utc_timestamp(ts, tz))


#: the condition under which a MERGE combines a new row into a table's row: the row does not
#: count the new row's silver batches yet
NEW_BATCHES = "s.silver_batch_id > t.silver_batch_id"


def _through(batch: int) -> Column:
    return batch_number(batch).alias("silver_batch_id")


def _ohlc(prices: DataFrame, period: Column, period_name: str, through: int) -> DataFrame:
    order = F.struct(
        *PRICE_ORDER
    )  # the close is the period's last price (lakehouse.domain.metrics)
    return (
        prices.withColumn(period_name, period)
        .groupBy(*PRICE_KEYS, period_name)
        .agg(
            F.min_by("price", order).alias("open"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.max_by("price", order).alias("close"),
            F.avg("price").alias("mean"),
            F.count("*").alias("count"),
            F.max("observed_at").alias("last_observed_at"),
            F.min(order).alias("open_order"),
            F.max(order).alias("close_order"),
            F.sum("price").alias("total"),
            _through(through),
        )
    )


def price_daily(prices: DataFrame, tz: str, through: int) -> DataFrame:
    """Open/high/low/close/mean/count per market × commodity × region × local day of
    ``prices``, the silver rows of the batches up to ``through``."""
    return _ohlc(prices, local_date(F.col("observed_at"), tz), "date", through)


def price_hourly(prices: DataFrame, tz: str, through: int) -> DataFrame:
    """Open/high/low/close/mean/count per market × commodity × region × local hour of
    ``prices``, the silver rows of the batches up to ``through``."""
    return _ohlc(prices, local_hour(F.col("observed_at"), tz), "hour", through)


def _added(*columns: str) -> dict[str, str]:
    return {c: f"s.{c} + t.{c}" for c in columns}


#: a mean kept as its sum (``total``) and ``count``, which add up
_MEAN = {**_added("count", "total"), "mean": "(s.total + t.total) / (s.count + t.count)"}


#: per gold table, how a MERGE combines a new row ``s`` into the table's row ``t`` of its key
OHLC_COMBINED = {
    "open": "CASE WHEN s.open_order < t.open_order THEN s.open ELSE t.open END",
    "open_order": "least(s.open_order, t.open_order)",
    "high": "greatest(s.high, t.high)",
    "low": "least(s.low, t.low)",
    "close": "CASE WHEN s.close_order > t.close_order THEN s.close ELSE t.close END",
    "close_order": "greatest(s.close_order, t.close_order)",
    **_MEAN,
    "last_observed_at": "greatest(s.last_observed_at, t.last_observed_at)",
}
SENSOR_COMBINED = {
    "min": "least(s.min, t.min)",
    "max": "greatest(s.max, t.max)",
    **_MEAN,
}


def region_daily(daily: DataFrame) -> DataFrame:
    """Per province × commodity × day, across its markets' daily closes: median, min, max,
    spread (max − min) and how many markets reported; rows without a region are left out
    (``lakehouse.domain.metrics.region_daily`` on pandas)."""
    with_region = daily.where(F.col("region").isNotNull() & (F.col("region") != ""))
    return with_region.groupBy("region", "commodity", "date").agg(
        F.percentile("close", 0.5).alias("median"),
        F.min("close").alias("min"),
        F.max("close").alias("max"),
        (F.max("close") - F.min("close")).alias("spread"),
        F.countDistinct("market_id").alias("markets"),
    )


def price_latest(prices: DataFrame) -> DataFrame:
    """The newest price of each market × commodity among ``prices``."""
    order = F.struct(*PRICE_ORDER)
    return (
        prices.groupBy("market_id", "commodity")
        .agg(
            F.max_by(
                F.struct("region", "price", "unit", "observed_at", "event_id", "source", "flags"),
                order,
            ).alias("latest")
        )
        .select("market_id", "commodity", "latest.*")
    )


def sensor_hourly(sensors: DataFrame, tz: str, through: int) -> DataFrame:
    """Mean/min/max/count per market × metric × local hour of ``sensors``, the silver rows of
    the batches up to ``through``."""
    return (
        sensors.withColumn("hour", local_hour(F.col("observed_at"), tz))
        .groupBy("market_id", "metric", "hour")
        .agg(
            F.avg("value").alias("mean"),
            F.min("value").alias("min"),
            F.max("value").alias("max"),
            F.count("*").alias("count"),
            F.sum("value").alias("total"),
            _through(through),
        )
    )


QUALITY_COUNTS = (
    "received",
    "accepted",
    "quarantined",
    "duplicates",
    "late",
    "released",
    "rejected",
)


def _sum_maps(a: Column, b: Column) -> Column:
    """Two maps of counts added key by key (a key missing from one counts 0)."""
    return F.map_zip_with(a, b, lambda _k, x, y: F.coalesce(x, F.lit(0)) + F.coalesce(y, F.lit(0)))


def quality_combined() -> dict[str, str | Column]:
    """How a MERGE combines a new ``gold.data_quality_daily`` row ``s`` into the table's ``t``."""
    reasons = "quarantined_by_reason"
    return {
        **_added(*QUALITY_COUNTS),
        reasons: _sum_maps(F.col(f"t.{reasons}"), F.col(f"s.{reasons}")),
    }


def quality_daily(batches: DataFrame, through: int) -> DataFrame:
    """Per ingest day × source × device: the quality counts of ``batches`` (``gold.data_quality``
    rows of the silver batches up to ``through``) summed, and their quarantine reasons merged."""
    return batches.groupBy("date", "source", "device_id").agg(
        *[F.sum(c).alias(c) for c in QUALITY_COUNTS],
        F.aggregate(
            F.collect_list("quarantined_by_reason"),
            F.create_map().cast("map<string,bigint>"),
            _sum_maps,
        ).alias("quarantined_by_reason"),
        _through(through),
    )
