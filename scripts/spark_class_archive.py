"""Build the class-data-sharing archive of a local Spark driver (``./run.sh setup``).

A Spark driver's JVM reads, parses and verifies ~26 000 classes from the jars before its first
micro-batch is through: ~5 s of CPU at every start of the pipeline, a query or a test session on
two cores. Java's class-data sharing maps them from an archive instead (``-XX:SharedArchiveFile``,
added by ``lakehouse.io.spark.driver_java_options``). The archive is dumped at the exit of a
training driver (``-XX:ArchiveClassesAtExit``) that runs what the platform's drivers run: Delta
writes and reads, a stream with deduplication in RocksDB state through ``foreachBatch``,
the Kafka source's plan and a pandas function. Classes it did not load come from the jars as
before.

The archive holds the jars' sizes and times and the JDK's: it is built again when the pyspark
jars, ``jvm/lib``, the JDK or this file change (a stamp beside it), and the JVM itself refuses a
stale one (one warning line, then the classes load from the jars).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lakehouse.config.settings import ConfigError, Settings, load_settings
from lakehouse.io.spark import class_archive, extra_jars
from scripts.services.java import jdk_home


def fingerprint(settings: Settings) -> str:
    """What the archive depends on: the driver's jars and the JDK, by name, size and time."""
    import pyspark

    inputs = [
        *sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")),
        *extra_jars(settings),
        *sorted(jdk_home().glob("lib/server/*")),
        Path(__file__),
    ]
    digest = hashlib.sha256()
    for path in inputs:
        stat = path.stat()
        digest.update(f"{path.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stamp(archive: Path) -> Path:
    return archive.with_suffix(".stamp")


def is_current(settings: Settings) -> bool:
    """True if the archive exists and was built from the jars and JDK there are now."""
    archive = class_archive(settings)
    stamp = _stamp(archive)
    return (
        archive.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint(settings)
    )


def train(settings: Settings, out: Path) -> None:
    """Run the training driver, which dumps the classes it loaded into ``out`` at its exit."""
    from pyspark import SparkContext
    from pyspark.sql import functions as F

    from lakehouse.io.spark import get_spark

    # the JIT's quick tier alone: the classes loaded are the same, and the optimising tier's
    # work on a run this short was a fifth of the build's CPU (77 → 61 CPU s)
    options = f"-XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit={out}"
    spark = get_spark(settings, {"spark.driver.extraJavaOptions": options})
    root = settings.paths.data_dir
    events = (
        spark.range(2000)
        .select(
            F.concat(F.lit("e"), F.col("id").cast("string")).alias("event_id"),
            (F.col("id") % 7).cast("string").alias("series"),
            (F.col("id") * 1.5).alias("price"),
            F.timestamp_seconds(F.lit(1_735_689_600) + F.col("id") * 60).alias("at"),
        )
        .withColumn("date", F.to_date("at"))
    )
    table = str(root / "events")
    events.write.format("delta").partitionBy("date").save(table)
    events.limit(10).write.format("delta").mode("append").save(table)
    read = spark.read.format("delta").load(table).where(F.col("price") > 10)
    read.groupBy("series").agg(F.max("at"), F.count("*")).collect()

    def first_copies(batch, batch_id: int) -> None:  # noqa: ANN001 - a foreachBatch function
        batch.write.format("delta").mode("append").save(str(root / "silver"))

    (
        spark.readStream.format("delta")
        .load(table)
        .withWatermark("at", "1 hour")
        .dropDuplicatesWithinWatermark(["event_id"])
        .writeStream.foreachBatch(first_copies)
        .option("checkpointLocation", str(root / "checkpoint"))
        .trigger(availableNow=True)
        .start()
        .awaitTermination()
    )
    kafka = spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9")
    kafka.option("subscribe", "training").load()  # the source's plan; no broker is reached

    def doubled(frames):  # noqa: ANN001 - a mapInPandas function
        for frame in frames:
            yield frame.assign(price=frame["price"] * 2)

    events.limit(100).mapInPandas(doubled, events.schema).collect()

    spark.stop()
    gateway = SparkContext._gateway
    gateway.proc.stdin.close()  # the JVM exits when its stdin closes, and dumps the archive
    gateway.proc.wait()


def build(settings: Settings) -> Path:
    """Run the training driver in a child process with a temporary data folder, its output in
    ``<log_dir>/class-archive.log``; replace the old archive only when the new one is whole."""
    built_from = fingerprint(settings)  # no jars or no Java: said before anything runs
    archive = class_archive(settings)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)  # the training driver must not map the archive it replaces
    _stamp(archive).unlink(missing_ok=True)
    partial = archive.with_suffix(".partial")
    settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
    log = settings.paths.log_dir / "class-archive.log"
    with tempfile.TemporaryDirectory(prefix="class-archive-") as tmp, log.open("wb") as out:
        env = {**os.environ, "SMARTMARKET_PATHS__DATA_DIR": tmp}
        command = [sys.executable, "-m", "scripts.spark_class_archive", "--train", str(partial)]
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise ConfigError(f"building the Spark class archive failed: see {log}")
    partial.replace(archive)
    _stamp(archive).write_text(built_from + "\n")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, help=argparse.SUPPRESS)  # the child of build()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.train:
            train(settings, args.train)
        elif not is_current(settings):
            print("==> building the Spark driver's class archive (once, ~1 min)", file=sys.stderr)
            build(settings)
    except ConfigError as exc:  # no jars, no Java, a failed training run: said, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
