"""News headlines through the medallion — a streaming query of its own (``news_query``), reading
only the news topic, on its own trigger interval (``news.trigger_seconds``), so it never
lengthens a price batch.

A micro-batch: every record → ``bronze.market_events`` (``append_once``); the first copy of each
event id (``bronze.first_copies``: Spark state, as for prices) is parsed — a headline goes to
``silver.news`` with what ``lakehouse.domain.intake.news_text`` reads in it (MERGEd on its id:
inserted once,
ever), a record that is not a headline to ``silver.quarantine`` with its reason; then the days,
commodities and provinces the batch touched are recomputed in ``gold.news_signal`` from all of
``silver.news`` of those days, and the ``news_surge`` rule (``streaming_jobs.alerts``) judges
the province × commodity keys written, with the lifecycle of the other alerts (episodes,
cool-down, MERGE into ``gold.alerts``).
Every write is idempotent, so a batch replayed after a crash changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.udf import UserDefinedFunction

from lakehouse.catalog.alert_rules import NEWS_SURGE
from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.events import NewsEvent, spark_schema
from lakehouse.catalog.reference import NATIONAL
from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_ALERTS,
    GOLD_NEWS_SIGNAL,
    SILVER_NEWS,
    SILVER_QUARANTINE,
    query_checkpoint,
)
from lakehouse.config.logs import Laps
from lakehouse.config.settings import Settings
from lakehouse.domain.intake.news_text import lexicon, read_headline
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.spark import GOLD_POOL, pinned
from streaming_jobs.alerts.news import news_surge_alerts, news_surge_signals
from streaming_jobs.alerts.step import upsert_alerts
from streaming_jobs.batch_values import batch_clock, batch_number
from streaming_jobs.bronze import (
    BRONZE_COLUMNS,
    ensure_shared_tables,
    first_copies,
    read_kafka,
    to_bronze,
)
from streaming_jobs.row_kinds import KIND, RowKind

log = logging.getLogger(__name__)

NEWS_QUERY = "news"
CORRUPT = "_corrupt_record"
NEWS_SCHEMA = T.StructType(
    [*spark_schema(NewsEvent).fields, T.StructField(CORRUPT, T.StringType(), True)]
)
REQUIRED = ("event_id", "published_at", "title", "source")
READING = T.StructType(
    [
        T.StructField(
            "mentions",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("commodity", T.StringType()),
                        T.StructField("direction", T.StringType()),
                    ]
                )
            ),
        ),
        T.StructField("province", T.StringType()),
        T.StructField("regency", T.StringType()),
        T.StructField("topic", T.StringType()),
    ]
)


def news_reader(conf: Conf) -> UserDefinedFunction:
    """The UDF reading a headline and its lead with the lexicon of ``conf`` (loaded once per
    Python worker)."""

    def read(title: str | None, text: str | None) -> dict[str, Any] | None:
        if title is None:
            return None
        reading = read_headline(lexicon(conf), title, text)
        return {
            "mentions": [
                {"commodity": m.commodity, "direction": m.direction} for m in reading.mentions
            ],
            "province": reading.province,
            "regency": reading.regency,
            "topic": reading.topic,
        }

    return F.udf(read, READING)


def _rule(rule: str, text: Column) -> Column:
    return F.struct(F.lit(rule).alias("rule"), text.alias("text"))


def parse_news(records: DataFrame) -> DataFrame:
    """Bronze rows of the news topic → one row per record: ``raw``, the headline's fields and
    ``reasons`` (empty for a headline; else ``malformed_json``, ``schema_mismatch`` or
    ``missing_field``) with ``error`` in words."""
    parsed = records.select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "ingest_time",
        F.col("value").alias("raw"),
        F.from_json("value", NEWS_SCHEMA, {"columnNameOfCorruptRecord": CORRUPT}).alias("e"),
        F.from_json("value", "map<string,string>").isNotNull().alias("_is_object"),
    ).select("*", "e.*")
    missing = F.concat_ws(", ", *[F.when(F.col(c).isNull(), F.lit(c)) for c in REQUIRED])
    rule_error = (
        F.when(~F.col("_is_object"), _rule("malformed_json", F.lit("not a JSON object")))
        .when(
            F.col(CORRUPT).isNotNull()
            | F.col("event_type").isNull()
            | (F.col("event_type") != "news"),
            _rule(
                "schema_mismatch",
                F.lit("not a news event (event_type news, published_at ISO-8601 with offset)"),
            ),
        )
        .when(missing != "", _rule("missing_field", F.concat(F.lit("missing "), missing)))
    )
    return (
        parsed.withColumn("_rule", rule_error)
        .withColumn(
            "reasons",
            F.when(F.col("_rule").isNull(), F.array().cast("array<string>")).otherwise(
                F.array(F.col("_rule").getField("rule"))
            ),
        )
        .withColumn("error", F.col("_rule").getField("text"))
        .drop("e", "_is_object", "_rule", CORRUPT)
    )


def news_rows(parsed: DataFrame, batch_id: int, conf: Conf) -> DataFrame:
    """The ``silver.news`` rows of a batch: its headlines, read with ``conf``'s lexicon."""
    read = parsed.where(F.size("reasons") == 0).withColumn(
        "reading", news_reader(conf)(F.col("title"), F.col("text"))
    )
    return read.select(
        "event_id",
        "published_at",
        "title",
        "source",
        "url",
        "text",
        "collected_from",
        F.coalesce("reading.mentions", F.array().cast(READING["mentions"].dataType)).alias(
            "mentions"
        ),
        "reading.province",
        "reading.regency",
        "reading.topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "ingest_time",
        batch_number(batch_id).alias("news_batch_id"),
    )


