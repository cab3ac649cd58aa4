"""Bronze → silver → gold: the micro-batch that wires the pure transforms to the Delta tables.

One streaming query reads ``bronze.market_events`` and, per micro-batch, writes silver (prices,
sensors, quarantine and the state behind deduplication and the statistical rules), then
updates gold for the keys the batch touched and, last, evaluates the alert rules on it
(``streaming_jobs.alerting``). Every silver append carries the batch id as
Delta's ``txnVersion`` and every gold write is a MERGE recomputed from silver, so a batch that
is replayed after a crash writes nothing twice. State reads only see earlier batches
(``silver_batch_id < batch_id``), so a replayed batch reaches the same verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse import delta_io
from lakehouse.events import EVENT_MODELS
from lakehouse.rules import QualityRules, quality_rules
from lakehouse.settings import Settings
from lakehouse.tables import (
    BRONZE_EVENTS,
    GOLD_DATA_QUALITY,
    GOLD_DATA_QUALITY_DAILY,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_HOURLY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    GOLD_SENSOR_HOURLY,
    SILVER_EVENT_LOG,
    SILVER_PRICE_HISTORY,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
    Table,
)
from streaming_jobs import gold
from streaming_jobs.alerting import AlertStep
from streaming_jobs.alerts import alert_rules
from streaming_jobs.silver import (
    LINEAGE,
    local_date,
    parse_events,
    price_statistics,
    reference_frames,
    sensor_statistics,
    split_duplicates,
    validate_prices,
    validate_sensors,
)

log = logging.getLogger(__name__)

APP_ID = "smartmarket-silver"
QUERY_NAME = "silver_gold"
SENSOR_HISTORY = timedelta(days=1)


def no_reasons() -> Column:
    return F.array().cast("array<string>")


def no_details() -> Column:
    return F.create_map().cast("map<string,double>")


PRICE_COLUMNS = (
    "event_id",
    "market_id",
    "commodity",
    "region",
    "price",
    "unit",
    "reported_unit",
    "observed_at",
    "source",
    "device_id",
    "attributes",
    "schema_version",
)
SENSOR_COLUMNS = (
    "event_id",
    "market_id",
    "device_id",
    "metric",
    "value",
    "observed_at",
    "source",
    "schema_version",
)


def event_columns(event_type: str, kept: tuple[str, ...]) -> list[str]:
    """The columns silver keeps of an event: ``kept``, then any other field of the event model,
    so that an optional field added to the model flows into silver without a rewrite (the
    append adds the new column to the table's schema; older rows read it as null)."""
    model = EVENT_MODELS[event_type]
    return [*kept, *(f for f in model.model_fields if f not in kept and f != "event_type")]


def in_parallel(tasks: list[Callable[[], None]]) -> None:
    """Run independent Delta writes concurrently: most of a small write is driver-side latency
    (snapshot, commit), which overlaps well even on two cores. Re-raises the first failure."""
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


class MedallionBatch:
    """The ``foreachBatch`` function of the silver/gold query."""

    def __init__(self, spark: SparkSession, settings: Settings, rules: QualityRules) -> None:
        self.spark = spark
        self.settings = settings
        self.rules = rules
        self.tz = settings.timezone
        self.ref = {k: v.cache() for k, v in reference_frames(spark, rules).items()}
        topics = settings.kafka.topics
        self.topic_types = {topics.prices: "price", topics.sensors: "sensor"}
        for table in (SILVER_EVENT_LOG, SILVER_PRICE_HISTORY):
            delta_io.ensure_table(spark, table, settings)
        self.alerts = AlertStep(spark, settings, alert_rules())

    # ---- state of earlier batches -------------------------------------------------------
    def _earlier(self, table: Table, batch_id: int) -> DataFrame:
        return delta_io.read(self.spark, table, self.settings).where(
            F.col("silver_batch_id") < batch_id
        )

    def _watermarks(self, batch_id: int) -> dict[str, datetime]:
        rows = (
            self._earlier(SILVER_EVENT_LOG, batch_id)
            .where("accepted")
            .groupBy("event_type")
            .agg(F.max("observed_at").alias("newest"))
            .collect()
        )
        return {r.event_type: r.newest.replace(tzinfo=UTC) for r in rows if r.newest}

    # ---- the batch ----------------------------------------------------------------------
    def __call__(self, bronze: DataFrame, batch_id: int) -> None:
        now = datetime.now(UTC)
        parsed = parse_events(
            bronze, self.topic_types, self.settings.kafka.topics.deadletter
        ).localCheckpoint()
        events = parsed.where(F.col("parse_error").isNull())
        fresh, duplicates = split_duplicates(
            events, self._earlier(SILVER_EVENT_LOG, batch_id).select("event_id")
        )
        fresh = fresh.localCheckpoint()
        watermarks = self._watermarks(batch_id)

        prices = self._prices(fresh, batch_id, now, watermarks.get("price")).localCheckpoint()
        sensors = self._sensors(fresh, batch_id, now, watermarks.get("sensor")).localCheckpoint()

        accepted_prices = prices.where(F.size("reasons") == 0)
        accepted_sensors = sensors.where(F.size("reasons") == 0)
        quarantine = self._quarantine(parsed, prices, sensors, now, batch_id)

        batch = F.lit(batch_id).cast("bigint").alias("silver_batch_id")
        observed_date = local_date(F.col("observed_at"), self.tz).alias("observed_date")
        log_rows = prices.select(
            "event_id", "observed_at", "reasons", F.lit("price").alias("event_type")
        ).unionByName(
            sensors.select(
                "event_id", "observed_at", "reasons", F.lit("sensor").alias("event_type")
            )
        )
        silver = {
            SILVER_PRICES: accepted_prices.select(
                *event_columns("price", PRICE_COLUMNS),
                "flags",
                "details",
                *LINEAGE,
                observed_date,
                batch,
            ),
            SILVER_SENSORS: accepted_sensors.select(
                *event_columns("sensor", SENSOR_COLUMNS),
                "flags",
                "details",
                *LINEAGE,
                observed_date,
                batch,
            ),
            SILVER_QUARANTINE: quarantine,
            SILVER_PRICE_HISTORY: prices.where(F.col("hard_ok")).select(
                "event_id", "market_id", "commodity", "region", "observed_at", "price", batch
            ),
            SILVER_EVENT_LOG: log_rows.select(
                "event_id",
                "event_type",
                "observed_at",
                (F.size("reasons") == 0).alias("accepted"),
                batch,
            ),
        }
        # the latest price needs nothing but this batch's verdicts: publish it with silver
        in_parallel(
            [
                partial(self._latest_price, accepted_prices),
                *[
                    partial(delta_io.append_once, rows, table, self.settings, APP_ID, batch_id)
                    for table, rows in silver.items()
                ],
            ]
        )
        in_parallel(
            [
                partial(self._gold_prices, accepted_prices),
                partial(self._gold_sensors, accepted_sensors),
            ]
        )
        # a batch's data-quality rows mark its silver and gold aggregates as complete
        self._quality(parsed, prices, sensors, duplicates, batch_id, now)
        # last: alerts, evaluated on all of it (gold.alerts)
        self.alerts(batch_id, accepted_prices, accepted_sensors, now)

    def _prices(
        self, fresh: DataFrame, batch_id: int, now: datetime, watermark: datetime | None
    ) -> DataFrame:
        def history(start: datetime, candidates: DataFrame) -> DataFrame:
            since = start - timedelta(days=self.rules.prices.history_days)
            return (
                self._earlier(SILVER_PRICE_HISTORY, batch_id)
                .where(F.col("observed_at") >= F.lit(since))
                .join(candidates.select("region", "commodity").distinct(), ["region", "commodity"])
            )

        checked = validate_prices(
            fresh.where(F.col("event_type") == "price"), self.ref, self.rules, now, watermark
        )
        return self._judge(
            checked, partial(price_statistics, rules=self.rules, tz=self.tz), history
        )

    def _sensors(
        self, fresh: DataFrame, batch_id: int, now: datetime, watermark: datetime | None
    ) -> DataFrame:
        def history(start: datetime, candidates: DataFrame) -> DataFrame:
            if not delta_io.exists(self.spark, SILVER_SENSORS, self.settings):
                return candidates.limit(0)
            return self._earlier(SILVER_SENSORS, batch_id).where(
                F.col("observed_at") >= F.lit(start - SENSOR_HISTORY)
            )

        checked = validate_sensors(
            fresh.where(F.col("event_type") == "sensor"), self.ref, self.rules, now, watermark
        )
        return self._judge(checked, partial(sensor_statistics, rules=self.rules), history)

    @staticmethod
    def _judge(
        checked: DataFrame,
        statistics: Callable[[DataFrame, DataFrame], DataFrame],
        history: Callable[[datetime, DataFrame], DataFrame],
    ) -> DataFrame:
        """The verdict on validated events: rows that broke a hard rule are quarantined for it;
        the others get the statistical flags they carry and the reasons, if any, to quarantine.
        Adds ``hard_ok``, ``flags``, ``reasons`` (empty: accepted) and ``details``."""
        checked = checked.withColumn("hard_ok", F.size("hard_reasons") == 0)
        candidates = checked.where("hard_ok")
        start = candidates.agg(F.min("observed_at")).first()[0]
        if start is None:
            return checked.withColumns(
                {"flags": no_reasons(), "reasons": F.col("hard_reasons"), "details": no_details()}
            )
        stat = statistics(candidates, history(start.replace(tzinfo=UTC), candidates)).select(
            "event_id", "stat_flags", "stat_reasons", "details"
        )
        return (
            checked.join(stat, "event_id", "left")
            .withColumn("flags", F.coalesce("stat_flags", no_reasons()))
            .withColumn(
                "reasons",
                F.when(~F.col("hard_ok"), F.col("hard_reasons")).otherwise(
                    F.coalesce("stat_reasons", no_reasons())
                ),
            )
            .withColumn("details", F.coalesce("details", no_details()))
        )

    def _quarantine(
        self, parsed: DataFrame, prices: DataFrame, sensors: DataFrame, now: datetime, batch_id: int
    ) -> DataFrame:
        def rows(df: DataFrame, subject: Column, reasons: Column, error: Column) -> DataFrame:
            return df.select(
                "raw",
                *LINEAGE,
                "event_id",
                "event_type",
                "market_id",
                "source",
                "device_id",
                subject.alias("subject"),
                "observed_at",
                reasons.alias("reasons"),
                F.col("details") if "details" in df.columns else no_details().alias("details"),
                error.alias("error"),
            )

        failed = rows(
            parsed.where(F.col("parse_error").isNotNull()),
            F.coalesce("commodity", "metric"),
            F.array("parse_error"),
            F.col("error"),
        )
        bad_prices = rows(
            prices.where(F.size("reasons") > 0),
            F.col("commodity"),
            F.col("reasons"),
            F.lit(None).cast("string"),
        )
        bad_sensors = rows(
            sensors.where(F.size("reasons") > 0),
            F.col("metric"),
            F.col("reasons"),
            F.lit(None).cast("string"),
        )
        return (
            failed.unionByName(bad_prices)
            .unionByName(bad_sensors)
            .withColumn("quarantined_at", F.lit(now))
            .withColumn("quarantine_date", F.to_date(F.lit(now)))
            .withColumn("silver_batch_id", F.lit(batch_id).cast("bigint"))
        )

    # ---- gold -----------------------------------------------------------------------------
    def _latest_price(self, accepted: DataFrame) -> None:
        """MERGE the batch's newest price per market × commodity (only if newer than gold's)."""
        if not accepted.isEmpty():
            delta_io.upsert(
                self.spark,
                gold.price_latest(accepted),
                GOLD_PRICE_LATEST,
                self.settings,
                only_if="s.observed_at >= t.observed_at",
            )

    def _gold_prices(self, accepted: DataFrame) -> None:
        if accepted.isEmpty():
            return
        spark, settings, tz = self.spark, self.settings, self.tz
        touched = accepted.select(
            "market_id", "commodity", local_date(F.col("observed_at"), tz).alias("observed_date")
        ).distinct()
        silver = delta_io.read(spark, SILVER_PRICES, settings).join(
            F.broadcast(touched), ["market_id", "commodity", "observed_date"]
        )

        def daily_then_regions() -> None:
            daily = gold.price_daily(silver, tz).localCheckpoint()
            delta_io.upsert(spark, daily, GOLD_PRICE_DAILY, settings)
            regions = daily.select("region", "commodity", "date").distinct()
            all_daily = delta_io.read(spark, GOLD_PRICE_DAILY, settings).join(
                F.broadcast(regions), ["region", "commodity", "date"]
            )
            delta_io.upsert(spark, gold.region_daily(all_daily), GOLD_REGION_DAILY, settings)

        in_parallel(
            [
                daily_then_regions,
                partial(
                    delta_io.upsert,
                    spark,
                    gold.price_hourly(silver, tz),
                    GOLD_PRICE_HOURLY,
                    settings,
                ),
            ]
        )

    def _gold_sensors(self, accepted: DataFrame) -> None:
        if accepted.isEmpty():
            return
        touched = accepted.select(
            "market_id", "metric", local_date(F.col("observed_at"), self.tz).alias("observed_date")
        ).distinct()
        silver = delta_io.read(self.spark, SILVER_SENSORS, self.settings).join(
            F.broadcast(touched), ["market_id", "metric", "observed_date"]
        )
        delta_io.upsert(
            self.spark, gold.sensor_hourly(silver, self.tz), GOLD_SENSOR_HOURLY, self.settings
        )

    def _quality(
        self,
        parsed: DataFrame,
        prices: DataFrame,
        sensors: DataFrame,
        duplicates: DataFrame,
        batch_id: int,
        now: datetime,
    ) -> None:
        """Per source × device: received = accepted + quarantined + duplicates."""

        def fates(df: DataFrame, fate: Column, reasons: Column) -> DataFrame:
            return df.select(
                F.coalesce("source", "topic").alias("source"),
                F.coalesce("device_id", F.lit("")).alias("device_id"),
                fate.alias("fate"),
                reasons.alias("reasons"),
            )

        verdict = F.when(F.size("reasons") == 0, "accepted").otherwise("quarantined")
        outcome = (
            fates(
                parsed.where(F.col("parse_error").isNotNull()),
                F.lit("quarantined"),
                F.array("parse_error"),
            )
            .unionByName(fates(duplicates, F.lit("duplicate"), no_reasons()))
            .unionByName(fates(prices, verdict, F.col("reasons")))
            .unionByName(fates(sensors, verdict, F.col("reasons")))
        )
        reason_counts = (
            outcome.select("source", "device_id", F.explode("reasons").alias("reason"))
            .groupBy("source", "device_id", "reason")
            .count()
            .groupBy("source", "device_id")
            .agg(F.map_from_entries(F.collect_list(F.struct("reason", "count"))).alias("by_reason"))
        )
        per_source = (
            outcome.groupBy("source", "device_id")
            .agg(
                F.count("*").alias("received"),
                F.count(F.when(F.col("fate") == "accepted", 1)).alias("accepted"),
                F.count(F.when(F.col("fate") == "quarantined", 1)).alias("quarantined"),
                F.count(F.when(F.col("fate") == "duplicate", 1)).alias("duplicates"),
                F.count(F.when(F.array_contains("reasons", "late"), 1)).alias("late"),
            )
            .join(reason_counts, ["source", "device_id"], "left")
            .select(
                F.lit(batch_id).cast("bigint").alias("batch_id"),
                F.lit(now).alias("batch_time"),
                F.to_date(F.lit(now)).alias("date"),
                "source",
                "device_id",
                "received",
                "accepted",
                "quarantined",
                "duplicates",
                "late",
                F.coalesce("by_reason", F.create_map().cast("map<string,bigint>")).alias(
                    "quarantined_by_reason"
                ),
            )
        )
        delta_io.append_once(per_source, GOLD_DATA_QUALITY, self.settings, APP_ID, batch_id)
        day = F.to_date(F.lit(now))
        batches = delta_io.read(self.spark, GOLD_DATA_QUALITY, self.settings).where(
            F.col("date") == day
        )
        delta_io.upsert(
            self.spark, gold.quality_daily(batches), GOLD_DATA_QUALITY_DAILY, self.settings
        )
        log.info("batch done", extra={"batch_id": batch_id})


def medallion_query(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """``bronze.market_events`` (as a Delta stream) → silver and gold, one micro-batch at a time."""
    handler = MedallionBatch(spark, settings, quality_rules())
    return (
        spark.readStream.format("delta")
        .option("maxFilesPerTrigger", 1000)
        .load(str(BRONZE_EVENTS.path(settings)))
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(handler)
        .option("checkpointLocation", str(settings.paths.checkpoint_root / "silver" / QUERY_NAME))
        .trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
        .start()
    )
