"""Bronze: every Kafka record, raw, with its coordinates. Nothing is parsed or dropped here.

The silver query gets each record twice in a micro-batch: every record as bronze, and the first
copy of each event id again (``first_copies``) out of Spark's state store, which remembers the
ids it has seen for ``duplicate_horizon_hours`` — so deduplication costs the same whatever the
size of the lakehouse, and ``received − first copies`` is the duplicate count of the batch.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog.tables import BRONZE_EVENTS, SILVER_QUARANTINE
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.history_staging import FIELDS, SEPARATOR, Role
from lakehouse.io.kafka_clients import spark_options
from streaming_jobs.batch_values import batch_time

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

#: the tables every query reading Kafka appends to (silver, supply, news): created before any of
#: them starts, since the first appends of two queries to one empty folder race and the one that
#: loses fails its batch (DELTA_PROTOCOL_CHANGED, seen on a first start)
SHARED_APPENDS = (BRONZE_EVENTS, SILVER_QUARANTINE)


def ensure_shared_tables(spark: SparkSession, settings: Settings) -> None:
    """Create ``SHARED_APPENDS`` (empty, from the registry) where they do not exist yet."""
    lake = SparkLake(spark, settings)
    for table in SHARED_APPENDS:
        lake[table].ensure()


def to_bronze(kafka_records: DataFrame) -> DataFrame:
    """Kafka source rows (key/value as bytes) → bronze rows (key/value as UTF-8 text). In a
    stream, ``ingest_time`` is the micro-batch's time: the same for its rows, and again the
    same when the batch is replayed after a crash."""
    return kafka_records.withColumn("ingest_time", batch_time()).select(
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


def sender(text: str = "value") -> list[Column]:
    """Who sent a record, read from its ``text`` the same way for every copy (``q_source``: the
    event's source, the Kafka topic when it has none; ``q_device``: its device, empty when
    none) — what the batch's data quality counts per."""
    return [
        F.coalesce(F.get_json_object(text, "$.source"), F.col("topic")).alias("q_source"),
        F.coalesce(F.get_json_object(text, "$.device_id"), F.lit("")).alias("q_device"),
    ]


def first_copies(bronze: DataFrame, horizon_hours: float) -> DataFrame:
    """The first copy of each event not seen in the last ``horizon_hours`` of ingest time (the
    copies after it are duplicates). Streaming: the seen ids are state of the query (watermarked
    on ingest time, which never runs backwards, so no record is ever dropped as late)."""
    keyed = bronze.withColumn("_identity", identity(bronze))
    if bronze.isStreaming:
        keyed = keyed.withWatermark("ingest_time", f"{int(horizon_hours * 3600)} seconds")
        firsts = keyed.dropDuplicatesWithinWatermark(["_identity"])
    else:  # one batch (tests, a one-off re-run): no state, its own first copies
        firsts = keyed.dropDuplicates(["_identity"])
    return firsts.drop("_identity")


def read_kafka(
    spark: SparkSession, settings: Settings, topics: list[str], max_offsets: int | None = None
) -> DataFrame:
    """Streaming source over the given topics, from the earliest offset on first start.

    The source's consumers are kept between micro-batches, each with a fetch in flight for the
    offset after its last: ``fetch_max_wait_ms`` bounds how long the broker holds that fetch when
    no record has come since (Kafka's default, 500 ms, was paid by every batch). ``max_offsets``:
    records per micro-batch at most (default ``spark.max_offsets_per_trigger``)."""
    return (
        spark.readStream.format("kafka")
        .options(**spark_options(settings))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_offsets or settings.spark.max_offsets_per_trigger)
        .option("kafka.fetch.max.wait.ms", settings.spark.fetch_max_wait_ms)
        .load()
    )


def read_staged(spark: SparkSession, settings: Settings, folder: str) -> DataFrame:
    """Streaming source over the staged records of the bulk history load in ``folder``
    (``lakehouse.io.history_staging``), as the Kafka source's columns: the topic its role
    names, the load as the partition, the record's position in it as the offset, and the
    micro-batch's time as the Kafka timestamp (when the record entered the platform).
    ``history.files_per_trigger`` staged files a micro-batch."""
    fields = F.split(F.col("value"), SEPARATOR, FIELDS)
    topic = F.lit(settings.kafka.topics.deadletter)
    for role in Role:
        topic = F.when(fields[0] == role.value, F.lit(role.topic(settings.kafka.topics))).otherwise(
            topic
        )
    return (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", settings.history.files_per_trigger)
        .load(folder)
        .select(
            F.nullif(fields[3], F.lit("")).alias("key"),
            fields[4].alias("value"),
            topic.alias("topic"),
            fields[1].cast("int").alias("partition"),
            fields[2].cast("bigint").alias("offset"),
            batch_time().alias("timestamp"),
        )
    )
