"""The supply query — wiring only; the transforms are ``streaming_jobs.supply``'s and the alert
rules ``streaming_jobs.alerts``'.

Its own Structured Streaming query in the pipeline's Spark application, on its own topic and
trigger (``supply.trigger_seconds``), so the price query's freshness path never waits for it.
One micro-batch: every record to ``bronze.market_events`` (with its Kafka coordinates), the
first copies judged against the supply registry (read at each batch) into
``silver.supply_stock``, ``silver.shipments`` (latest report per shipment, MERGEd) or
``silver.quarantine``; then ``gold.shipments``, ``gold.stock_daily``,
``gold.supply_region_daily`` for what the batch touched, and the supply alerts.

Exactly once: appends record their batch (``SparkTable.append_once``), everything else is a
MERGE that a replayed batch repeats identically; deduplication is the query's state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_SHIPMENTS,
    GOLD_STOCK_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_QUARANTINE,
    SILVER_SHIPMENTS,
    SILVER_SUPPLY_STOCK,
    Table,
    query_checkpoint,
)
from lakehouse.config.logs import Laps
from lakehouse.config.settings import Settings
from lakehouse.domain.supply_chain.supply import Entity
from lakehouse.domain.supply_chain.supply_registry import open_supply_registry
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.spark import GOLD_POOL, literal_map, local_frame, pinned
from streaming_jobs import supply
from streaming_jobs.alerts.episodes import episodes
from streaming_jobs.alerts.messages import alert_rows
from streaming_jobs.alerts.step import upsert_alerts
from streaming_jobs.alerts.supply import (
    entity_places,
    route_delay_signals,
    shared_provinces,
    shipment_late_signals,
    stock_cover_signals,
)
from streaming_jobs.batch_values import batch_clock
from streaming_jobs.bronze import (
    BRONZE_COLUMNS,
    ensure_shared_tables,
    first_copies,
    read_kafka,
    to_bronze,
)
from streaming_jobs.medallion import Existing, in_parallel
from streaming_jobs.query_priority import SilverFirst
from streaming_jobs.row_kinds import KIND, RowKind

log = logging.getLogger(__name__)
SUPPLY_QUERY = "supply"
WRITER = "supply"
ENTITY_COLUMNS = "entity_id string, kind string, regency_code string, province string"


class SupplyBatch:
    """The ``foreachBatch`` function of the supply query: every record (``kind`` ``record``)
    and the coordinates of the first copies (``kind`` ``first``)."""

    def __init__(self, spark: SparkSession, settings: Settings, priority: SilverFirst) -> None:
        self.spark = spark
        self.settings = settings
        self.lake = SparkLake(spark, settings)
        self.priority = priority
        self.registry = open_supply_registry(settings)
        self.alert_rules = conf_of(settings).alerts
        self.commodity_ids = sorted(conf_of(settings).commodities)
        self.rules = self.alert_rules.supply
        self._exists = Existing(self.lake)
        ensure_shared_tables(spark, settings)
        # the regions' daily rows read it: a first batch of stock reports alone finds it empty
        self.lake[GOLD_SHIPMENTS].ensure()

    def entities(self, registered: list[Entity]) -> DataFrame:
        """The ``registered`` entities as a frame of ``ENTITY_COLUMNS``."""
        rows = [(e.entity_id, e.kind, e.regency_code, e.province) for e in registered]
        return local_frame(self.spark, rows, ENTITY_COLUMNS)

    def __call__(self, rows: DataFrame, batch_id: int) -> None:
        context = self.spark.sparkContext
        # the gold pool's share, after the price query's running batch (its freshness path)
        context.setLocalProperty("spark.scheduler.pool", GOLD_POOL)
        self.priority.gold_step(self.settings.spark.gold_yield_seconds)
        writer = f"{WRITER}:{context.getLocalProperty('sql.streaming.queryId')}"
        laps = Laps()
        batch = rows.transform(pinned)
        records = RowKind.RECORD.rows(batch).drop(KIND)
        if records.isEmpty():
            return
        # the registry now (read once a batch): an entity registered a moment ago is known
        registered = self.registry.entities()
        firsts = RowKind.FIRST.rows(batch).select(
            *supply.COORDINATES, F.lit(True).alias("first_copy")
        )
        marked = records.join(firsts, list(supply.COORDINATES), "left").fillna(
            False, ["first_copy"]
        )
        validated = supply.validate_supply(
            supply.parse_supply(marked),
            self.entities(registered),
            self.commodity_ids,
            self.settings.supply.max_quantity,
        ).transform(pinned)
        laps("judge")
        appends = {
            BRONZE_EVENTS: records.select(*BRONZE_COLUMNS),
            SILVER_SUPPLY_STOCK: supply.stock_rows(validated, batch_id),
            SILVER_QUARANTINE: supply.quarantine_rows(validated, batch_id),
        }
        shipments = supply.shipment_rows(validated, batch_id).transform(pinned)
        tasks = [
            partial(self.lake[table].append_once, frame, writer, batch_id)
            for table, frame in appends.items()
        ]
        if not shipments.isEmpty() or not self._exists(SILVER_SHIPMENTS):
            tasks.append(
                partial(
                    self.lake[SILVER_SHIPMENTS].upsert,
                    shipments,
                    only_if="s.observed_at >= t.observed_at",
                )
            )
        in_parallel(self.spark, tasks)
        laps("silver")
        self._gold(appends[SILVER_SUPPLY_STOCK], shipments)
        laps("gold")
        self._alerts(registered)
        laps("alerts")
        log.info("supply batch done", extra={"batch_id": batch_id, "seconds": laps.seconds})

    def _read(self, table: Table) -> DataFrame:
        return self.lake[table].read()

    def _gold(self, stock: DataFrame, shipments: DataFrame) -> None:
        """The gold rows the batch's stock reports and shipment reports touch."""
        tz = self.settings.timezone
        cfg = self.settings.supply
        silver_shipments = self._read(SILVER_SHIPMENTS)
        as_of = silver_shipments.agg(F.max("observed_at")).first()[0]
        if as_of is not None:
            # every in-transit shipment's delay grows with the stream's time
            current = silver_shipments.where(
                F.col("arrived_at").isNull()
                | F.col("shipment_id").isin(
                    [r[0] for r in shipments.select("shipment_id").collect()]
                )
            )
            self.lake[GOLD_SHIPMENTS].upsert(
                supply.gold_shipments(current, batch_clock(as_of), cfg.late_after_hours)
            )
        arrivals = shipments.where(F.col("arrived_at").isNotNull()).select(
            F.col("destination_id").alias("entity_id"), "commodity"
        )
        pairs = stock.select("entity_id", "commodity").union(arrivals).distinct().transform(pinned)
        if pairs.isEmpty() or not self._exists(SILVER_SUPPLY_STOCK):
            return
        history = self._read(SILVER_SUPPLY_STOCK).join(
            F.broadcast(pairs), ["entity_id", "commodity"]
        )
        daily = supply.stock_daily(history, silver_shipments, tz, cfg.cover_window_days).transform(
            pinned
        )
        self.lake[GOLD_STOCK_DAILY].upsert(daily)
        regions = daily.select("province", "commodity").distinct()
        all_daily = self._read(GOLD_STOCK_DAILY).join(
            F.broadcast(regions), ["province", "commodity"]
        )
        self.lake[GOLD_SUPPLY_REGION_DAILY].upsert(
            supply.supply_region_daily(all_daily, self._read(GOLD_SHIPMENTS), tz)
        )

    def _alerts(self, registered: list[Entity]) -> None:
        """The supply rules over the supply gold tables, MERGEd into ``gold.alerts``."""
        if self.rules is None:
            return
        tz = self.settings.timezone
        names = literal_map({e.entity_id: e.name for e in registered})
        signals = [
            shipment_late_signals(self._read(GOLD_SHIPMENTS), self.rules, names),
            route_delay_signals(self._read(GOLD_SHIPMENTS), self.rules, tz),
        ]
        if self._exists(GOLD_STOCK_DAILY):
            stock = self._read(GOLD_STOCK_DAILY)
            regions = shared_provinces(self._read(GOLD_SUPPLY_REGION_DAILY), stock)
            signals += [
                stock_cover_signals(entity_places(stock, names), self.rules, tz, "entity"),
                stock_cover_signals(regions, self.rules, tz, "province"),
            ]
        every = signals[0]
        for more in signals[1:]:
            every = every.unionByName(more)
        rules = self.alert_rules
        now = datetime.now(UTC)
        rows = alert_rows(
            episodes(every, rules.cooldown_hours()),
            rules.messages(),
            conf_of(self.settings),
            batch_clock(now),
        ).transform(pinned)
        if not rows.isEmpty():
            upsert_alerts(self.lake, rows, now)


def supply_query(
    spark: SparkSession, settings: Settings, priority: SilverFirst | None = None
) -> StreamingQuery:
    """Kafka (the supply topic) → bronze, supply silver, gold and alerts; ``priority``: shared
    with the application's other queries."""
    topic = settings.kafka.topics.supply
    records = to_bronze(
        read_kafka(spark, settings, [topic], settings.supply.max_offsets_per_trigger)
    )
    horizon = conf_of(settings).quality.hard.duplicate_horizon_hours
    firsts = first_copies(records, horizon).select(
        RowKind.FIRST.lit().alias(KIND), *supply.COORDINATES
    )
    every = records.select(RowKind.RECORD.lit().alias(KIND), *BRONZE_COLUMNS)
    return (
        every.unionByName(firsts, allowMissingColumns=True)
        .writeStream.queryName(SUPPLY_QUERY)
        .foreachBatch(SupplyBatch(spark, settings, priority or SilverFirst()))
        .option("checkpointLocation", str(query_checkpoint(settings, SUPPLY_QUERY)))
        .trigger(processingTime=f"{settings.supply.trigger_seconds} seconds")
        .start()
    )