def quarantine_rows(parsed: DataFrame, now: Column) -> DataFrame:
    """The ``silver.quarantine`` rows of a batch: news records that are not a headline, with
    the columns the price query's quarantine rows have (``event_type`` news)."""
    null = F.lit(None)
    return parsed.where(F.size("reasons") > 0).select(
        "raw",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "ingest_time",
        "event_id",
        F.lit("news").alias("event_type"),
        null.cast("string").alias("market_id"),
        "source",
        null.cast("string").alias("device_id"),
        null.cast("string").alias("subject"),
        F.col("published_at").alias("observed_at"),
        "reasons",
        null.cast("map<string,double>").alias("details"),
        "error",
        now.alias("quarantined_at"),
        F.to_date(now).alias("quarantine_date"),
        null.cast("bigint").alias("silver_batch_id"),
    )


def local_day(ts: Column, tz: str) -> Column:
    return F.to_date(F.from_utc_timestamp(ts, tz))


def news_signal(news: DataFrame, tz: str, now: Column) -> DataFrame:
    """``gold.news_signal`` rows of the headlines ``news`` (all of the days concerned): per local
    day × commodity × province, the headlines and how many say up, down, stable."""
    mentioned = news.select(
        local_day(F.col("published_at"), tz).alias("date"),
        F.coalesce("province", F.lit(NATIONAL)).alias("province"),
        F.explode("mentions").alias("m"),
    )
    counted = mentioned.groupBy("date", F.col("m.commodity").alias("commodity"), "province").agg(
        F.count(F.lit(1)).alias("headlines"),
        *[
            F.count(F.when(F.col("m.direction") == d, True)).alias(d)
            for d in ("up", "down", "stable")
        ],
    )
    return counted.select(
        "date",
        "commodity",
        "province",
        "headlines",
        "up",
        "down",
        "stable",
        ((F.col("up") - F.col("down")) / F.col("headlines")).alias("net_direction"),
        F.log1p(F.col("headlines").cast("double")).alias("intensity"),
        now.alias("updated_at"),
    )


