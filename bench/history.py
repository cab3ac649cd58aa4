"""Does a micro-batch cost more when the lakehouse is big? The same 10 000-event micro-batches,
timed on an empty lakehouse (the baseline of this run) and again after 20 M rows of history
were added to ``silver.prices``. Runs its own Kafka and the pipeline's two queries in this
process (local[2]).

    ./run.sh bench history [--events 10000] [--history 20000000] [--rounds 3]

The history is written straight into ``silver.prices`` (copies of the first rounds' rows spread
over the two years before them, in the table's own partitioning) — producing 20 M events
through Kafka would take most of an hour on two cores and measure nothing more: what a batch
could read of the history is silver itself (the gold query reads the rows of its silver batches
there); the series' history in the silver query's state is bounded per series
(``prices.state_points``) whatever the lakehouse holds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import functions as F

from bench.pipeline import payloads, produce
from bench.timing import timed
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.spark import get_spark
from scripts.isolated_stack import isolated_stack
from streaming_jobs.medallion import GoldBatch, SilverBatch, drain


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=20_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    silver_times: list[float] = []
    gold_times: list[float] = []
    SilverBatch.__call__ = timed(SilverBatch.__call__, silver_times)
    GoldBatch.__call__ = timed(GoldBatch.__call__, gold_times)
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ("kafka",)) as settings:
        ensure_topics(settings)
        spark = get_spark(settings)

        def rounds(label: str) -> None:
            silver_times.clear()
            gold_times.clear()
            for _ in range(args.rounds + 1):  # the first round warms up (JIT, first versions)
                produce(settings, payloads(args.events, datetime.now(UTC), conf_of(settings)), None)
                drain(spark, settings)
            results[label] = (silver_times[1:], gold_times[1:])

        try:
            rounds("empty lakehouse")
            began = time.monotonic()
            rows = SparkLake(spark, settings)[SILVER_PRICES].read()
            copies = max(1, args.history // rows.count())
            day = F.col("copy") % 730 + 1
            history = (
                spark.range(copies)
                .withColumnRenamed("id", "copy")
                .crossJoin(rows)
                .withColumn("event_id", F.concat("event_id", F.lit("-h"), F.col("copy")))
                .withColumn("observed_at", F.col("observed_at") - F.make_dt_interval(day))
                .withColumn(
                    "observed_date",
                    F.to_date(F.from_utc_timestamp("observed_at", settings.timezone)),
                )
                .withColumn("silver_batch_id", F.lit(-1).cast("bigint"))
                .drop("copy")
                .limit(args.history)
            )
            history.write.format("delta").mode("append").partitionBy("observed_date").save(
                str(SILVER_PRICES.path(settings))
            )
            filled = SparkLake(spark, settings)[SILVER_PRICES].read().count()
            print(f"history: {filled:,} rows in silver.prices ({time.monotonic() - began:.0f}s)")
            rounds(f"{filled / 1e6:.0f} M rows of history")
        finally:
            spark.stop()

    print(f"\nmicro-batch cost, {args.events:,} events a batch, median of {args.rounds} batches")
    print(f"{'lakehouse':<26}{'silver batch':>14}{'gold batch':>12}")
    base = None
    for label, (silver, gold) in results.items():
        s, g = statistics.median(silver), statistics.median(gold)
        base = base or (s, g)
        print(f"{label:<26}{s:>13.2f}s{g:>11.2f}s   × empty: {s / base[0]:.2f} / {g / base[1]:.2f}")


if __name__ == "__main__":
    main()
