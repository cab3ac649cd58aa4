"""What an idempotent Delta append costs: the pipeline's commit marker (``SparkTable.append_once``,
the batch recorded in the commit's ``userMetadata`` and remembered by the process; committed by
delta-rs after a table's first write) next to Spark's ``txnAppId`` / ``txnVersion`` options, and
a plain Spark append as the baseline — the same small frames appended to tables of the same
history, in one SparkSession (local[2]).

    ./run.sh bench idempotent_append [--appends 30] [--rows 1000] [--history 60]

The marker was chosen when Delta 4.0.0 rebuilt the table's state on every ``txnAppId`` append;
this measures whether the Delta release pinned now still does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.spark import get_spark
from scripts.isolated_stack import isolated_stack

BENCH_TABLES = {
    name: Table("bronze", name, "a table of this benchmark") for name in ("plain", "txn", "marker")
}


def _timed_appends(append: Callable[[int], None], first: int, count: int) -> list[float]:
    times = []
    for batch in range(first, first + count):
        began = time.monotonic()
        append(batch)
        times.append(time.monotonic() - began)
    return times


def _methods(frame: DataFrame, settings: Settings) -> dict[str, Callable[[int], None]]:
    """Each way of appending batch ``n`` of one writer, each to a table of its own."""

    def writer(name: str):
        return frame.write.format("delta").mode("append"), BENCH_TABLES[name].path(settings)

    def plain(_batch: int) -> None:
        write, path = writer("plain")
        write.save(path)

    def txn(batch: int) -> None:
        write, path = writer("txn")
        write.option("txnAppId", "bench").option("txnVersion", batch).save(path)

    marked = SparkLake(frame.sparkSession, settings)[BENCH_TABLES["marker"]]

    def marker(batch: int) -> None:
        marked.append_once(frame, "bench", batch)

    return {"plain append": plain, "txnAppId": txn, "commit marker": marker}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--history", type=int, default=60, help="commits before the timed ones")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ()) as settings:
        spark = get_spark(settings)
        frame: DataFrame = spark.range(args.rows).selectExpr(
            "cast(id as string) as event_id", "cast(id as double) as price"
        )
        frame.cache().count()
        methods = _methods(frame, settings)
        results = {}
        for label, append in methods.items():
            _timed_appends(append, 0, args.history)  # the table's history, untimed
            times = _timed_appends(append, args.history, args.appends)
            results[label] = statistics.median(times)
        spark.stop()

    base = results["plain append"]
    print(f"{args.appends} appends of {args.rows} rows after {args.history} commits, median:")
    for label, seconds in results.items():
        print(f"  {label:<14} {seconds * 1000:7.1f} ms  {seconds / base:5.2f} × plain")


if __name__ == "__main__":
    main()
