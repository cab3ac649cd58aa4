"""Delta writes of the pipeline, all idempotent: a micro-batch replayed after a crash writes
nothing twice."""

from __future__ import annotations

from collections.abc import Mapping

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from lakehouse.settings import Settings
from lakehouse.tables import Table


def ensure_table(spark: SparkSession, table: Table, settings: Settings) -> None:
    """Create an empty table from its declared schema if it does not exist yet."""
    (
        DeltaTable.createIfNotExists(spark)
        .location(table.path(settings))
        .addColumns(spark.createDataFrame([], table.schema).schema)
        .partitionedBy(*table.partition_by)
        .execute()
    )


def read(spark: SparkSession, table: Table, settings: Settings) -> DataFrame:
    return spark.read.format("delta").load(table.path(settings))


def exists(spark: SparkSession, table: Table, settings: Settings) -> bool:
    return DeltaTable.isDeltaTable(spark, table.path(settings))


def append_once(df: DataFrame, table: Table, settings: Settings, app_id: str, version: int) -> None:
    """Append ``df`` unless this (app_id, version) was already committed to the table — Delta's
    idempotent writes (txnAppId/txnVersion), so a replayed micro-batch appends nothing. A column
    the table does not have yet (an optional event field added later) is added to its schema."""
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
    )
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    writer.save(table.path(settings))


MERGE_ATTEMPTS = 3


def upsert(
    spark: SparkSession,
    df: DataFrame,
    table: Table,
    settings: Settings,
    only_if: str = "",
    matched: Mapping[str, str] | None = None,
) -> None:
    """MERGE ``df`` into the table on its keys (insert new keys, replace existing rows, or only
    those where ``only_if`` holds; ``matched`` overrides columns of a replaced row with SQL
    expressions over the old row ``t`` and the new ``s``); creates the table on first use.
    Re-running with the same rows leaves the table as it was, so a MERGE that lost a race with
    a concurrent commit (an OPTIMIZE of ``./run.sh maintain`` replacing files it read) is
    simply run again."""
    for attempt in range(1, MERGE_ATTEMPTS + 1):
        try:
            return _upsert(spark, df, table, settings, only_if, matched or {})
        except PySparkException as exc:
            if attempt == MERGE_ATTEMPTS or not (exc.getCondition() or "").startswith(
                "DELTA_CONCURRENT"
            ):
                raise


def _upsert(
    spark: SparkSession,
    df: DataFrame,
    table: Table,
    settings: Settings,
    only_if: str,
    matched: Mapping[str, str],
) -> None:
    path = table.path(settings)
    if not DeltaTable.isDeltaTable(spark, path):
        writer = df.write.format("delta").mode("append")
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        writer.save(path)
        return
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in table.keys)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(df.alias("s"), condition)
        .whenMatchedUpdate(
            condition=only_if or None, set={c: f"s.`{c}`" for c in df.columns} | dict(matched)
        )
        .whenNotMatchedInsertAll()
        .execute()
    )
