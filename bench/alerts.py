"""Cost of the alert step in the gold micro-batch: the real PIHPS file (a window of it, fanned
out to markets) through bronze → silver → gold → alerts, a week of days per micro-batch, timing
each gold micro-batch, when in it its alerts were written (its last MERGE into ``gold.alerts``),
and the seconds the alert step's calls (``plan``, ``signals``, ``alerts``) and its MERGEs took,
which overlap the aggregates. The baseline,
measured in the same run, is the whole gold micro-batch. Runs its own Kafka and the Spark
application in this process. The replayed days are history, which raises no alert on a live
stack (``alerts.max_age_hours``): the benchmark lifts that limit, as the tests do, so that the
alerts of the history are stored and their MERGE is measured.

    ./run.sh bench alerts [--start 2025-01-01] [--end 2025-04-01] [--fan-out 6]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from lakehouse.catalog.tables import GOLD_ALERTS
from lakehouse.config.settings import SAMPLE_PRICES
from lakehouse.domain.intake.time_text import parse_time
from lakehouse.io.delta_io import Write
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.spark import get_spark
from producers.replay import replay
from scripts.isolated_stack import isolated_stack
from streaming_jobs.alerts.step import AlertStep
from streaming_jobs.medallion import GoldBatch, drain

CHUNK = timedelta(days=7)
#: ``alerts.max_age_hours`` of the run: the replayed history is news to it
HISTORY_IS_NEWS_HOURS = 24.0 * 365 * 20


class AlertClock:
    """Per gold batch: its seconds, the seconds from its start until its alerts were written,
    and the seconds its alert step's calls and MERGEs took (they run in threads, beside the
    aggregates)."""

    def __init__(self) -> None:
        self.batches: list[float] = []
        self.written: list[float] = []
        self.calls: list[float] = []
        self._began = 0.0
        self._written_at: float | None = None
        self._lock = threading.Lock()

    def install(self) -> None:
        GoldBatch.__call__ = self._batch(GoldBatch.__call__)
        GoldBatch._write = self._writer(GoldBatch._write)
        for name in ("plan", "signals", "alerts"):
            setattr(AlertStep, name, self._call(getattr(AlertStep, name)))

    def _batch(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._began, self._written_at = time.monotonic(), None
            self.calls.append(0.0)
            try:
                return method(*args, **kwargs)
            finally:
                self.batches.append(time.monotonic() - self._began)
                if self._written_at is not None:
                    self.written.append(self._written_at - self._began)

        return wrapper

    def _call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` timed, its seconds added to the batch's calls."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                with self._lock:
                    self.calls[-1] += time.monotonic() - began

        return wrapper

    def _writer(self, method: Callable[[GoldBatch, Write], None]) -> Callable[..., None]:
        """The gold batch's writer: its MERGEs into ``gold.alerts`` timed as calls of the alert
        step, the end of the last one as when the batch's alerts were written."""
        timed = self._call(method)

        def wrapper(batch: GoldBatch, write: Write) -> None:
            if write.table != GOLD_ALERTS:
                return method(batch, write)
            try:
                return timed(batch, write)
            finally:
                self._written_at = time.monotonic()

        return wrapper


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-04-01")
    parser.add_argument("--fan-out", type=int, default=6)
    args = parser.parse_args(argv)

    clock = AlertClock()
    clock.install()
    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ("kafka",)) as stack:
        alerts = stack.alerts.model_copy(update={"max_age_hours": HISTORY_IS_NEWS_HOURS})
        settings = stack.model_copy(update={"alerts": alerts})
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
        stored = DeltaTable(str(GOLD_ALERTS.path(settings))).to_pandas()

    print(f"\nalert step benchmark: {published:,} price events, {len(clock.batches)} batches")
    print(f"{'':<36}{'median':>9}{'max':>9}{'total':>9}")
    for name, values in (
        ("gold batch", clock.batches),
        ("alerts written, from batch start", clock.written),
        ("alert step's calls (overlapping)", clock.calls),
    ):
        print(
            f"{name:<36}{statistics.median(values):>8.2f}s{max(values):>8.2f}s{sum(values):>8.1f}s"
        )
    print(f"alert step's calls / gold batch: {sum(clock.calls) / sum(clock.batches):.2f}")
    print(f"alerts: {len(stored)} ({stored['rule'].value_counts().to_dict()})")


if __name__ == "__main__":
    main()
