"""The two streaming queries of the pipeline — wiring only; the transforms are the pure
functions of ``bronze``, ``silver``, ``series_state``, ``quality``, ``gold`` and ``alerts``.

- **silver** (the freshness path): Kafka → one micro-batch writes ``bronze.market_events``,
  ``silver.prices`` / ``silver.sensors`` / ``silver.quarantine``, the bounded series state the
  statistical rules need, the held prices and the decisions on them (``holds``: confirmed ones
  and those an operator released reach ``silver.prices`` in the same batch) and, last, the
  batch's ``gold.data_quality`` rows. The live API follows ``silver.prices`` itself, so a price
  is live when this batch commits it. Deduplication is Spark state (``bronze.with_first_copies``);
  nothing in a batch reads more of the lakehouse than the series it touches.
- **gold** (off the freshness path): a Delta stream of ``gold.data_quality`` — one row set per
  completed silver batch — drives ``gold.price_latest``, the aggregates (daily, hourly,
  regional, sensors, quality per day) and the alert rules, recomputed from silver for the
  keys those batches touched.

Exactly once: every append carries its batch id as Delta's ``txnVersion``, every other write is
a MERGE that a replay repeats identically, and the series state keeps what a replayed batch
must compare with (``series_state``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from time import monotonic

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.util import inheritable_thread_target

from lakehouse import delta_io
from lakehouse.events import EVENT_MODELS, HoldStatus
from lakehouse.rules import QualityRules, quality_rules
from lakehouse.settings import Settings
from lakehouse.spark import GOLD_POOL, SILVER_POOL
from lakehouse.tables import (
    BRONZE_EVENTS,
    GOLD_ALERTS,
    GOLD_DATA_QUALITY,
    GOLD_DATA_QUALITY_DAILY,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_HOURLY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    GOLD_SENSOR_HOURLY,
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    SILVER_PRICE_STATE,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSOR_STATE,
    SILVER_SENSORS,
    Table,
    query_checkpoint,
)
from streaming_jobs import gold, holds, series_state
from streaming_jobs.alerting import AlertStep
from streaming_jobs.alerts import CHANGED, AlertRules, alert_rows, alert_rules, held_move_alerts
from streaming_jobs.bronze import BRONZE_COLUMNS, read_kafka, to_bronze, with_first_copies
from streaming_jobs.quality import batch_quality
from streaming_jobs.silver import (
    LINEAGE,
    judged,
    local_date,
    parse_events,
    price_statistics,
    quarantine_rows,
    reference_frames,
    sensor_statistics,
    validate_prices,
    validate_sensors,
)

log = logging.getLogger(__name__)
QueryFactory = Callable[[SparkSession, Settings], StreamingQuery]
StateAfter = Callable[[DataFrame], DataFrame]  # judged rows → the series state rows after them

APP_ID = "smartmarket-silver"
SILVER_QUERY = "silver"
GOLD_QUERY = "gold"
SENSOR_HISTORY = timedelta(days=1)
PRICE_SERIES = ("market_id", "commodity")
SENSOR_SERIES = ("device_id", "metric")

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


def price_columns() -> list[str]:
    """The columns of a ``silver.prices`` row (``silver_batch_id`` aside) — also what a held
    price keeps in ``silver.holds`` until it is released."""
    return [*event_columns("price", PRICE_COLUMNS), "flags", "details", *LINEAGE, "observed_date"]


def in_parallel(tasks: list[Callable[[], None]]) -> None:
    """Run independent Delta writes concurrently: most of a small write is driver-side latency
    (snapshot, commit), which overlaps well even on two cores. The tasks' jobs go to the
    caller's scheduler pool. Re-raises the first failure."""
    if not tasks:
        return
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        for future in [pool.submit(inheritable_thread_target(task)) for task in tasks]:
            future.result()


