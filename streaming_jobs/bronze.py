"""Bronze: every Kafka record, raw, with its coordinates. Nothing is parsed or dropped here.

The silver query reads Kafka once and gets each record twice in a micro-batch: every record as
bronze (``first_copy`` false), and the first copy of each event id again (``first_copy`` true)
out of Spark's state store, which remembers the ids it has seen for
``duplicate_horizon_hours`` — so deduplication costs the same whatever the size of the
lakehouse, and ``received − first copies`` is the duplicate count of the batch.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.kafka_clients import spark_options
from lakehouse.settings import Settings

BRONZE_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "key",
    "value",
    "ingest_time",
    "ingest_date",
)


def to_bronze(kafka_records: DataFrame) -> DataFrame:
    """Kafka source rows (key/value as bytes) → bronze rows (key/value as UTF-8 text). In a
    stream, ``ingest_time`` is the micro-batch's time: the same for its rows, and again the
    same when the batch is replayed after a crash."""
    return kafka_records.withColumn("ingest_time", F.current_timestamp()).select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        F.col("ingest_time"),
        F.to_date("ingest_time").alias("ingest_date"),
    )


def identity(bronze: DataFrame) -> Column:
    """What makes two records the same event: its ``event_id``, or for a record without one
    (not JSON, a dead letter) its Kafka coordinates."""
    return F.coalesce(
        F.get_json_object("value", "$.event_id"),
        F.concat_ws(":", "topic", "partition", "offset"),
    )


def with_first_copies(bronze: DataFrame, horizon_hours: float) -> DataFrame:
    """Bronze rows (``first_copy`` false) and, again, the first copy of each event not seen in
    the last ``horizon_hours`` of ingest time (``first_copy`` true). Streaming: the seen ids are
    state of the query (watermarked on ingest time, which never runs backwards, so no record is
    ever dropped as late)."""
    keyed = bronze.withColumn("_identity", identity(bronze))
    if bronze.isStreaming:
        keyed = keyed.withWatermark("ingest_time", f"{int(horizon_hours * 3600)} seconds")
        firsts = keyed.dropDuplicatesWithinWatermark(["_identity"])
    else:  # one batch (tests, a one-off re-run): no state, its own first copies
        firsts = keyed.dropDuplicates(["_identity"])
    firsts = firsts.drop("_identity")
    return bronze.withColumn("first_copy", F.lit(False)).unionByName(
        firsts.withColumn("first_copy", F.lit(True))
    )


def read_kafka(spark: SparkSession, settings: Settings, topics: list[str]) -> DataFrame:
    """Streaming source over the given topics, from the earliest offset on first start."""
    return (
        spark.readStream.format("kafka")
        .options(**spark_options(settings))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", settings.spark.max_offsets_per_trigger)
        .load()
    )
