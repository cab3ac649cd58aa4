"""The SparkSession of the platform: Delta Lake and the Spark–Kafka connector on the classpath.

Jars come from ``jvm/lib/spark-libs`` (resolved by Maven at set-up), never from Ivy at run time.
Jars the pyspark wheel already ships (Scala, Hadoop client, …) are skipped so that each class is
on the classpath once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from lakehouse.settings import ConfigError, Settings
from lakehouse.storage import hadoop_options

_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def _artifact(jar: Path) -> str:
    match = _VERSIONED_JAR.match(jar.name)
    return match["artifact"] if match else jar.stem


def extra_jars(settings: Settings) -> list[Path]:
    """Jars to add to Spark: the Maven-resolved closure minus what pyspark already has."""
    import pyspark

    lib = settings.paths.jvm_lib_dir / "spark-libs"
    jars = sorted(lib.glob("*.jar"))
    if not any(_artifact(j).startswith("delta-spark") for j in jars):
        raise ConfigError(
            f"no Delta jars in {lib}: run `./run.sh setup` to resolve them with Maven"
        )
    shipped = {_artifact(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [j for j in jars if _artifact(j) not in shipped]


_JOINED_OPTIONS = ("spark.driver.extraJavaOptions",)  # extra values add to these, not replace


def spark_conf(settings: Settings, extra_conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """All Spark options of the platform's application, plus ``extra_conf`` (e.g. the analyst
    catalog of ``lakehouse.catalog``); settings.spark.conf wins."""
    s = settings.spark
    conf = {
        "spark.master": s.master,
        "spark.app.name": s.app_name,
        "spark.driver.memory": s.driver_memory,
        # deep plans (the silver/gold batch) overflow the default thread stack when Spark
        # formats them, e.g. in the error raised when a query is stopped mid-batch
        "spark.driver.extraJavaOptions": "-Xss16m",
        "spark.jars": ",".join(str(j) for j in extra_jars(settings)),
        "spark.jars.ivy": str(settings.paths.data_dir / "ivy-unused"),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.default.parallelism": str(s.shuffle_partitions),
        "spark.ui.port": str(s.ui_port),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # streaming state (the event ids seen, for deduplication) in RocksDB: lookups cost the
        # same however many ids it holds, and each batch checkpoints only its changes
        "spark.sql.streaming.stateStore.providerClass": "org.apache.spark.sql.execution."
        "streaming.state.RocksDBStateStoreProvider",
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # the ids' watermark moves with every batch: expire state in the next data batch rather
        # than in an extra batch of its own after each one
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # small tables on few cores: rebuild Delta snapshots and shuffle with few partitions
        "spark.databricks.delta.snapshotPartitions": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.scheduler.mode": "FAIR",  # concurrent Delta writes of a micro-batch share the cores
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.warehouse.dir": str(settings.paths.data_dir / "spark-warehouse"),
    }
    conf.update(hadoop_options(settings))  # S3A of an s3a:// lakehouse (lakehouse.storage)
    for key, value in (extra_conf or {}).items():
        conf[key] = f"{conf[key]} {value}" if key in _JOINED_OPTIONS and key in conf else value
    conf.update(s.conf)
    return conf


def get_spark(settings: Settings, extra_conf: Mapping[str, str] | None = None):  # noqa: ANN201
    """Create (or return the running) SparkSession configured for the lakehouse (pyspark is
    imported lazily). ``extra_conf`` only takes effect when no session runs yet."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(settings, extra_conf).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
