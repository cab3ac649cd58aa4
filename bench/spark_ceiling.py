"""What Spark Structured Streaming itself reaches on this box, next to the silver query: the same
price events in Kafka, drained in micro-batches of ``spark.max_offsets_per_trigger`` by

- a bare copy: each record's text and Kafka coordinates appended to one Delta table;
- the same with each record parsed (``from_json``) into the event's columns;
- the same with the first copy of each event id kept before parsing, as the silver query keeps
  it (``bronze.first_copies``: ``dropDuplicatesWithinWatermark``, RocksDB);
- the silver query itself (``streaming_jobs.medallion.silver_query``: bronze, deduplication,
  parsing, rules, the stateful step, silver, quarantine and data quality) — with ``--judges
  python,jvm`` once per judge of the statistical rules (``spark.judge``), each on a lakehouse
  and checkpoint of its own, the same events,

each in events/s and as a share of the bare copy, next to the raw confluent-kafka produce rate
of the same payloads measured in the same run. The bare copy bounds what any Spark pipeline on
this box can sustain: the silver query writes two tables of every event and judges it on top.

    ./run.sh bench spark_ceiling [--events 800000] [--judges python,jvm] [--silver-only]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.baseline import raw_produce_rate
from bench.pipeline import payloads, produce
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import EVENT_MODELS, spark_schema
from lakehouse.config.settings import Settings
from lakehouse.io.spark import get_spark
from scripts.isolated_stack import isolated_stack
from streaming_jobs import medallion
from streaming_jobs.bronze import first_copies, read_kafka, to_bronze

Transform = Callable[[DataFrame], DataFrame]
WARM_UP = 2_000  # events the silver query takes before it is timed


def parsed(records: DataFrame) -> DataFrame:
    """Bronze rows → the price event's columns and the record's offset."""
    event = F.from_json("value", spark_schema(EVENT_MODELS["price"])).alias("event")
    return records.select(event, "offset").select("event.*", "offset")


def variants(horizon_hours: float) -> dict[str, Transform]:
    """The bare transforms timed before the silver query (``horizon_hours``: of the
    deduplication, as silver's)."""
    return {
        "bare copy (text + Kafka coordinates)": lambda r: r.select(
            "topic", "partition", "offset", "value"
        ),
        "parsed (from_json)": parsed,
        "first copies (RocksDB) + parsed": lambda r: parsed(first_copies(r, horizon_hours)),
    }


def drained(
    spark: SparkSession, settings: Settings, folder: Path, name: str, transform: Transform
) -> float:
    """Seconds to drain the prices topic (the warm-up's events too, 0.25 % of the default
    count) through ``transform`` into a Delta table of its own."""
    records = to_bronze(read_kafka(spark, settings, [settings.kafka.topics.prices]))
    query = (
        transform(records)
        .writeStream.format("delta")
        .option("checkpointLocation", str(folder / "checkpoints" / name))
        .trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
        .start(str(folder / "tables" / name))
    )
    began = time.monotonic()
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    return time.monotonic() - began


def silver_seconds(spark: SparkSession, settings: Settings) -> float:
    """Seconds the silver query takes to drain every topic."""
    began = time.monotonic()
    medallion.drain(spark, settings, medallion.silver_query)
    return time.monotonic() - began


def with_judge(settings: Settings, folder: Path, judge: str) -> Settings:
    """``settings`` with the silver query's judge ``judge`` and a lakehouse of its own."""
    return settings.model_copy(
        update={
            "spark": settings.spark.model_copy(update={"judge": judge}),
            "paths": settings.paths.model_copy(
                update={
                    "lakehouse_root": folder / judge / "lakehouse",
                    "checkpoint_root": folder / judge / "checkpoints",
                }
            ),
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=800_000)
    parser.add_argument(
        "--judges", help="comma-separated judges of the silver query (default: spark.judge)"
    )
    parser.add_argument(
        "--silver-only", action="store_true", help="only the silver query, not the bare variants"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        isolated_stack(Path(tmp), ("kafka",)) as settings,
    ):
        at = datetime.now(UTC) - timedelta(minutes=5)
        events = payloads(args.events, at, conf_of(settings))
        raw = raw_produce_rate(settings, events[:200_000])
        spark = get_spark(settings)
        judges = {
            judge: with_judge(settings, Path(tmp), judge)
            for judge in (args.judges or settings.spark.judge).split(",")
        }
        # the silver query's first batches: JVM, Python workers, state
        produce(settings, payloads(WARM_UP, at, conf_of(settings)), None)
        for judged in judges.values():
            medallion.drain(spark, judged, medallion.silver_query)
        produce(settings, events, None)
        batch = settings.spark.max_offsets_per_trigger
        print(f"\nSpark ceiling: {args.events:,} price events, micro-batches of ≤ {batch:,}")
        print(f"raw confluent-kafka produce rate, same payloads: {raw:,.0f} events/s")
        print(f"{'Kafka → Delta':44} {'events/s':>10} {'× bare copy':>12} {'× raw':>7}")
        bare = None
        horizon = conf_of(settings).quality.hard.duplicate_horizon_hours
        for name, transform in {} if args.silver_only else variants(horizon).items():
            rate = args.events / drained(spark, settings, Path(tmp), name, transform)
            bare = bare or rate
            print(f"{name:44} {rate:10,.0f} {rate / bare:12.2f} {rate / raw:7.3f}", flush=True)
        for judge, judged in judges.items():
            rate = args.events / silver_seconds(spark, judged)
            name = f"silver query (the pipeline), {judge} judge"
            share = f"{rate / bare:12.2f}" if bare else f"{'-':>12}"
            print(f"{name:44} {rate:10,.0f} {share} {rate / raw:7.3f}", flush=True)
        spark.stop()


if __name__ == "__main__":
    main()
