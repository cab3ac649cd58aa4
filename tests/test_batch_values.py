"""A micro-batch's id and time reach its rows without new generated code each batch
(``streaming_jobs.batch_values``): the silver query's parsing and rules, the frames a batch
writes and the gold batch's alert plan reuse the classes Spark compiled for the batches before."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming_jobs import silver
from streaming_jobs.alerts.step import Touched
from streaming_jobs.batch_values import batch_number
from streaming_jobs.bronze import to_bronze
from tests.codegen import code_generated, compilations
from tests.shipped import SHIPPED

BATCHES = 6
MARKET = min(SHIPPED.markets.values(), key=lambda m: m.market_id)
COMMODITY = min(SHIPPED.commodities.values(), key=lambda c: c.id)
WARM = 3  # batches after which every class a batch needs has been compiled once


def kafka_shaped(spark: SparkSession) -> DataFrame:
    """A stream of Kafka-source rows (topic, partition, offset, timestamp, key, value) carrying
    price events, a few rows each micro-batch."""
    event = F.to_json(
        F.struct(
            F.concat(F.lit("e-"), F.col("value").cast("string")).alias("event_id"),
            F.lit(1).alias("schema_version"),
            F.lit("price").alias("event_type"),
            F.lit(MARKET.market_id).alias("market_id"),
            F.lit(COMMODITY.id).alias("commodity"),
            F.lit(COMMODITY.min_price * 2).alias("price"),
            F.lit(COMMODITY.unit).alias("unit"),
            F.date_format("timestamp", "yyyy-MM-dd'T'HH:mm:ss'Z'").alias("observed_at"),
            F.lit("test").alias("source"),
        )
    )
    return (
        spark.readStream.format("rate-micro-batch")
        .option("rowsPerBatch", 5)
        .option("startTimestamp", int(time.time() * 1000) - 60_000)  # a minute ago
        .load()
        .select(
            F.lit("prices").alias("topic"),
            F.lit(0).alias("partition"),
            F.col("value").alias("offset"),
            F.col("timestamp"),
            F.lit(None).cast("binary").alias("key"),
            event.cast("binary").alias("value"),
        )
    )


def test_a_micro_batch_compiles_no_new_code(spark: SparkSession) -> None:
    rules = SHIPPED.quality
    parsed = silver.parse_events(
        to_bronze(kafka_shaped(spark)), {"prices": "price"}, "dead", SHIPPED
    )
    validated = silver.validate_events(parsed, rules, SHIPPED, F.col("ingest_time"))
    seen: list[tuple[int, int, list]] = []

    def each(batch: DataFrame, batch_id: int) -> None:
        rows = batch.select(
            batch_number(batch_id).alias("batch"),
            "ingest_time",
            "hard_reasons",
        ).collect()
        seen.append((batch_id, compilations(spark), rows))

    before = compilations(spark)
    with code_generated(spark):  # the query's batches take the session's settings at its start
        query = validated.writeStream.foreachBatch(each).trigger(processingTime="0 seconds")
        query = query.start()
    try:
        deadline = time.monotonic() + 120
        while len(seen) < BATCHES and time.monotonic() < deadline and query.isActive:
            time.sleep(0.1)
    finally:
        query.stop()
    assert len(seen) >= BATCHES, query.exception()
    counts = [count for _, count, _ in seen]
    assert counts[0] > before  # code was generated …
    assert counts[WARM:] == [counts[WARM]] * len(counts[WARM:]), counts  # … once
    for batch_id, _, rows in seen:
        assert len(rows) == 5
        assert {r["batch"] for r in rows} == {batch_id}
        assert len({r["ingest_time"] for r in rows}) == 1  # one time per batch …
        assert all(not r["hard_reasons"] for r in rows)
    times = [rows[0]["ingest_time"] for _, _, rows in seen]
    assert times == sorted(times) and len(set(times)) == len(times)  # … a new one each batch


def test_the_alert_plan_compiles_no_new_code_for_a_later_batch(spark: SparkSession) -> None:
    """``Touched.prior`` (which stored alerts a batch re-evaluates) bounds ``resolved_at`` by a
    time that moves with every batch; the same classes serve every anchor, and the answer moves."""
    day = datetime(2025, 3, 1, tzinfo=UTC)
    stored = spark.createDataFrame(
        [
            (
                "price_spike",
                "IP-001|beras",
                day + timedelta(days=d),
                day + timedelta(days=d, hours=6),
            )
            for d in range(8)
        ],
        "rule string, alert_key string, opened_at timestamp, resolved_at timestamp",
    ).cache()
    stored.count()
    keys = spark.createDataFrame([("IP-001|beras",)], "key string")
    earliest = []
    counts = [compilations(spark)]
    with code_generated(spark):
        for d in range(BATCHES):
            touched = Touched(day + timedelta(days=d), {"alert_key": keys}, 1, 12, ("price_spike",))
            earliest.append(touched.prior(stored).agg(F.min("opened_at")).first()[0])
            counts.append(compilations(spark))
    assert counts[1] > counts[0]  # code was generated …
    counts = counts[1:]
    assert counts[WARM:] == [counts[WARM]] * len(counts[WARM:]), counts  # … once
    # resolved at day d-1 + 6 h is within since (d-1) - 12 h: the episode opened on day d-1 is kept
    assert [e.replace(tzinfo=UTC) for e in earliest] == [day] + [
        day + timedelta(days=d - 1) for d in range(1, BATCHES)
    ]
