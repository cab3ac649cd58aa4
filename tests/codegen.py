"""Spark's generated code in a test: how many classes the code generator has compiled, and code
generation turned on for a while — the test session's Spark runs without it
(``conftest.TEST_SPARK_CONF``), where nothing is ever compiled to count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

#: the settings that turn code generation on, as Spark's defaults have them
GENERATED = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}


def compilations(spark: SparkSession) -> int:
    """How many classes Spark's code generator has compiled in this JVM so far."""
    metrics = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
    return metrics.METRIC_COMPILATION_TIME().getCount()


@contextmanager
def code_generated(spark: SparkSession) -> Iterator[None]:
    """Spark generates and compiles code inside the block, as the pipeline's Spark does."""
    was = {key: spark.conf.get(key) for key in GENERATED}
    for key, value in GENERATED.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in was.items():
            spark.conf.set(key, value)
