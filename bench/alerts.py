"""Cost of the alert step in the gold micro-batch: the real PIHPS file (a window of it, fanned
out to markets) through bronze → silver → gold → alerts, a week of days per micro-batch, timing
each gold micro-batch and its alert step. The baseline, measured in the same run, is the rest of
the same gold micro-batches (aggregates without alerts). Runs its own Kafka and the Spark
application in this process.

    ./run.sh bench alerts [--start 2025-01-01] [--end 2025-04-01] [--fan-out 6]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

from deltalake import DeltaTable

from bench.timing import timed
from lakehouse.kafka_io import EventProducer, ensure_topics
from lakehouse.reports import parse_time
from lakehouse.settings import SAMPLE_PRICES
from lakehouse.spark import get_spark
from lakehouse.tables import GOLD_ALERTS
from producers.replay import replay
from scripts.isolated_stack import isolated_stack
from streaming_jobs.alerting import AlertStep
from streaming_jobs.medallion import GoldBatch, drain

CHUNK = timedelta(days=7)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-04-01")
    parser.add_argument("--fan-out", type=int, default=6)
    args = parser.parse_args(argv)

    batches: list[float] = []
    alerting: list[float] = []
    GoldBatch.__call__ = timed(GoldBatch.__call__, batches)
    AlertStep.__call__ = timed(AlertStep.__call__, alerting)
    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ("kafka",)) as settings:
        ensure_topics(settings)
        start, end = parse_time(args.start, settings.tz), parse_time(args.end, settings.tz)
        producer = EventProducer(settings)
        spark = get_spark(settings)
        published = 0
        try:
            # one chunk of days per micro-batch, as a live stream brings them
            for chunk in range(math.ceil((end - start) / CHUNK)):
                published += replay(
                    SAMPLE_PRICES,
                    settings,
                    producer,
                    speed=None,
                    start=start + chunk * CHUNK,
                    end=min(end, start + (chunk + 1) * CHUNK),
                    fan_out_markets=args.fan_out,
                ).published
                drain(spark, settings)
        finally:
            spark.stop()
        alerts = DeltaTable(str(GOLD_ALERTS.path(settings))).to_pandas()

    rest = [b - a for b, a in zip(batches, alerting, strict=True)]
    print(f"\nalert step benchmark: {published:,} price events, {len(batches)} batches")
    print(f"{'':<28}{'median':>9}{'max':>9}{'total':>9}")
    for name, values in (("gold batch without alerts", rest), ("alert step", alerting)):
        print(
            f"{name:<28}{statistics.median(values):>8.2f}s{max(values):>8.2f}s{sum(values):>8.1f}s"
        )
    print(f"alert step / rest of batch: {sum(alerting) / sum(rest):.2f}")
    print(f"alerts: {len(alerts)} ({alerts['rule'].value_counts().to_dict()})")


if __name__ == "__main__":
    main()
