"""Spark with real Delta Lake from the Maven-resolved jars."""

from pathlib import Path

from delta.tables import DeltaTable
from py4j.protocol import REFLECTION_COMMAND_NAME
from pyspark.sql import functions as F

from lakehouse.catalog.tables import Layer, Table
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.spark import class_archive, literal_map
from scripts.spark_class_archive import is_current, main
from tests.codegen import code_generated, compilations
from tests.conftest import isolated

#: a table the pipeline appends to as it does to silver's and gold.data_quality
APPENDED = Table(Layer.gold, "appended", "batches appended by Spark, then by delta-rs")


def test_delta_write_read_and_time_travel(spark, tmp_path):
    path = str(tmp_path / "prices")
    first = spark.createDataFrame(
        [("IP-001", "beras", 14000.0)], "market string, commodity string, price double"
    )
    first.write.format("delta").save(path)
    second = spark.createDataFrame([("IP-003", "beras", 14500.0)], first.schema)
    second.write.format("delta").mode("append").save(path)

    assert spark.read.format("delta").load(path).count() == 2
    version0 = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assert [tuple(r) for r in version0.collect()] == [("IP-001", "beras", 14000.0)]
    history = DeltaTable.forPath(spark, path).history().select("version").collect()
    assert sorted(r.version for r in history) == [0, 1]


def test_no_jar_is_fetched_at_run_time(spark, settings):
    conf = spark.sparkContext.getConf()
    assert not conf.get("spark.jars.packages", "")
    jars = conf.get("spark.jars").split(",")
    assert all(j.startswith(str(settings.paths.jvm_lib_dir)) for j in jars)
    assert any("delta-spark" in j for j in jars) and any("sql-kafka" in j for j in jars)


def test_the_driver_does_not_warn_of_each_batch_longer_than_its_trigger(spark):
    """A busy pipeline's every micro-batch would log "falling behind" (the trigger-phase
    metric counts it); an error of those loggers still reaches the log."""
    runtime = "org.apache.spark.sql.execution.streaming.runtime"
    log_manager = spark._jvm.org.apache.logging.log4j.LogManager
    quiet = log_manager.getLogger(f"{runtime}.ProcessingTimeExecutor")
    assert not quiet.isWarnEnabled() and quiet.isErrorEnabled()
    assert log_manager.getLogger(f"{runtime}.MicroBatchExecution").isWarnEnabled()  # the others


def test_a_small_broadcast_join_holds_little_of_the_driver_heap(spark):
    """A broadcast hash relation holds at least one Tungsten page as long as its plan lives,
    and a gold batch makes several: at Spark's default page on a 2 GB driver (32 MB) they
    filled the heap within the hour (``spark.buffer.pageSize``)."""
    memory = spark._jsc.sc().env().memoryManager()
    before = memory.storageMemoryUsed()
    left = spark.range(1000).select(F.concat(F.lit("M-"), F.col("id") % 3).alias("market"))
    right = spark.createDataFrame(
        [("M-0", "a"), ("M-1", "b"), ("M-2", "c")], "market string, n string"
    )
    assert left.join(F.broadcast(right), "market").count() == 1000
    assert memory.storageMemoryUsed() - before < 4 * 2**20


def test_the_driver_maps_the_class_archive_setup_built(spark, settings):
    archive = class_archive(settings)
    assert is_current(settings), f"{archive} is missing or stale: `./run.sh setup` builds it"
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    assert str(archive) in Path(f"/proc/{pid}/maps").read_text()  # a refused archive is unmapped


def test_an_archive_without_jars_to_build_from_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SMARTMARKET_PATHS__JVM_LIB_DIR", str(tmp_path))
    assert main([]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("error: no Delta jars in") and "./run.sh setup" in error


def test_the_driver_resolves_each_jvm_name_once(spark, monkeypatch):
    """A column built again asks the JVM for the column alone: ``functions`` and its ``col``
    were resolved the first time (``lakehouse/io/jvm_names.py``); a field is read every time."""
    client = spark._jvm._gateway_client
    sent: list[str] = []
    send = client.send_command
    monkeypatch.setattr(client, "send_command", lambda c, *a: sent.append(c) or send(c, *a))

    def lookups() -> int:
        asked = [c for c in sent if c.startswith(REFLECTION_COMMAND_NAME)]
        sent.clear()
        return len(asked)

    F.col("price")  # resolved here, if no test did before
    integer = spark._jvm.java.lang.Integer
    assert integer.toString(2) == "2"
    lookups()
    F.col("price")
    assert sent and lookups() == 0
    assert spark._jvm.java.lang.Integer.toString(3) == "3"  # a class, a static method
    assert lookups() == 0
    assert integer.MAX_VALUE == integer.MAX_VALUE == 2**31 - 1
    assert lookups() == 2  # a field's value: asked each time


def test_a_literal_map_is_one_folded_literal_of_its_values_type(spark):
    """``literal_map``: strings stay strings, numbers are doubles, an empty map answers null —
    and the optimiser folds it to a map literal, not JSON parsed per row."""
    picked = F.when(F.col("id") > 0, "b").otherwise("a")
    rows = spark.range(2).select(
        literal_map({"a": "x", "b": "y"})[picked].alias("text"),
        literal_map({"a": 1, "b": 2.5})[picked].alias("number"),
        literal_map({})["a"].alias("none"),
    )
    assert rows.schema.simpleString() == "struct<text:string,number:double,none:string>"
    assert [tuple(r) for r in rows.collect()] == [("x", 1.0, None), ("y", 2.5, None)]
    plan = rows._jdf.queryExecution().optimizedPlan().toString()
    assert "map(keys: [a,b], values: [1.0,2.5])" in plan and "from_json" not in plan


def test_spark_loads_a_delta_rs_commit_from_its_checksum(spark, settings, tmp_path):
    """A table Spark created and delta-rs appended to since (``SparkTable.append_once``, the
    pipeline's appends): each new version carries a checksum (``version_checksum``), so Spark
    loads its protocol and metadata without the log-replay job whose generated code names the
    version — with code generation on, reading a new version compiles nothing new."""
    own = isolated(settings, tmp_path)
    rows = lambda n: spark.createDataFrame([(n, "x")], "batch_id long, v string")  # noqa: E731
    SparkLake(spark, own)[APPENDED].append_once(rows(0), "probe", 0)
    compiled = []
    with code_generated(spark):
        for n in range(1, 5):
            SparkLake(spark, own)[APPENDED].append_once(rows(n), "probe", n)
            before = compilations(spark)
            read = SparkLake(spark, own)[APPENDED].read().where("batch_id >= 0")
            assert read.count() == n + 1
            compiled.append(compilations(spark) - before)
    assert compiled[2:] == [0, 0], compiled  # the first reads compile the count's own code
