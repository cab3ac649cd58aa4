"""The bulk history load (``./run.sh load-history``, issue 54 item 4) on the shipped national
panel (``datasets/prices_pihps_province_daily_2022_2024.csv.gz``: 278 581 province × commodity ×
day prices), next to the stream on the same records, in one SparkSession (``local[2]``):

- staging: the CSV through the ingest readers into staged records (``producers.history_files``);
- loading: the history query over them into bronze, silver, quarantine and holds
  (``streaming_jobs.history.run_history``) — the measure of the target, rows/s into silver;
- the baseline: the same records (the staged values, on the topics their roles name) produced
  to Kafka untimed, then drained by the live silver query (``medallion.silver_query``) into a
  lakehouse of its own, in micro-batches of ``spark.max_offsets_per_trigger``.

The bulk load runs first, in a fresh JVM (its time includes the first batch's compilation), the
stream after it in a warm one — or the other way round (``--stream-first``).

    ./run.sh bench bulk_history [--records-per-file 250000] [--no-stream] [--stream-first]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config.settings import PROVINCE_PANEL, Settings
from lakehouse.io.history_staging import FIELDS, SEPARATOR, Role, Staging
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.spark import get_spark
from producers.history_files import stage_file
from scripts.isolated_stack import isolated_stack
from streaming_jobs.history import run_history
from streaming_jobs.medallion import drain, silver_query

TARGET = 100_000  # rows/s into silver (docs/targets.md)


def _rooted(settings: Settings, root: Path, records_per_file: int) -> Settings:
    """``settings`` with a lakehouse and checkpoints of their own under ``root``."""
    paths = {"lakehouse_root": root / "lakehouse", "checkpoint_root": root / "checkpoints"}
    history = {"records_per_file": records_per_file}
    return settings.model_copy(
        update={
            "paths": settings.paths.model_copy(update=paths),
            "history": settings.history.model_copy(update=history),
        }
    )


def _produce_staged(settings: Settings, staging: Staging) -> int:
    """Every staged record to the topic its role names, as a producer would have sent it."""
    producer = EventProducer(settings)
    sent = 0
    for part in sorted(staging.staged.glob("*.txt")):
        with part.open(encoding="utf-8") as lines:
            for line in lines:
                role, _, _, key, value = line.rstrip("\n").split(SEPARATOR, FIELDS - 1)
                topic = Role(role).topic(settings.kafka.topics)
                producer.produce(topic, value.encode(), key=key or None)
                sent += 1
    producer.flush(600)
    return sent


def _stream(
    spark: SparkSession, stack: Settings, tmp: Path, bulk: Settings, args: argparse.Namespace
) -> float:
    """The baseline: the staged records through Kafka and the live silver query; its rows/s."""
    stream = _rooted(stack, tmp / "stream", args.records_per_file)
    ensure_topics(stream)
    sent = _produce_staged(stream, Staging(bulk))
    began = time.monotonic()
    drain(spark, stream, silver_query)
    rate = sent / (time.monotonic() - began)
    print(
        f"stream (Kafka → silver, batches of {stream.spark.max_offsets_per_trigger:,}): "
        f"{sent} records in {sent / rate:.1f}s ({rate:,.0f} rows/s)",
        flush=True,
    )
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records-per-file", type=int, default=250_000)
    parser.add_argument("--no-stream", action="store_true", help="without the stream baseline")
    parser.add_argument(
        "--stream-first", action="store_true", help="the baseline first (the bulk load warm)"
    )
    args = parser.parse_args(argv)

    names = () if args.no_stream else ("kafka",)
    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), names) as stack:
        bulk = _rooted(stack, Path(tmp) / "bulk", args.records_per_file)
        began = time.monotonic()
        load, _ = stage_file(PROVINCE_PANEL, bulk)
        staged = time.monotonic() - began
        print(f"staged: {load} in {staged:.1f}s ({load.rows / staged:,.0f} rows/s)", flush=True)
        spark = get_spark(bulk)
        stream_rate = None
        if args.stream_first and not args.no_stream:
            stream_rate = _stream(spark, stack, Path(tmp), bulk, args)
        result = run_history(spark, bulk, load.records)
        print(f"bulk load into silver: {result}", flush=True)
        total = staged + result.seconds
        print(
            f"end to end (staging + load): {load.rows / total:,.0f} rows/s; the target "
            f"{TARGET:,} rows/s: {result.rate / TARGET:.2f} × by the load, "
            f"{load.rows / total / TARGET:.2f} × end to end",
            flush=True,
        )
        if stream_rate is None and not args.no_stream:
            stream_rate = _stream(spark, stack, Path(tmp), bulk, args)
        if stream_rate is not None:
            print(f"bulk / stream: {result.rate / stream_rate:.2f} ×", flush=True)


if __name__ == "__main__":
    main()
