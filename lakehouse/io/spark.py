"""The SparkSession of the platform: Delta Lake and the Spark–Kafka connector on the classpath.

Jars come from ``jvm/lib/spark-libs`` (resolved by Maven at set-up), never from Ivy at run time.
Jars the pyspark wheel already ships (Scala, Hadoop client, …) are skipped so that each class is
on the classpath once.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings, is_uri
from lakehouse.config.storage import hadoop_options

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

#: log4j2 configuration of the cluster's JVMs other than the driver (quiet: warnings)
CLUSTER_LOG_CONFIG = PROJECT_ROOT / "conf" / "spark-log4j2.properties"
#: the driver's loggers held above WARN: what they warn of is counted elsewhere — a micro-batch
#: longer than its trigger ("Current batch is falling behind", once a batch on a busy box) is
#: the pipeline's trigger-phase metric (``streaming_jobs/progress_metrics.py``)
QUIET_DRIVER_LOGGERS = {
    "org.apache.spark.sql.execution.streaming.runtime.ProcessingTimeExecutor": "ERROR",
}
#: the FAIR scheduler's pools (``SILVER_POOL`` before ``GOLD_POOL``)
SCHEDULER_POOLS = PROJECT_ROOT / "conf" / "fairscheduler.xml"
SILVER_POOL = "silver"
GOLD_POOL = "gold"
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


#: options whose extra values (``extra_conf``, ``spark.conf``) add to the computed ones rather
#: than replace them: a JVM flag given again wins over the earlier one, and the others stay
_JOINED_OPTIONS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


def spark_conf(settings: Settings, extra_conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """All Spark options of the platform's application, plus ``extra_conf`` (e.g. the analyst
    catalog of ``lakehouse.io.spark_catalog``), then settings.spark.conf; each wins over what
    came before, except that ``_JOINED_OPTIONS`` add to it."""
    s = settings.spark
    master = master_url(settings)
    jars = extra_jars(settings)
    conf = {
        "spark.master": master,
        "spark.app.name": s.app_name,
        "spark.driver.memory": s.driver_memory,
        "spark.driver.extraJavaOptions": " ".join(driver_java_options(settings, master)),
        "spark.jars.ivy": str(settings.paths.data_dir / "ivy-unused"),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.default.parallelism": str(s.shuffle_partitions),
        "spark.ui.port": str(s.ui_port),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        **checkpoint_conf(settings),
        # streaming state (the event ids seen, for deduplication) in RocksDB: lookups cost the
        # same however many ids it holds, and each batch checkpoints only its changes
        "spark.sql.streaming.stateStore.providerClass": "org.apache.spark.sql.execution."
        "streaming.state.RocksDBStateStoreProvider",
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # a put need not look the key up first to keep a count of the rows (the state
        # operators' numRowsTotal metric goes; what the pipeline reports does not use it)
        "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
        # the ids' watermark moves with every batch: expire state in the next data batch rather
        # than in an extra batch of its own after each one
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # small tables on few cores: rebuild Delta snapshots and shuffle with few partitions
        "spark.databricks.delta.snapshotPartitions": str(s.shuffle_partitions),
        # Spark's VACUUM (an analyst's, `query --engine spark`) lists a table's folders in a job
        # of this many tasks (default 10 000: 24 s for a table of 180 day partitions, 2.3 s with 4)
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        # concurrent Delta writes of a micro-batch share the cores; silver's jobs go first
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(SCHEDULER_POOLS),
        # the same small plans run every micro-batch: keep their compiled code (the default
        # 100 entries are fewer than one batch's stages, so every batch compiled them again)
        "spark.sql.codegen.cache.maxEntries": "5000",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        # Tungsten's page (default on a 2 GB driver: 32 MB) is the least a hash aggregate or a
        # broadcast hash relation holds, however few its rows: the relations of a gold batch's
        # small broadcast joins, on the heap as long as their plans, filled it within the hour
        # of the default stack (docs/benchmarks.md); a record larger than a page gets its own
        "spark.buffer.pageSize": "1m",
        "spark.sql.warehouse.dir": str(settings.paths.data_dir / "spark-warehouse"),
        # Python workers (the silver query's stateful step) import this project's modules; their
        # daemon keeps pyspark.zip's directory between tasks (lakehouse/io/python_daemon.py)
        "spark.executorEnv.PYTHONPATH": str(PROJECT_ROOT),
        "spark.python.daemon.module": "lakehouse.io.python_daemon",
        # pyspark's own stateful serializer concatenates frames in a way pandas 2 warns about
        # (once per group, into the pipeline's log)
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
        **driver_conf(settings),
        **(cluster_conf(settings, jars) if master.startswith("spark://") else local_conf(jars)),
    }
    conf.update(hadoop_options(settings))  # S3A of an s3a:// lakehouse (lakehouse.config.storage)
    for extra in (extra_conf or {}, s.conf):
        for key, value in extra.items():
            joined = key in _JOINED_OPTIONS and key in conf
            conf[key] = f"{conf[key]} {value}" if joined else value
    return conf


def class_archive(settings: Settings) -> Path:
    """The class-data-sharing archive of a local Spark driver's classes, built by ``./run.sh
    setup`` (``scripts.spark_class_archive``): the JVM maps the classes from it instead of
    reading, parsing and verifying ~18 000 of them from the jars at every start."""
    return settings.paths.jvm_lib_dir / "class-archive" / "spark-driver.jsa"


#: the JIT's optimising tier (C2) for methods a hundred times as hot as its defaults require:
#: a batch's plans are new classes each time (Janino), most run a few thousand times and
#: then never again, and C2 compiled them for a third of the driver's CPU, still after
#: minutes of running (docs/benchmarks.md, thirty-fifth entry); what stays hot is compiled.
#: Ten times spared most of that; a hundred times, the same at rest and a few CPU s less in
#: the default stack's first five minutes (four pairs of fresh stacks, forty-fifth entry)
LATE_C2 = [
    "-XX:Tier4InvocationThreshold=500000",
    "-XX:Tier4MinInvocationThreshold=60000",
    "-XX:Tier4CompileThreshold=1500000",
    "-XX:Tier4BackEdgeThreshold=4000000",
]


def driver_java_options(settings: Settings, master: str) -> list[str]:
    """The driver JVM's options. A local driver maps the class archive when there is one (its
    classpath is the one the archive was built with; a stale archive is refused by the JVM with
    a warning, and the classes load from the jars as without one)."""
    # deep plans (the silver/gold batch) overflow the default thread stack when Spark formats
    # them, e.g. in the error raised when a query is stopped mid-batch; a heap run out exits
    # (the keeper restarts the pipeline from its checkpoints, counted) instead of leaving a
    # driver that only collects garbage behind a "healthy" status (docs/streaming.md). The
    # throughput collector: G1 (the JVM's choice on two cores) spent ~10 % more CPU on the same
    # Spark work, its barriers and concurrent marking (docs/benchmarks.md, thirty-second entry)
    options = ["-Xss16m", "-XX:+ExitOnOutOfMemoryError", "-XX:+UseParallelGC", *LATE_C2]
    archive = class_archive(settings)
    if master.startswith("local") and archive.exists():
        options.append(f"-XX:SharedArchiveFile={archive}")
    return options


def checkpoint_conf(settings: Settings) -> dict[str, str]:
    """How streaming checkpoints are written. In a local folder through Hadoop's FileSystem
    API: its default, FileContext, checks the target of every rename with a ``readlink``
    process (Hadoop's native library is not on the classpath), ~40 ms for each offset, commit
    and state file — ~0.1 s a micro-batch for each stateful operator. A rename in one folder of
    a local file system is atomic either way. An ``s3a://`` root keeps Spark's default."""
    if is_uri(settings.paths.checkpoint_root):
        return {}
    return {
        "spark.sql.streaming.checkpointFileManagerClass": "org.apache.spark.sql.execution."
        "streaming.checkpointing.FileSystemBasedCheckpointFileManager"
    }


def cluster_marker(settings: Settings) -> Path:
    """The file that holds the master URL of the embedded standalone cluster while it runs
    (written and removed by its ``spark-master`` service)."""
    return settings.paths.run_dir / "spark-master.url"


def master_url(settings: Settings) -> str:
    """The master of the platform's Spark applications: ``spark.master``, except that a local
    master means the embedded standalone cluster while one runs (``./run.sh up --cluster N``),
    so the pipeline, queries and notebooks started meanwhile get their executors there."""
    master = settings.spark.master
    if master.startswith("local"):
        try:
            return cluster_marker(settings).read_text().strip() or master
        except FileNotFoundError:
            return master
    return master


def driver_conf(settings: Settings) -> dict[str, str]:
    """Where executors reach the driver: its advertised host, bind address and, when set, fixed
    RPC and block manager ports (loopback and any free port by default)."""
    s = settings.spark
    conf = {"spark.driver.host": s.driver_host, "spark.driver.bindAddress": s.driver_bind_address}
    if s.driver_port:
        conf["spark.driver.port"] = str(s.driver_port)
    if s.block_manager_port:
        conf["spark.driver.blockManager.port"] = str(s.block_manager_port)
    return conf


def local_conf(jars: list[Path]) -> dict[str, str]:
    """Local mode: the driver is the only JVM; it adds the jars itself."""
    return {"spark.jars": ",".join(str(j) for j in jars)}


def cluster_conf(settings: Settings, jars: list[Path]) -> dict[str, str]:
    """A standalone cluster: the jars of ``jvm/`` on the classpath of the driver and of every
    executor (read from the same path on the workers, never shipped or downloaded at run time),
    executors of the configured size. An executor's stdout/stderr in the worker's folder roll by
    size like the services' logs."""
    classpath = ":".join(str(j) for j in jars)
    s = settings.spark
    return {
        "spark.executor.logs.rolling.strategy": "size",
        "spark.executor.logs.rolling.maxSize": str(settings.services.log_max_bytes),
        "spark.executor.logs.rolling.maxRetainedFiles": str(max(settings.services.log_backups, 1)),
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile={CLUSTER_LOG_CONFIG}",
        "spark.executor.memory": s.executor_memory,
        "spark.executor.cores": str(s.executor_cores),
    }


def get_spark(settings: Settings, extra_conf: Mapping[str, str] | None = None):  # noqa: ANN201
    """Create (or return the running) SparkSession configured for the lakehouse (pyspark is
    imported lazily). ``extra_conf`` only takes effect when no session runs yet."""
    from pyspark.sql import SparkSession

    from lakehouse.io.jvm_names import remember_jvm_names

    # Python workers run this interpreter (PySpark reads it from the environment, not the conf)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_conf(settings, extra_conf).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    remember_jvm_names(spark._jvm)
    spark.sparkContext.setLogLevel("WARN")
    set_log_levels(spark, QUIET_DRIVER_LOGGERS)
    return spark


def set_log_levels(spark, levels: Mapping[str, str]) -> None:  # noqa: ANN001
    """Set the levels of the driver's log4j loggers in ``levels`` (name → ``ERROR``, ``OFF`` …)."""
    log4j = spark._jvm.org.apache.logging.log4j
    for name, level in levels.items():
        log4j.core.config.Configurator.setLevel(name, log4j.Level.toLevel(level))


def pinned(df: DataFrame) -> DataFrame:
    """``df`` computed once, now, and kept for the rest of its micro-batch (a local checkpoint;
    ``df.transform(pinned)`` in a chain) — as serialized blocks, in memory while they fit, on
    local disk after. Spark's default level keeps a local checkpoint's rows as objects, an
    ``UnsafeRow`` and its array per row, which the memory store underestimates: at the national
    load one gold batch's ~700 000 rows so kept ran a 2 GB driver out of heap
    (docs/benchmarks.md, twenty-sixth entry). pyspark is imported lazily, as in ``get_spark``."""
    from pyspark import StorageLevel

    return df.localCheckpoint(storageLevel=StorageLevel.MEMORY_AND_DISK)  # not deserialized


def literal_map(mapping: Mapping[str, str | float]) -> Column:
    """``mapping`` (reference data: market → province, commodity → unit …) as a literal map
    column: its JSON text parsed in the JVM and constant-folded — ``create_map`` of a ``lit`` per
    key and value made ~4 py4j calls an entry, 0.4 of the 1.7 s a silver plan took to build.
    Its values are strings when all of ``mapping``'s are, doubles otherwise (numbers)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, MapType, StringType

    text = all(isinstance(v, str) for v in mapping.values())
    kind = MapType(StringType(), StringType() if text else DoubleType())
    return F.from_json(F.lit(json.dumps(mapping)), kind)


def local_frame(
    spark: SparkSession,
    rows: Sequence[Sequence[Any] | Mapping[str, Any]],
    schema: StructType | str,
) -> DataFrame:
    """``rows`` (tuples in ``schema``'s column order, or mappings by column name; ``schema`` a
    ``StructType`` or DDL text) as an in-memory DataFrame whose size Spark knows: a
    ``LocalRelation``, by Arrow, as the rows ``delta_io`` reads through delta-rs are.
    ``createDataFrame`` of a Python list is instead an RDD of unknown size, so every join with
    it shuffles both sides: a few alert rows then took ~50 stages where broadcast joins take a
    handful (docs/benchmarks.md, twenty-seventh entry)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DataType

    struct = DataType.fromDDL(schema) if isinstance(schema, str) else schema
    arrow = to_arrow_schema(struct, timezone="UTC")
    named = [r if isinstance(r, Mapping) else dict(zip(struct.names, r, strict=True)) for r in rows]
    return arrow_frame(spark, pa.Table.from_pylist(named, arrow))


def arrow_frame(spark: SparkSession, rows: pa.Table) -> DataFrame:
    """Arrow ``rows`` as an in-memory Spark DataFrame of their schema (a ``LocalRelation``)."""
    # none: columns of one empty chunk, as PySpark cannot convert a column of no chunks
    return spark.createDataFrame(rows if rows.num_rows else rows.schema.empty_table())