class NewsBatch:
    """The ``foreachBatch`` function of the news query: its input is every Kafka record of the
    micro-batch (``kind`` ``record``) and the first copy of each event id (``kind`` ``first``)."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.lake = SparkLake(spark, settings)
        self.conf = conf_of(settings)
        ensure_shared_tables(spark, settings)
        self.lake[SILVER_NEWS].ensure()
        self.lake[GOLD_NEWS_SIGNAL].ensure()

    def __call__(self, rows: DataFrame, batch_id: int) -> None:
        context = self.spark.sparkContext
        context.setLocalProperty("spark.scheduler.pool", GOLD_POOL)  # after the price batches
        writer = f"{NEWS_QUERY}:{context.getLocalProperty('sql.streaming.queryId')}"
        laps = Laps()
        batch = rows.transform(pinned)
        if batch.isEmpty():
            return
        now = datetime.now(UTC)
        records = RowKind.RECORD.rows(batch).select(*BRONZE_COLUMNS)
        self.lake[BRONZE_EVENTS].append_once(records, writer, batch_id)
        parsed = parse_news(RowKind.FIRST.rows(batch)).transform(pinned)
        headlines = news_rows(parsed, batch_id, self.conf).transform(pinned)
        laps("read")
        if not headlines.isEmpty():
            self.lake[SILVER_NEWS].upsert(headlines, only_if="false")
        bad = quarantine_rows(parsed, batch_clock(now))
        if not bad.isEmpty():
            self.lake[SILVER_QUARANTINE].append_once(bad, writer, batch_id)
        laps("silver")
        days = [
            r[0] for r in headlines.select(local_day("published_at", self.tz)).distinct().collect()
        ]
        if days:
            self._surges(self._signal(days, now), now)
        laps("gold")
        log.info("news batch done", extra={"batch_id": batch_id, "seconds": laps.seconds})

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def _signal(self, days: list, now: datetime) -> DataFrame:
        """Recompute ``gold.news_signal`` for ``days`` from all of ``silver.news`` there; the
        rows written."""
        news = (
            self.lake[SILVER_NEWS]
            .read()
            .where(local_day(F.col("published_at"), self.tz).isin(days))
        )
        signal = news_signal(news, self.tz, batch_clock(now)).transform(pinned)
        self.lake[GOLD_NEWS_SIGNAL].upsert(signal)
        return signal

    def _surges(self, written: DataFrame, now: datetime) -> None:
        """The ``news_surge`` alerts of the province × commodity keys the batch wrote and of
        those with an open one, judged over their whole signal (a small table)."""
        keys = written.select("province", "commodity")
        if self.lake[GOLD_ALERTS].exists():
            still_open = (
                self.lake[GOLD_ALERTS]
                .read()
                .where((F.col("rule") == NEWS_SURGE) & (F.col("status") == "open"))
            )
            keys = keys.unionByName(
                still_open.select(F.col("region").alias("province"), "commodity")
            )
        signal = self.lake[GOLD_NEWS_SIGNAL].read().join(keys.distinct(), ["province", "commodity"])
        rules = self.conf.alerts.news_surge
        today = local_day(batch_clock(now), self.tz)
        rows = news_surge_alerts(
            news_surge_signals(signal, rules, self.tz, today), rules, self.conf, batch_clock(now)
        ).transform(pinned)
        if not rows.isEmpty():
            upsert_alerts(self.lake, rows, now)


def news_query(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """Kafka (the news topic) → bronze, ``silver.news`` / quarantine, ``gold.news_signal``."""
    records = to_bronze(read_kafka(spark, settings, [settings.kafka.topics.news]))
    firsts = first_copies(records, conf_of(settings).quality.hard.duplicate_horizon_hours)
    every = records.select(RowKind.RECORD.lit().alias(KIND), *BRONZE_COLUMNS)
    first = firsts.select(RowKind.FIRST.lit().alias(KIND), *BRONZE_COLUMNS)
    return (
        every.unionByName(first)
        .writeStream.queryName(NEWS_QUERY)
        .foreachBatch(NewsBatch(spark, settings))
        .option("checkpointLocation", str(query_checkpoint(settings, NEWS_QUERY)))
        .trigger(processingTime=f"{settings.news.trigger_seconds} seconds")
        .start()
    )
