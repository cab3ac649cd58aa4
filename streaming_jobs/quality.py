"""Data quality of a micro-batch — a pure function from its records and verdicts to the rows of
``gold.data_quality``: per source × device, received = accepted + quarantined + duplicates;
beside them, the held prices the batch released or rejected (``streaming_jobs.holds``)."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming_jobs.silver import no_reasons


def _source(raw: Column) -> Column:
    """Who sent a record, read from its text the same way for every copy: the event's source
    (the Kafka topic when it has none) and device (empty when none)."""
    return F.struct(
        F.coalesce(F.get_json_object(raw, "$.source"), F.col("topic")).alias("source"),
        F.coalesce(F.get_json_object(raw, "$.device_id"), F.lit("")).alias("device_id"),
    )


def batch_quality(
    records: DataFrame,
    parsed: DataFrame,
    prices: DataFrame,
    sensors: DataFrame,
    decisions: DataFrame | None,
    batch_id: int,
    now: datetime,
) -> DataFrame:
    """``records``: the batch's Kafka records with ``first_copy`` (see
    ``streaming_jobs.bronze.with_first_copies``); ``parsed``: its first copies parsed
    (``parse_error`` set when unusable); ``prices`` and ``sensors``: the verdicts (``reasons``
    empty: accepted); ``decisions``: the batch's ``silver.hold_decisions`` rows, if any.
    Duplicates are the records that are not a first copy."""

    def fates(df: DataFrame, text: str, fate: Column, reasons: Column) -> DataFrame:
        return df.select(
            _source(F.col(text)).alias("who"), fate.alias("fate"), reasons.alias("reasons")
        ).select("who.*", "fate", "reasons")

    verdict = F.when(F.size("reasons") == 0, "accepted").otherwise("quarantined")
    duplicate = F.when(F.col("first_copy"), "first").otherwise("received")
    outcome = (
        fates(records, "value", duplicate, no_reasons())
        .unionByName(
            fates(
                parsed.where(F.col("parse_error").isNotNull()),
                "raw",
                F.lit("quarantined"),
                F.array("parse_error"),
            )
        )
        .unionByName(fates(prices, "raw", verdict, F.col("reasons")))
        .unionByName(fates(sensors, "raw", verdict, F.col("reasons")))
    )
    if decisions is not None:
        outcome = outcome.unionByName(
            decisions.select(
                "source",
                "device_id",
                F.col("decision").alias("fate"),
                no_reasons().alias("reasons"),
            )
        )
    keys = ["source", "device_id"]
    reason_counts = (
        outcome.select(*keys, F.explode("reasons").alias("reason"))
        .groupBy(*keys, "reason")
        .count()
        .groupBy(*keys)
        .agg(F.map_from_entries(F.collect_list(F.struct("reason", "count"))).alias("by_reason"))
    )
    count = lambda fate: F.count(F.when(F.col("fate") == fate, 1))  # noqa: E731 - a Spark expression
    return (
        outcome.groupBy(*keys)
        .agg(
            count("received").alias("received"),
            count("accepted").alias("accepted"),
            count("quarantined").alias("quarantined"),
            (count("received") - count("first")).alias("duplicates"),
            F.count(F.when(F.array_contains("reasons", "late"), 1)).alias("late"),
            count("released").alias("released"),
            count("rejected").alias("rejected"),
        )
        .join(reason_counts, keys, "left")
        .select(
            F.lit(batch_id).cast("bigint").alias("batch_id"),
            F.lit(now).alias("batch_time"),
            F.to_date(F.lit(now)).alias("date"),
            *keys,
            "received",
            "accepted",
            "quarantined",
            "duplicates",
            "late",
            F.coalesce("by_reason", F.create_map().cast("map<string,bigint>")).alias(
                "quarantined_by_reason"
            ),
            "released",
            "rejected",
        )
    )
