"""Data quality of a micro-batch — a pure function from its rows to those of
``gold.data_quality``: per source × device, received = accepted + quarantined + duplicates;
beside them, the held prices the batch released or rejected
(``lakehouse.domain.validation.holds``)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog.events import HoldStatus
from streaming_jobs.batch_values import batch_number
from streaming_jobs.row_kinds import KIND, RowKind

KEYS = ("source", "device_id")


def batch_quality(batch: DataFrame, reviews_topic: str, batch_id: int) -> DataFrame:
    """``batch``: a silver micro-batch's rows — every Kafka record (``kind`` ``record``) and
    the judged first copies (``kind`` ``event``, ``reasons`` empty when accepted) with who sent
    them (``q_source``, ``q_device``: ``bronze.sender``), and the batch's decisions on holds
    (``kind`` ``decision``). Operators' reviews are not counted. Duplicates are the records
    that are not a first copy. The batch's time is its records' ``ingest_time`` (judged rows:
    ``batch_time``)."""
    record = RowKind.RECORD.of()
    rows = batch.where(
        RowKind.EVENT.of() | RowKind.DECISION.of() | (record & (F.col("topic") != reviews_topic))
    ).select(
        F.col("q_source").alias("source"),
        F.col("q_device").alias("device_id"),
        KIND,
        "reasons",
        "decision",
        F.when(record, F.col("ingest_time")).otherwise(F.col("batch_time")).alias("batch_time"),
    )
    event = RowKind.EVENT.of()
    count = lambda condition: F.count(F.when(condition, 1))  # noqa: E731 - a Spark expression
    reason_counts = (
        rows.where(event)
        .select(*KEYS, F.explode("reasons").alias("reason"))
        .groupBy(*KEYS, "reason")
        .count()
        .groupBy(*KEYS)
        .agg(F.map_from_entries(F.collect_list(F.struct("reason", "count"))).alias("by_reason"))
    )
    return (
        rows.groupBy(*KEYS)
        .agg(
            count(record).alias("received"),
            count(event & (F.size("reasons") == 0)).alias("accepted"),
            count(event & (F.size("reasons") > 0)).alias("quarantined"),
            (count(record) - count(event)).alias("duplicates"),
            count(event & F.array_contains("reasons", "late")).alias("late"),
            count(F.col("decision") == HoldStatus.released.value).alias("released"),
            count(F.col("decision") == HoldStatus.rejected.value).alias("rejected"),
            F.max("batch_time").alias("batch_time"),
        )
        .join(reason_counts, list(KEYS), "left")
        .select(
            batch_number(batch_id).alias("batch_id"),
            "batch_time",
            F.to_date("batch_time").alias("date"),
            *KEYS,
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
