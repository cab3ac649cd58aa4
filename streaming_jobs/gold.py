"""Gold aggregates — pure functions from silver rows to the rows of each gold table.

The micro-batch recomputes the keys a batch touched from silver (not from the batch alone), so
a replayed batch produces the same rows and an aggregate never counts an event twice.
Dates and hours are local market time (``timezone`` in conf/settings.yaml).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.metrics import PRICE_ORDER
from streaming_jobs.silver import local_date

PRICE_KEYS = ("market_id", "commodity", "region")


def local_hour(ts: Column, tz: str) -> Column:
    """Start of the local hour, as a naive local timestamp."""
    return F.date_trunc("hour", F.from_utc_timestamp(ts, tz))


def _ohlc(prices: DataFrame, period: Column, period_name: str) -> DataFrame:
    order = F.struct(*PRICE_ORDER)  # the close is the period's last price (lakehouse.metrics)
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
        )
    )


def price_daily(prices: DataFrame, tz: str) -> DataFrame:
    """Open/high/low/close/mean/count per market × commodity × region × local day."""
    return _ohlc(prices, local_date(F.col("observed_at"), tz), "date")


def price_hourly(prices: DataFrame, tz: str) -> DataFrame:
    """Open/high/low/close/mean/count per market × commodity × region × local hour."""
    return _ohlc(prices, local_hour(F.col("observed_at"), tz), "hour")


def region_daily(daily: DataFrame) -> DataFrame:
    """Per province × commodity × day, across its markets' daily closes: median, min, max,
    spread (max − min) and how many markets reported; rows without a region are left out
    (``lakehouse.metrics.region_daily`` on pandas)."""
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


def sensor_hourly(sensors: DataFrame, tz: str) -> DataFrame:
    """Mean/min/max/count per market × metric × local hour."""
    return (
        sensors.withColumn("hour", local_hour(F.col("observed_at"), tz))
        .groupBy("market_id", "metric", "hour")
        .agg(
            F.avg("value").alias("mean"),
            F.min("value").alias("min"),
            F.max("value").alias("max"),
            F.count("*").alias("count"),
        )
    )


def quality_daily(batches: DataFrame) -> DataFrame:
    """Per ingest day × source × device: the per-batch quality counts summed, and their
    quarantine reasons merged."""
    counts = ("received", "accepted", "quarantined", "duplicates", "late", "released", "rejected")
    merge = lambda acc, m: F.map_zip_with(  # noqa: E731 - a Spark lambda, not a Python helper
        acc, m, lambda _k, a, b: F.coalesce(a, F.lit(0)) + F.coalesce(b, F.lit(0))
    )
    return batches.groupBy("date", "source", "device_id").agg(
        *[F.sum(c).alias(c) for c in counts],
        F.aggregate(
            F.collect_list("quarantined_by_reason"),
            F.create_map().cast("map<string,bigint>"),
            merge,
        ).alias("quarantined_by_reason"),
    )
