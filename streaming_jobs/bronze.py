"""Bronze: every Kafka record, raw, with its coordinates. Nothing is parsed or dropped here."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse import delta_io
from lakehouse.settings import Settings
from lakehouse.tables import BRONZE_EVENTS

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
    """Kafka source rows (key/value as bytes) → bronze rows (key/value as UTF-8 text)."""
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


def read_kafka(spark: SparkSession, settings: Settings, topics: list[str]) -> DataFrame:
    """Streaming source over the given topics, from the earliest offset on first start."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", settings.spark.max_offsets_per_trigger)
        .load()
    )


def bronze_query(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """Kafka (all platform topics) → ``bronze.market_events``; exactly once via the Delta sink's
    checkpointed batch ids."""
    table = BRONZE_EVENTS
    delta_io.ensure_table(spark, table, settings)  # the silver query streams from it at once
    source = read_kafka(spark, settings, settings.kafka.topics.all())
    return (
        to_bronze(source)
        .writeStream.format("delta")
        .queryName(table.name)
        .outputMode("append")
        .partitionBy(*table.partition_by)
        .option("checkpointLocation", str(table.checkpoint(settings)))
        .trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
        .start(str(table.path(settings)))
    )