class Laps:
    """Seconds spent in each step of a batch, for its log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = monotonic()

    def __call__(self, step: str) -> None:
        now = monotonic()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now


class SilverFirst:
    """The silver query's batches before the gold query's steps. The two queries share the
    cores and the driver: a gold step that starts while a silver batch runs waits for it (at
    most ``spark.gold_yield_seconds``), so a price does not wait for the aggregates of the one
    before it. Under a steady load gold's steps start as silver batches end."""

    def __init__(self) -> None:
        self._silver_idle = threading.Event()
        self._silver_idle.set()

    @contextmanager
    def silver_batch(self) -> Iterator[None]:
        self._silver_idle.clear()
        try:
            yield
        finally:
            self._silver_idle.set()

    def gold_step(self, max_wait: float) -> bool:
        """Wait until no silver batch runs, at most ``max_wait`` seconds; whether none does."""
        return self._silver_idle.wait(max_wait)


PRIORITY = SilverFirst()  # shared by the two queries of this application


class Existing:
    """Whether a table exists yet, asked of Delta until it does (tables are never dropped)."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self._seen: set[Table] = set()

    def __call__(self, table: Table) -> bool:
        if table not in self._seen and delta_io.exists(self.spark, table, self.settings):
            self._seen.add(table)
        return table in self._seen


@dataclass(frozen=True)
class HoldOutcome:
    """What a silver batch does about held prices: the decisions it records, the released
    rows it appends to silver, the ``silver.holds`` rows it MERGEs."""

    decisions: DataFrame
    released: DataFrame
    changes: DataFrame


class SilverBatch:
    """The ``foreachBatch`` function of the silver query."""

    def __init__(self, spark: SparkSession, settings: Settings, rules: QualityRules) -> None:
        self.spark = spark
        self.settings = settings
        self.rules = rules
        self.tz = settings.timezone
        self.ref = {k: v.cache() for k, v in reference_frames(spark, rules).items()}
        topics = settings.kafka.topics
        self.topic_types = {topics.prices: "price", topics.sensors: "sensor"}
        self.reviews_topic = topics.reviews
        for table in (SILVER_PRICE_STATE, SILVER_SENSOR_STATE, BRONZE_EVENTS):
            delta_io.ensure_table(spark, table, settings)
        self._exists = Existing(spark, settings)

    def _state(self, table: Table, keys: tuple[str, ...], value: str, batch_id: int) -> DataFrame:
        state = delta_io.read(self.spark, table, self.settings)
        return series_state.history(state, batch_id, keys, value)

    def __call__(self, records: DataFrame, batch_id: int) -> None:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", SILVER_POOL)
        with PRIORITY.silver_batch():
            self._batch(records, batch_id)

    def _batch(self, records: DataFrame, batch_id: int) -> None:
        now = datetime.now(UTC)
        laps = Laps()
        everything = records.localCheckpoint()
        laps("read")
        records = everything.where(F.col("topic") != self.reviews_topic)  # events
        reviews = holds.parse_reviews(
            everything.where(F.col("first_copy") & (F.col("topic") == self.reviews_topic))
        ).localCheckpoint()
        parsed = parse_events(
            records.where("first_copy"), self.topic_types, self.settings.kafka.topics.deadletter
        ).localCheckpoint()
        events = parsed.where(F.col("parse_error").isNull())
        kinds = dict(events.groupBy("event_type").count().collect())
        prices, price_state_after = self._prices(events, batch_id, now, bool(kinds.get("price")))
        sensors, sensor_state_after = self._sensors(events, batch_id, now)
        # a kind the batch does not bring is not judged (its empty frames cost no job); the
        # series states follow from the judged rows, judged once
        if kinds.get("price"):
            prices = prices.localCheckpoint()
            price_state = price_state_after(prices).localCheckpoint()
        else:
            prices = prices.limit(0)
            price_state = price_state_after(prices)
        sensors = sensors.localCheckpoint() if kinds.get("sensor") else sensors.limit(0)
        sensor_state = sensor_state_after(sensors)
        laps("judge")
        held = self._holds(prices, price_state, reviews, batch_id, now, bool(kinds.get("price")))
        laps("holds")
        quality = batch_quality(
            records, parsed, prices, sensors, held.decisions if held else None, batch_id, now
        ).localCheckpoint()
        totals = quality.agg(
            F.sum("received"),
            F.sum("accepted"),
            F.sum("quarantined"),
            F.sum(F.col("released") + F.col("rejected")),
        ).first()
        laps("count")
        if not (totals[0] or held):
            return  # a batch without records (Spark runs some to expire state)

        accepted_prices = prices.where(F.size("reasons") == 0).select(*price_columns())
        if held:
            accepted_prices = accepted_prices.unionByName(held.released)
        accepted_sensors = sensors.where(F.size("reasons") == 0)
        batch = F.lit(batch_id).cast("bigint").alias("silver_batch_id")
        observed_date = local_date(F.col("observed_at"), self.tz).alias("observed_date")
        has_prices, has_sensors = bool(kinds.get("price") or held), bool(kinds.get("sensor"))
        appends = {BRONZE_EVENTS: everything.where(~F.col("first_copy")).select(*BRONZE_COLUMNS)}
        # an empty append is skipped, except the first: the gold query reads both tables
        if has_prices or not self._exists(SILVER_PRICES):
            appends[SILVER_PRICES] = accepted_prices.select(*price_columns(), batch)
        if held and not held.decisions.isEmpty():
            appends[SILVER_HOLD_DECISIONS] = held.decisions
        if has_sensors or not self._exists(SILVER_SENSORS):
            appends[SILVER_SENSORS] = accepted_sensors.select(
                *event_columns("sensor", SENSOR_COLUMNS),
                "flags",
                "details",
                *LINEAGE,
                observed_date,
                batch,
            )
        if totals[2] or not self._exists(SILVER_QUARANTINE):
            appends[SILVER_QUARANTINE] = quarantine_rows(parsed, prices, sensors, now, batch_id)
        merges = []  # skipped when empty: the same input skips them again on a replay
        if kinds.get("price"):
            merges.append(partial(self._advance, price_state, SILVER_PRICE_STATE))
        if has_sensors:
            merges.append(partial(self._advance, sensor_state, SILVER_SENSOR_STATE))
        in_parallel(
            [
                *[
                    partial(delta_io.append_once, rows, table, self.settings, APP_ID, batch_id)
                    for table, rows in appends.items()
                ],
                *merges,
            ]
        )
        laps("write")
        if held:  # after the releases: a replay that finds them committed decides the same
            delta_io.upsert(self.spark, held.changes, SILVER_HOLDS, self.settings)
        # last: the batch's quality rows say it is complete (the gold query follows them)
        delta_io.append_once(quality, GOLD_DATA_QUALITY, self.settings, APP_ID, batch_id)
        laps("complete")
        log.info(
            "silver batch done",
            extra={
                "batch_id": batch_id,
                "received": totals[0],
                "accepted": totals[1],
                "quarantined": totals[2],
                "decided": totals[3],
                "seconds": laps.seconds,
            },
        )

    def _prices(
        self, events: DataFrame, batch_id: int, now: datetime, present: bool
    ) -> tuple[DataFrame, StateAfter]:
        """The batch's prices with their verdicts, and how the price state follows from them
        (``present``: the batch has prices; else only the plans are built)."""
        p = self.rules.prices
        checked = validate_prices(
            events.where(F.col("event_type") == "price"), self.ref, self.rules, now
        )
        earlier = self._state(SILVER_PRICE_STATE, PRICE_SERIES, "price", batch_id)
        if present:  # the series of the provinces × commodities the batch touches, read once
            regions = checked.select("region", "commodity").distinct()
            earlier = earlier.join(
                F.broadcast(regions), ["region", "commodity"], "left_semi"
            ).localCheckpoint()
        horizon = timedelta(days=p.history_days)

        def statistics(candidates: DataFrame) -> DataFrame:
            history = earlier  # a backfill adds what the state does not hold
            late = series_state.uncovered(
                candidates, earlier, PRICE_SERIES, p.history_points, horizon
            )
            if (
                present and not late.isEmpty()
            ):  # a backfill: silver holds the history the state does not
                history = self._backfill_history(late, horizon).unionByName(history)
                history = history.dropDuplicates(["event_id"])
            return price_statistics(candidates, history, self.rules, self.tz)

        verdicts = judged(checked, statistics).withColumn(
            "observed_date", local_date(F.col("observed_at"), self.tz)
        )

        def state_after(judged_prices: DataFrame) -> DataFrame:
            return series_state.advanced(
                earlier,
                judged_prices.where("hard_ok"),
                PRICE_SERIES,
                ("region",),
                "price",
                p.history_points,
                horizon,
                batch_id,
            )

        return verdicts, state_after

    def _holds(
        self,
        prices: DataFrame,
        price_state: DataFrame,
        reviews: DataFrame,
        batch_id: int,
        now: datetime,
        has_prices: bool,
    ) -> HoldOutcome | None:
        """The batch's new holds, and the decisions on holds of the series it touched (from
        the series state after it) or that operators reviewed; None when there is none."""
        columns = price_columns()
        pool = holds.new_holds(prices, columns, batch_id, now) if has_prices else None
        has_reviews = not reviews.isEmpty()
        if has_reviews and (ignored := reviews.where(~F.col("valid")).count()):
            # only a writer other than the API can send one; it stays in bronze as it came
            log.warning(
                "reviews ignored: not a valid review (target_event_id, release|reject, reviewer)",
                extra={"batch_id": batch_id, "count": ignored},
            )
        if self._exists(SILVER_HOLDS) and (has_prices or has_reviews):
            stored = holds.as_of(delta_io.read(self.spark, SILVER_HOLDS, self.settings), batch_id)
            stored = stored.where(F.col("status").isin(*HoldStatus.reviewable()))
            touched = stored.join(
                price_state.select(*PRICE_SERIES), list(PRICE_SERIES), "left_semi"
            )
            targeted = stored.join(
                reviews.select(F.col("target_event_id").alias("event_id")), "event_id", "left_semi"
            )
            stored = touched.unionByName(targeted).dropDuplicates(["event_id"])
            pool = stored if pool is None else stored.unionByName(pool, allowMissingColumns=True)
        if pool is None:
            return None
        pool = pool.localCheckpoint()
        if pool.isEmpty():
            return None
        points = price_state.select(*PRICE_SERIES, F.explode("points").alias("p")).select(
            *PRICE_SERIES, "p.*"
        )
        decisions = holds.decided(
            pool,
            holds.confirmations(pool, points, self.rules.hold),
            holds.reviewed(pool, reviews),
            batch_id,
            now,
        ).localCheckpoint()
        fresh = pool.where(F.col("held_batch_id") == batch_id)
        return HoldOutcome(
            decisions=decisions,
            released=holds.released(pool, decisions, columns),
            changes=fresh.join(decisions, "event_id", "left_anti").unionByName(
                holds.updated(pool, decisions, batch_id)
            ),
        )

    def _backfill_history(self, late: DataFrame, horizon: timedelta) -> DataFrame:
        """Accepted prices of the provinces × commodities of ``late`` in the ``horizon`` before
        each of their days: the partitions of those days only, so the read costs what the
        backfill touches, not the size of silver."""
        wanted = late.select("region", "commodity", "observed_at").localCheckpoint()
        days = {
            r[0] - timedelta(days=back)
            for r in wanted.select(local_date(F.col("observed_at"), self.tz)).distinct().collect()
            for back in range(horizon.days + 2)
        }
        return (
            delta_io.read(self.spark, SILVER_PRICES, self.settings)
            .where(F.col("observed_date").isin(sorted(days)))
            .join(
                F.broadcast(wanted.select("region", "commodity").distinct()),
                ["region", "commodity"],
            )
            .select("market_id", "commodity", "region", "observed_at", "event_id", "price")
        )

    def _sensors(
        self, events: DataFrame, batch_id: int, now: datetime
    ) -> tuple[DataFrame, StateAfter]:
        """The batch's sensor readings with their verdicts, and how the sensor state follows
        from them."""
        checked = validate_sensors(
            events.where(F.col("event_type") == "sensor"), self.ref, self.rules, now
        )
        earlier = self._state(SILVER_SENSOR_STATE, SENSOR_SERIES, "value", batch_id)
        verdicts = judged(
            checked, lambda candidates: sensor_statistics(candidates, earlier, self.rules)
        )

        def state_after(judged_sensors: DataFrame) -> DataFrame:
            return series_state.advanced(
                earlier,
                judged_sensors.where(F.size("reasons") == 0),
                SENSOR_SERIES,
                (),
                "value",
                self.rules.sensors.stuck_readings,
                SENSOR_HISTORY,
                batch_id,
            )

        return verdicts, state_after

    def _advance(self, state: DataFrame, table: Table) -> None:
        """MERGE the series state rows a batch changed; a row keeps its old points as
        ``previous`` and is left alone by a replay of the batch that already changed it."""
        delta_io.upsert(
            self.spark,
            state,
            table,
            self.settings,
            only_if="t.silver_batch_id < s.silver_batch_id",
            matched={"previous": "t.points"},
        )


class GoldBatch:
    """The ``foreachBatch`` function of the gold query: its input is the ``gold.data_quality``
    rows of the silver batches completed since the last gold batch."""

    def __init__(self, spark: SparkSession, settings: Settings, rules: AlertRules) -> None:
        self.spark = spark
        self.settings = settings
        self.tz = settings.timezone
        self.alerts = AlertStep(spark, settings, rules)
        self._exists = Existing(spark, settings)
        self._yield = partial(PRIORITY.gold_step, settings.spark.gold_yield_seconds)

    def _of_batches(self, table: Table, batch_ids: list[int]) -> DataFrame:
        return (
            delta_io.read(self.spark, table, self.settings)
            .where(F.col("silver_batch_id").isin(batch_ids))
            .localCheckpoint()
        )

    def __call__(self, quality: DataFrame, gold_batch_id: int) -> None:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", GOLD_POOL)
        now = datetime.now(UTC)
        quality = quality.localCheckpoint()
        batch_ids = sorted(r[0] for r in quality.select("batch_id").distinct().collect())
        if not batch_ids:
            return
        laps = Laps()
        self._yield()
        prices = self._of_batches(SILVER_PRICES, batch_ids)
        sensors = self._of_batches(SILVER_SENSORS, batch_ids)
        laps("read")
        self._yield()
        in_parallel(
            [
                partial(self._gold_prices, prices),
                partial(self._gold_sensors, sensors),
                partial(self._quality_daily, quality),
            ]
        )
        laps("aggregates")
        # last: alerts, evaluated on all of it (gold.alerts)
        self._yield()
        self.alerts(gold_batch_id, prices, sensors, quality, now)
        self._yield()
        self._held_move_alerts(batch_ids, now)
        laps("alerts")
        log.info(
            "gold batch done",
            extra={
                "batch_id": gold_batch_id,
                "silver_batches": batch_ids,
                "seconds": laps.seconds,
            },
        )

    def _held_move_alerts(self, batch_ids: list[int], now: datetime) -> None:
        """The alerts of the prices these silver batches held or decided on; a confirmed one
        resolves ``price_move.cooldown_hours`` after its confirmation."""
        if not self._exists(SILVER_HOLDS):
            return
        fresh = delta_io.read(self.spark, SILVER_HOLDS, self.settings).where(
            F.col("held_batch_id").isin(batch_ids)
        )
        decisions = (
            self._of_batches(SILVER_HOLD_DECISIONS, batch_ids)
            if self._exists(SILVER_HOLD_DECISIONS)
            else None
        )
        rules = self.alerts.rules
        rows = alert_rows(held_move_alerts(fresh, decisions, rules), rules, F.lit(now))
        cooldown = timedelta(hours=rules.price_move.cooldown_hours)
        stale = (
            delta_io.read(self.spark, GOLD_ALERTS, self.settings)
            .where((F.col("rule") == "price_confirmed") & (F.col("status") == "open"))
            .where(F.col("last_firing_at") < F.lit(now - cooldown))
            .withColumn("status", F.lit("resolved"))
            .withColumn(
                "resolved_at",
                F.col("last_firing_at")
                + F.expr(f"INTERVAL {int(cooldown.total_seconds())} SECONDS"),
            )
            .withColumn("updated_at", F.lit(now).cast("timestamp"))
        )
        rows = rows.unionByName(stale.join(rows.select("alert_id"), "alert_id", "left_anti"))
        rows = rows.localCheckpoint()
        if not rows.isEmpty():
            delta_io.upsert(self.spark, rows, GOLD_ALERTS, self.settings, only_if=CHANGED)

    def _touched(self, silver: Table, rows: DataFrame, keys: tuple[str, ...]) -> DataFrame:
        """The silver rows of the ``keys`` × local days that ``rows`` touched: the partitions
        of those days only."""
        touched = rows.select(*keys, "observed_date").distinct().localCheckpoint()
        days = [r[0] for r in touched.select("observed_date").distinct().collect()]
        return (
            delta_io.read(self.spark, silver, self.settings)
            .where(F.col("observed_date").isin(days))
            .join(F.broadcast(touched), [*keys, "observed_date"])
        )

    def _gold_prices(self, accepted: DataFrame) -> None:
        if accepted.isEmpty():
            return
        spark, settings, tz = self.spark, self.settings, self.tz
        silver = self._touched(SILVER_PRICES, accepted, ("market_id", "commodity"))

        def daily_then_regions() -> None:
            daily = gold.price_daily(silver, tz).localCheckpoint()
            delta_io.upsert(spark, daily, GOLD_PRICE_DAILY, settings)
            regions = daily.select("region", "commodity", "date").distinct().localCheckpoint()
            days = [r[0] for r in regions.select("date").distinct().collect()]
            all_daily = (
                delta_io.read(spark, GOLD_PRICE_DAILY, settings)
                .where(F.col("date").isin(days))
                .join(F.broadcast(regions), ["region", "commodity", "date"])
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
                partial(  # the newest price per series, where newer than gold's
                    delta_io.upsert,
                    spark,
                    gold.price_latest(accepted),
                    GOLD_PRICE_LATEST,
                    settings,
                    only_if="s.observed_at >= t.observed_at",
                ),
            ]
        )

    def _gold_sensors(self, accepted: DataFrame) -> None:
        if accepted.isEmpty():
            return
        silver = self._touched(SILVER_SENSORS, accepted, ("market_id", "metric"))
        delta_io.upsert(
            self.spark, gold.sensor_hourly(silver, self.tz), GOLD_SENSOR_HOURLY, self.settings
        )

    def _quality_daily(self, quality: DataFrame) -> None:
        """Recompute the per-day quality counts of the days these batches landed on."""
        days = [r[0] for r in quality.select("date").distinct().collect()]
        batches = delta_io.read(self.spark, GOLD_DATA_QUALITY, self.settings).where(
            F.col("date").isin(days)
        )
        delta_io.upsert(
            self.spark, gold.quality_daily(batches), GOLD_DATA_QUALITY_DAILY, self.settings
        )


def silver_query(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """Kafka (all platform topics) → bronze, silver, the live price and data quality."""
    handler = SilverBatch(spark, settings, quality_rules())
    records = to_bronze(read_kafka(spark, settings, settings.kafka.topics.all()))
    return (
        with_first_copies(records, handler.rules.hard.duplicate_horizon_hours)
        .writeStream.queryName(SILVER_QUERY)
        .foreachBatch(handler)
        .option("checkpointLocation", str(query_checkpoint(settings, SILVER_QUERY)))
        .trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
        .start()
    )


def gold_query(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """``gold.data_quality`` (as a Delta stream of completed silver batches) → gold and alerts."""
    delta_io.ensure_table(spark, GOLD_DATA_QUALITY, settings)
    handler = GoldBatch(spark, settings, alert_rules())
    return (
        spark.readStream.format("delta")
        .option("maxFilesPerTrigger", 1000)
        .load(str(GOLD_DATA_QUALITY.path(settings)))
        .writeStream.queryName(GOLD_QUERY)
        .foreachBatch(handler)
        .option("checkpointLocation", str(query_checkpoint(settings, GOLD_QUERY)))
        .trigger(processingTime=f"{settings.spark.gold_trigger_seconds} seconds")
        .start()
    )


def drain(spark: SparkSession, settings: Settings, *queries: QueryFactory) -> None:
    """Run each query in turn until it has processed everything available, then stop it (a
    catch-up run: tests, benchmarks). Default: silver, then gold."""
    for make_query in queries or (silver_query, gold_query):
        query = make_query(spark, settings)
        try:
            query.processAllAvailable()
        finally:
            query.stop()
