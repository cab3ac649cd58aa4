"""The two streaming queries of the pipeline — wiring only; the transforms are the pure
functions of ``bronze``, ``silver``, ``series_judge``, ``quality``, ``gold`` and ``alerts``.

- **silver** (the freshness path): Kafka → one micro-batch writes ``bronze.market_events``,
  ``silver.prices`` / ``silver.sensors`` / ``silver.quarantine``, the held prices and the
  decisions on them (``silver.holds``, ``silver.hold_decisions``: confirmed ones and those an
  operator released reach ``silver.prices`` in the same batch) and, last, the batch's
  ``gold.data_quality`` rows. The live API follows ``silver.prices`` itself, so a price is live
  when this batch commits it. Deduplication and the series' history are Spark state
  (``bronze.first_copies``, ``series_judge``): a batch reads nothing of the lakehouse.
- **gold** (off the freshness path): a Delta stream of ``gold.data_quality`` — one row set per
  completed silver batch — drives ``gold.price_latest``, the aggregates (daily, hourly,
  regional, sensors, quality per day) and the alert rules. The aggregates take in only the
  rows of those batches, MERGEd into the rows there (``gold``): a gold batch costs what its
  silver batches brought, whatever the history.

Exactly once: the silver query's state commits with its checkpoint, after the batch's writes;
every append records its batch (``SparkTable.append_once``), a gold aggregate row the newest
silver batch it counts (``gold.NEW_BATCHES``), and every other write is a MERGE that a replay
repeats identically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from time import monotonic

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType
from pyspark.util import inheritable_thread_target

from lakehouse.catalog.alert_rules import AlertRules
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_DATA_QUALITY,
    GOLD_DATA_QUALITY_DAILY,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_HOURLY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    GOLD_SENSOR_HOURLY,
    HISTORY_BATCHES,
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
    TABLES,
    Table,
    query_checkpoint,
)
from lakehouse.config.logs import Laps
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import BatchCommits, SparkLake, Write
from lakehouse.io.history_staging import Staging
from lakehouse.io.spark import GOLD_POOL, SILVER_POOL, local_frame, pinned
from streaming_jobs import gold, silver
from streaming_jobs.alerts.sensors import sensor_alarm, sensor_alarms
from streaming_jobs.alerts.step import (
    PRICES,
    QUALITY,
    SENSORS,
    AlertStep,
    Plan,
)
from streaming_jobs.batch_graph import BatchGraph, Step, Wrap
from streaming_jobs.bronze import (
    BRONZE_COLUMNS,
    ensure_shared_tables,
    first_copies,
    read_kafka,
    read_staged,
    sender,
    to_bronze,
)
from streaming_jobs.progress_metrics import QUALITY_OBSERVATION, REST, STEPS, quality_observed
from streaming_jobs.quality import batch_quality
from streaming_jobs.query_priority import SilverFirst
from streaming_jobs.row_kinds import KIND, KindCounts, RowKind, SilverRows

log = logging.getLogger(__name__)
QueryFactory = Callable[[SparkSession, Settings], StreamingQuery]

WRITER = "silver"  # the silver query's appends record "silver:<query id>" and the batch
SILVER_QUERY = "silver"
HISTORY_QUERY = "history"  # the bulk history load (``history_query``)
GOLD_QUERY = "gold"
#: the gold batch's log line once its tables are written (its commit follows its rest)
GOLD_BATCH_DONE = "gold batch done"
#: what a gold batch's steps start from
GOLD_INPUTS = ("quality", "batch_ids", "through", "gold_batch_id", "now")
#: the gold batch's steps computing the alert signals of a family each
SIGNAL_STEPS = ("price_signals", "sensor_signals", "quality_signals")
#: the silver tables the gold batch reads by the versions silver committed its batches in
CHANGE_FED = tuple(t for t in TABLES.values() if t.change_feed)
#: what a decision on a hold changes of its ``silver.holds`` row
HOLD_STATUS_COLUMNS = ("status", "previous_status", "decided_batch_id")


def inherit_properties(spark: SparkSession) -> Wrap:
    """Wraps a thread target so that its Spark jobs run with a copy of the calling thread's
    local properties (scheduler pool, job group, SQL execution) — a copy of its own for each
    target. pyspark's ``inheritable_thread_target(spark)`` copies them once, when it is called:
    one decorator for several threads gives them one ``Properties`` object, so each thread's SQL
    executions set their id on the others' jobs. A job filed under another thread's execution
    that has ended stays in Spark's ``DAGScheduler.activeQueryToJobs`` for good, and its plan
    with it (the pipeline's driver ran out of heap after an hour, #53)."""
    return lambda target: inheritable_thread_target(spark)(target)


def in_parallel(spark: SparkSession, tasks: list[Callable[[], None]]) -> None:
    """Run independent Delta writes concurrently: most of a small write is driver-side latency
    (snapshot, commit), which overlaps well even on two cores. Each task's Spark jobs go to the
    caller's scheduler pool (its thread inherits the caller's local properties). Re-raises the
    first failure."""
    if not tasks:
        return
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        for future in [pool.submit(inherit_properties(spark)(task)) for task in tasks]:
            future.result()


class Existing:
    """Whether a table exists yet, asked of Delta until it does (tables are never dropped)."""

    def __init__(self, lake: SparkLake) -> None:
        self.lake = lake
        self._seen: set[Table] = set()

    def __call__(self, table: Table) -> bool:
        if table not in self._seen and self.lake[table].exists():
            self._seen.add(table)
        return table in self._seen


def bronze_rows(records: DataFrame) -> DataFrame:
    """The bronze rows of a silver batch's records, whose text is ``raw`` there (as a judged
    row's: ``value`` is a sensor reading's)."""
    return records.select(
        *[F.col("raw").alias("value") if c == "value" else c for c in BRONZE_COLUMNS]
    )


class SilverBatch:
    """The ``foreachBatch`` function of the silver query (and of the history query): its input
    is every record of the micro-batch (``kind`` ``record``) and the judged first copies with
    the decisions on holds (``silver_plan``). A query's batch n is silver batch
    ``first_batch + n``: the number its rows, its ``gold.data_quality`` rows and its appends'
    ledger (``SparkTable.append_once``) carry."""

    def __init__(
        self, spark: SparkSession, settings: Settings, priority: SilverFirst, first_batch: int = 0
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.lake = SparkLake(spark, settings)
        self.priority = priority
        self.first_batch = first_batch  # the silver batch number of the query's batch 0
        self.reviews_topic = settings.kafka.topics.reviews
        ensure_shared_tables(spark, settings)
        for table in CHANGE_FED:
            self.lake[table].ensure_change_feed()
        self._exists = Existing(self.lake)
        self.rules = conf_of(settings).alerts
        self._alarm = sensor_alarm(self.rules)  # a constant column: built once

    def _alarms(self, kinds: KindCounts, readings: DataFrame | None) -> frozenset[str]:
        """The alarms of the batch's accepted readings (``sensor_alarms``): a Spark job, run
        only when a reading alone reaches a level (``kinds.alarms``)."""
        if not kinds.alarms or readings is None:
            return frozenset()
        found = sensor_alarms(readings, self.rules, self.settings.timezone).collect()
        return frozenset(row["alarm"] for row in found)

    def __call__(self, rows: DataFrame, batch_id: int) -> None:
        context = self.spark.sparkContext
        context.setLocalProperty("spark.scheduler.pool", SILVER_POOL)
        writer = f"{WRITER}:{context.getLocalProperty('sql.streaming.queryId')}"
        with self.priority.silver_batch():
            self._batch(rows, self.first_batch + batch_id, writer)

    def _batch(self, rows: DataFrame, batch_id: int, writer: str) -> None:
        laps = Laps()
        batch = rows.transform(pinned)  # the one run of the micro-batch (and of its state)
        laps("judge")
        kinds = KindCounts.of(batch, self._alarm)
        laps("count")
        if not kinds:
            return  # a batch without records (Spark runs some to expire state)
        if invalid := kinds.count(RowKind.REVIEW):
            # only a writer other than the API can send one; it stays in bronze as it came
            log.warning(
                "reviews ignored: not a valid review (target_event_id, release|reject, "
                "reviewer, market_id, commodity)",
                extra={"batch_id": batch_id, "count": invalid},
            )
        has, split = kinds.has, SilverRows.of(batch)
        appends = {BRONZE_EVENTS: bronze_rows(split.records)}
        # an empty append is skipped, except the first: the gold query reads these tables
        priced = has(RowKind.EVENT, "price", True) or has(RowKind.RELEASE)
        if priced or not self._exists(SILVER_PRICES):
            appends[SILVER_PRICES] = silver.accepted_prices(split, batch_id)
        if has(RowKind.EVENT, "sensor", True) or not self._exists(SILVER_SENSORS):
            appends[SILVER_SENSORS] = silver.accepted_sensors(split, batch_id)
        if has(RowKind.EVENT, accepted=False):
            appends[SILVER_QUARANTINE] = silver.quarantine_rows(split, batch_id)
        if has(RowKind.DECISION):
            appends[SILVER_HOLD_DECISIONS] = silver.hold_decisions(split, batch_id)
        tasks = [
            partial(self.lake[table].append_once, frame, writer, batch_id)
            for table, frame in appends.items()
        ]
        if has(RowKind.HOLD):  # a new hold is inserted whole, a decision changes its status
            tasks.append(
                partial(
                    self.lake[SILVER_HOLDS].upsert,
                    silver.hold_changes(split, batch_id),
                    updated=HOLD_STATUS_COLUMNS,
                )
            )
        in_parallel(self.spark, tasks)
        laps("write")
        alarms = self._alarms(kinds, appends.get(SILVER_SENSORS))
        laps("alarms")
        # last: the gold query follows gold.data_quality, a silver batch's "complete" mark
        quality = batch_quality(batch, self.reviews_topic, batch_id)
        self.lake[GOLD_DATA_QUALITY].append_once(quality, writer, batch_id)
        laps("quality")
        self.priority.silver_written(batch_id, kinds.urgent, alarms)
        STEPS.record(SILVER_QUERY, laps.seconds)
        log.info(
            "silver batch done",
            extra={
                "batch_id": batch_id,
                "rows": kinds.for_log(),
                "alarms": len(alarms),
                "seconds": laps.seconds,
            },
        )


class GoldBatch:
    """The ``foreachBatch`` function of the gold query: its input is the ``gold.data_quality``
    rows of the silver batches completed since the last gold batch."""

    def __init__(
        self, spark: SparkSession, settings: Settings, rules: AlertRules, priority: SilverFirst
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.lake = SparkLake(spark, settings)
        self.tz = settings.timezone
        self.alerts = AlertStep(self.lake, rules)
        self._exists = Existing(self.lake)
        self.commits = BatchCommits(f"{WRITER}:")
        self._schemas: dict[Table, StructType] = {}  # of the tables read, for an empty read
        self.priority = priority
        self.graph = BatchGraph(GOLD_INPUTS, self._steps(), self._write)

    def _of_batches(self, table: Table, batch_ids: list[int]) -> DataFrame:
        """The rows the silver batches ``batch_ids`` appended to ``table``: read by the versions
        they committed (``BatchCommits``), else — a commit cleaned from the log, or
        written before the table's change feed was on — found in the whole table."""
        bound = self.lake[table]
        span = self.commits.span(bound.bound, batch_ids)
        if span == range(0) and table in self._schemas:  # they appended nothing here
            return local_frame(self.spark, [], self._schemas[table])
        if span:
            try:
                added = self.commits.added(bound.bound, span)
                rows = bound.commits(span, added).transform(pinned)
            except AnalysisException as exc:
                if exc.getCondition() != "DELTA_MISSING_CHANGE_DATA":
                    raise
            else:
                self._schemas[table] = rows.schema
                return rows
        log.info(
            "gold reads silver batches by filter: not by version",
            extra={"table": table.qualified_name, "silver_batches": batch_ids},
        )
        return bound.read().where(F.col("silver_batch_id").isin(batch_ids)).transform(pinned)

    def __call__(self, quality: DataFrame, gold_batch_id: int) -> None:
        began = monotonic()
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", GOLD_POOL)
        quality = quality.transform(pinned)
        batch_ids = sorted(r[0] for r in quality.select("batch_id").distinct().collect())
        if not batch_ids:
            return
        inputs = {  # GOLD_INPUTS
            "quality": quality,
            "batch_ids": batch_ids,
            "through": batch_ids[-1],
            "gold_batch_id": gold_batch_id,
            "now": datetime.now(UTC),
        }
        gate = self.priority.batch_gate(self.settings.spark.gold_yield_seconds)
        seconds = self.graph.run(inputs, inherit_properties(self.spark), gate)
        log.info(
            GOLD_BATCH_DONE,
            extra={"batch_id": gold_batch_id, "silver_batches": batch_ids, "seconds": seconds},
        )
        rested = self.priority.gold_rest(batch_ids[-1], began)
        STEPS.record(GOLD_QUERY, seconds | {REST: rested})

    def _write(self, write: Write) -> None:
        """What a step of the batch returned to be written (``BatchGraph``)."""
        self.lake.write(write)

    def _steps(self) -> tuple[Step, ...]:
        """The gold batch: the aggregates and the alert step's calls as soon as what each reads
        is written — the alerts read only ``gold.price_daily``, ``gold.sensor_hourly`` and
        (silver's) ``gold.data_quality``."""
        signals = self.alerts.signals
        return (
            Step("prices", partial(self._of_batches, SILVER_PRICES), ("batch_ids",)),
            Step("sensors", partial(self._of_batches, SILVER_SENSORS), ("batch_ids",)),
            Step("priced", lambda prices: not prices.isEmpty(), ("prices",)),
            Step("plan", self.alerts.plan, ("prices", "sensors", "quality")),
            Step("sensor_hourly", self._gold_sensors, ("sensors", "through")),
            Step("quality_daily", self._quality_daily, ("quality", "through")),
            Step("price_daily", self._price_daily, ("prices", "through"), when="priced"),
            Step("region_daily", self._region_daily, ("price_daily",)),
            Step("price_hourly", self._price_hourly, ("prices", "through"), when="priced"),
            Step("price_latest", self._price_latest, ("prices",), when="priced"),
            Step("price_signals", partial(signals, family=PRICES), ("plan",), ("price_daily",)),
            Step("sensor_signals", partial(signals, family=SENSORS), ("plan",), ("sensor_hourly",)),
            Step("quality_signals", partial(signals, family=QUALITY), ("plan",)),
            Step("alerts", self._write_alerts, ("gold_batch_id", "plan", "now", *SIGNAL_STEPS)),
            Step("held_moves", self._held_move_alerts, ("batch_ids", "now"), ("alerts",)),
        )

    def _write_alerts(
        self,
        gold_batch_id: int,
        plan: Plan,
        now: datetime,
        price_signals: DataFrame | None,
        sensor_signals: DataFrame | None,
        quality_signals: DataFrame | None,
    ) -> Write | None:
        return self.alerts.alerts(
            gold_batch_id, plan, [price_signals, sensor_signals, quality_signals], now
        )

    def _held_move_alerts(self, batch_ids: list[int], now: datetime) -> Write | None:
        """The alerts of the prices these silver batches held or decided on
        (``AlertStep.held_moves``)."""
        if not self._exists(SILVER_HOLDS):
            return None
        held_in = ", ".join(map(str, batch_ids))
        fresh = self.lake[SILVER_HOLDS].where(f"t.held_batch_id IN ({held_in})")
        decisions = (
            self._of_batches(SILVER_HOLD_DECISIONS, batch_ids)
            if self._exists(SILVER_HOLD_DECISIONS)
            else None
        )
        return self.alerts.held_moves(fresh, decisions, now, self._exists)

    def _combine(
        self, rows: DataFrame, table: Table, period: str, matched: Mapping[str, str | Column]
    ) -> Write | DataFrame:
        """A batch's aggregate ``rows`` (computed once) to MERGE into ``table`` (``gold``:
        combined with the rows there, once), reading only the files of the ``period`` span the
        rows cover; no rows, nothing to write."""
        rows = rows.transform(pinned)
        low, high = rows.agg(F.min(period).cast("string"), F.max(period).cast("string")).first()
        if low is None:
            return rows
        kind = "DATE" if period == "date" else "TIMESTAMP"
        within = f"t.{period} BETWEEN {kind} '{low}' AND {kind} '{high}'"
        return Write(
            table, rows, {"only_if": gold.NEW_BATCHES, "matched": matched, "within": within}
        )

    def _price_daily(self, prices: DataFrame, through: int) -> Write | DataFrame:
        """``gold.price_daily`` of the accepted prices: the batch's daily rows."""
        return self._combine(
            gold.price_daily(prices, self.tz, through),
            GOLD_PRICE_DAILY,
            "date",
            gold.OHLC_COMBINED,
        )

    def _region_daily(self, price_daily: DataFrame) -> Write | None:
        """``gold.region_daily`` of the province × commodity × days of the batch's daily rows,
        from all of ``gold.price_daily`` there."""
        regions = price_daily.select("region", "commodity", "date").distinct().transform(pinned)
        days = ", ".join(f"DATE '{r[0]}'" for r in regions.select("date").distinct().collect())
        if not days:
            return None
        all_daily = (
            self.lake[GOLD_PRICE_DAILY]
            .where(f"t.date IN ({days})")
            .join(F.broadcast(regions), ["region", "commodity", "date"])
        )
        return Write(GOLD_REGION_DAILY, gold.region_daily(all_daily))

    def _price_hourly(self, prices: DataFrame, through: int) -> Write | DataFrame:
        return self._combine(
            gold.price_hourly(prices, self.tz, through),
            GOLD_PRICE_HOURLY,
            "hour",
            gold.OHLC_COMBINED,
        )

    def _price_latest(self, prices: DataFrame) -> Write:
        """The newest price per series, where newer than gold's."""
        newer = {"only_if": "s.observed_at >= t.observed_at"}
        return Write(GOLD_PRICE_LATEST, gold.price_latest(prices), newer)

    def _gold_sensors(self, sensors: DataFrame, through: int) -> Write | DataFrame:
        return self._combine(
            gold.sensor_hourly(sensors, self.tz, through),
            GOLD_SENSOR_HOURLY,
            "hour",
            gold.SENSOR_COMBINED,
        )

    def _quality_daily(self, quality: DataFrame, through: int) -> Write | DataFrame:
        """These batches' quality counts, to add to the per-day counts."""
        return self._combine(
            gold.quality_daily(quality, through),
            GOLD_DATA_QUALITY_DAILY,
            "date",
            gold.quality_combined(),
        )


def silver_plan(records: DataFrame, settings: Settings) -> DataFrame:
    """The input of a silver query's batches (``SilverBatch``): every record of ``records``
    (``bronze.to_bronze`` of a streaming source: Kafka, or the staged history) and the judged
    first copies with the decisions on holds — one plan, whichever the source, so the live
    stream and the bulk history load give the same verdicts."""
    conf = conf_of(settings)
    rules = conf.quality
    topics = settings.kafka.topics
    parsed = silver.parse_events(
        first_copies(records, rules.hard.duplicate_horizon_hours),
        {topics.prices: "price", topics.sensors: "sensor"},
        topics.deadletter,
        conf,
        topics.reviews,
    )
    validated = silver.validate_events(parsed, rules, conf, F.col("ingest_time"))
    judged = silver.judge(
        validated,
        rules,
        conf,
        settings.timezone,
        settings.spark.series_buckets,
        settings.spark.judge,
    )
    every_record = records.select(
        RowKind.RECORD.lit().alias(KIND),
        *[F.col("value").alias("raw") if c == "value" else c for c in BRONZE_COLUMNS],
        *sender(),
    )
    return every_record.unionByName(judged, allowMissingColumns=True)


def silver_query(
    spark: SparkSession, settings: Settings, priority: SilverFirst | None = None
) -> StreamingQuery:
    """Kafka (all platform topics) → bronze, silver, the live price and data quality;
    ``priority``: shared with the application's other queries."""
    records = to_bronze(read_kafka(spark, settings, settings.kafka.topics.of_price_pipeline()))
    return (
        silver_plan(records, settings)
        .writeStream.queryName(SILVER_QUERY)
        .foreachBatch(SilverBatch(spark, settings, priority or SilverFirst()))
        .option("checkpointLocation", str(query_checkpoint(settings, SILVER_QUERY)))
        .trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
        .start()
    )


def history_query(
    spark: SparkSession, settings: Settings, priority: SilverFirst | None = None
) -> StreamingQuery:
    """The bulk history load: the staged records (``lakehouse.io.history_staging``) → the same
    tables through the same plan and batch function as ``silver_query``, every record staged
    so far and not read yet, then the query stops (``availableNow``).

    Its checkpoint (``history``) is its own: which staged files it has read, and its
    deduplication and judge state — history is judged against the history loaded before it,
    never against the live stream's state (nor the live stream against it). Its batches are
    silver batches ``HISTORY_BATCHES + n``, below the live query's, under a writer id of its
    own (``silver:<query id>``): ``gold.data_quality`` gets a row set per batch, so the gold
    query aggregates the history as it does the stream (docs/bulk_history.md: what a history
    batch does to a gold row a live batch counted already)."""
    staged = Staging(settings).staged
    staged.mkdir(parents=True, exist_ok=True)
    records = to_bronze(read_staged(spark, settings, str(staged)))
    handler = SilverBatch(spark, settings, priority or SilverFirst(), first_batch=HISTORY_BATCHES)
    return (
        silver_plan(records, settings)
        .writeStream.queryName(HISTORY_QUERY)
        .foreachBatch(handler)
        .option("checkpointLocation", str(query_checkpoint(settings, HISTORY_QUERY)))
        .trigger(availableNow=True)
        .start()
    )


def gold_query(
    spark: SparkSession, settings: Settings, priority: SilverFirst | None = None
) -> StreamingQuery:
    """``gold.data_quality`` (as a Delta stream of completed silver batches) → gold and alerts;
    ``priority``: shared with the application's other queries."""
    SparkLake(spark, settings)[GOLD_DATA_QUALITY].ensure()
    handler = GoldBatch(spark, settings, conf_of(settings).alerts, priority or SilverFirst())
    return (
        spark.readStream.format("delta")
        .option("maxFilesPerTrigger", 1000)
        .load(str(GOLD_DATA_QUALITY.path(settings)))
        .observe(QUALITY_OBSERVATION, *quality_observed())
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
