"""What idle micro-batches compile: one price event at a time through Kafka and the pipeline's
silver and gold queries (in this process, local[2]), counting the classes Spark's code generator
compiles (Janino; the JIT then starts over on each new class). After the warm-up an idle batch
should reuse what the batches before it compiled: a class compiled again each batch means a
value that moves with the batches is a literal in its source (``streaming_jobs.batch_values``).
The warm-up's own numbers, measured in the same run, are the baseline.

    ./run.sh bench codegen [--events 40] [--warm 10] [--every 3]

``--sources`` logs every source compiled after the warm-up (Spark's ``CodeGenerator`` logger at
DEBUG, on this process's stderr): the ones that repeat, and the literal that differs, are there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from bench.pipeline import payloads, produce
from lakehouse.catalog.conf import conf_of
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.spark import get_spark
from scripts.isolated_stack import isolated_stack
from streaming_jobs.medallion import gold_query, silver_query


@dataclass(frozen=True)
class Compiled:
    """The code generator's totals in this JVM at one moment."""

    classes: int
    mean_ms: float  # of the compilations the metric's reservoir holds (it samples past ~1 000)

    @classmethod
    def now(cls, spark: SparkSession) -> Compiled:
        histogram = (
            spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
        )
        return cls(histogram.getCount(), histogram.getSnapshot().getMean())


def _phase(label: str, before: Compiled, after: Compiled, events: int) -> None:
    classes = after.classes - before.classes
    print(
        f"  {label:<8} {events:>3} events: {classes:>4} classes compiled, "
        f"{classes / events:5.1f} an event, ~{classes * after.mean_ms / events:5.0f} ms an event"
    )


def _debug_sources(spark: SparkSession) -> None:
    jvm = spark._jvm
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator",
        jvm.org.apache.logging.log4j.Level.DEBUG,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--warm", type=int, default=10, help="events before the counted ones")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between events")
    parser.add_argument("--sources", action="store_true", help="log the compiled sources")
    args = parser.parse_args(argv)
    if not 0 < args.warm < args.events:
        parser.error("--warm must be between 0 and --events")

    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ("kafka",)) as settings:
        ensure_topics(settings)
        spark = get_spark(settings)
        queries = [silver_query(spark, settings), gold_query(spark, settings)]
        events = payloads(args.events, datetime.now(UTC), conf_of(settings))
        marks = [Compiled.now(spark)]
        try:
            for i, event in enumerate(events):
                if i == args.warm:
                    marks.append(Compiled.now(spark))
                    if args.sources:
                        _debug_sources(spark)
                produce(settings, [event], None)
                time.sleep(args.every)
            marks.append(Compiled.now(spark))
        finally:
            for query in queries:
                query.stop()
            spark.stop()

    print(
        f"generated code compiled by the silver and gold queries, an event every {args.every:g} s:"
    )
    _phase("warm-up", marks[0], marks[1], args.warm)
    _phase("idle", marks[1], marks[2], args.events - args.warm)


if __name__ == "__main__":
    main()
