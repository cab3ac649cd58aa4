"""A run of the bulk history load (``./run.sh load-history``): the history query
(``medallion.history_query``) over every staged record it has not read yet, with a progress
bar, and what its batches did (``LoadResult``, from their ``gold.data_quality`` rows)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from tqdm import tqdm

from lakehouse.catalog.tables import GOLD_DATA_QUALITY, HISTORY_BATCHES
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import SparkLake
from streaming_jobs.medallion import history_query

#: the silver plan reads each record twice — as bronze and, the first copy, to judge it
#: (``medallion.silver_plan``) — and a batch's ``numInputRows`` counts both
READS_PER_RECORD = 2
COUNTS = ("received", "accepted", "quarantined", "duplicates")


@dataclass(frozen=True)
class LoadResult:
    """What a run's batches did: the records they read (``received``), of which ``accepted``
    went to silver, ``quarantined`` to quarantine and ``duplicates`` were copies of an event
    seen before; in ``seconds``."""

    batches: int
    received: int
    accepted: int
    quarantined: int
    duplicates: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.received} records in {self.batches} batches: {self.accepted} into silver, "
            f"{self.quarantined} quarantined, {self.duplicates} duplicates, in "
            f"{self.seconds:.1f}s ({self.rate:,.0f} rows/s)"
        )


def run_history(spark: SparkSession, settings: Settings, expected: int = 0) -> LoadResult:
    """Run the history query until it has read everything staged (``expected``: the records
    the progress bar counts to); raises what the query raised."""
    began = time.monotonic()
    query = history_query(spark, settings)
    batches: dict[int, int] = {}  # the query's batch id → records read
    with tqdm(total=expected or None, unit="row", desc="load", disable=None) as bar:
        while not query.awaitTermination(1):
            _note(query.recentProgress, batches, bar)
        _note(query.recentProgress, batches, bar)
    seconds = time.monotonic() - began
    if not batches:
        return LoadResult(0, 0, 0, 0, 0, seconds)
    numbers = sorted(HISTORY_BATCHES + b for b in batches)
    quality = SparkLake(spark, settings)[GOLD_DATA_QUALITY].where(
        f"t.batch_id BETWEEN {numbers[0]} AND {numbers[-1]}"
    )
    totals = quality.agg(*[F.sum(c).alias(c) for c in COUNTS]).first()
    return LoadResult(len(batches), *[int(totals[c] or 0) for c in COUNTS], seconds)


def _note(progress: list[dict], batches: dict[int, int], bar: tqdm) -> None:
    """Count the records of the batches ``progress`` reports that were not counted yet (not
    the batches without records Spark runs to expire state)."""
    for p in progress:
        if p["numInputRows"]:
            batches.setdefault(p["batchId"], p["numInputRows"] // READS_PER_RECORD)
    bar.update(sum(batches.values()) - bar.n)
