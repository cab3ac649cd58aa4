"""Delta writes of the pipeline, all idempotent: a micro-batch replayed after a crash writes
nothing twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence

from delta.tables import DeltaTable
from deltalake import DeltaTable as LogReader
from deltalake.exceptions import TableNotFoundError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import Settings
from lakehouse.config.storage import delta_options


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


class BatchLedger:
    """Which micro-batch of each writer a table holds last — what makes ``append_once``
    idempotent.

    Every append of a writer (``app_id``, e.g. a streaming query) records its batch in the
    commit's ``userMetadata``; a process reads the table's history once, at its first append
    there, and remembers from then on. (Delta's own idempotent writes, ``txnAppId`` /
    ``txnVersion``, cost a full reconstruction of the table's state on every append in Delta
    4.0.0 — three Spark jobs, ~0.3 s a table and batch.) Batches of one writer arrive in order,
    so a batch at or below the newest recorded one is a replay, already written."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def metadata(app_id: str, batch: int) -> str:
        return json.dumps({"writer": app_id, "batch": batch})

    @staticmethod
    def _recorded(table: Table, settings: Settings, app_id: str) -> int:
        try:
            log = LogReader(table.path(settings), storage_options=delta_options(settings))
        except TableNotFoundError:
            return -1
        for commit in log.history():  # newest first
            try:
                mark = json.loads(commit.get("userMetadata") or "{}")
            except ValueError:
                continue
            if isinstance(mark, dict) and mark.get("writer") == app_id:
                return int(mark["batch"])
        return -1

    def written(self, table: Table, settings: Settings, app_id: str, batch: int) -> bool:
        key = (table.path(settings), app_id)
        with self._lock:
            if key not in self._newest:
                self._newest[key] = self._recorded(table, settings, app_id)
            return batch <= self._newest[key]

    def record(self, table: Table, settings: Settings, app_id: str, batch: int) -> None:
        with self._lock:
            self._newest[(table.path(settings), app_id)] = batch


LEDGER = BatchLedger()


def append_once(df: DataFrame, table: Table, settings: Settings, app_id: str, version: int) -> None:
    """Append ``df`` unless batch ``version`` of writer ``app_id`` was already committed to the
    table (``BatchLedger``), so a replayed micro-batch appends nothing. A column the table does
    not have yet (an optional event field added later) is added to its schema."""
    if LEDGER.written(table, settings, app_id, version):
        return
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .option("userMetadata", BatchLedger.metadata(app_id, version))
    )
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    writer.save(table.path(settings))
    LEDGER.record(table, settings, app_id, version)


MERGE_ATTEMPTS = 3


def upsert(
    spark: SparkSession,
    df: DataFrame,
    table: Table,
    settings: Settings,
    only_if: str = "",
    matched: Mapping[str, str | Column] | None = None,
    updated: Sequence[str] | None = None,
    within: str = "",
) -> None:
    """MERGE ``df`` into the table on its keys (insert new keys, replace existing rows — only
    their ``updated`` columns when given — or only those where ``only_if`` holds; ``matched``
    overrides columns of a replaced row with expressions over the old row ``t`` and the new
    ``s``); creates the table on first use. ``within``, a condition on ``t`` with literals only
    (``t.date BETWEEN …``) that every row ``df`` matches meets, lets Delta skip the files of
    the other rows.
    Re-running with the same rows leaves the table as it was, so a MERGE that lost a race with
    a concurrent commit (an OPTIMIZE of ``./run.sh maintain`` replacing files it read) is
    simply run again."""
    for attempt in range(1, MERGE_ATTEMPTS + 1):
        try:
            return _upsert(spark, df, table, settings, only_if, matched or {}, updated, within)
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
    matched: Mapping[str, str | Column],
    updated: Sequence[str] | None,
    within: str,
) -> None:
    path = table.path(settings)
    if not DeltaTable.isDeltaTable(spark, path):
        writer = df.write.format("delta").mode("append")
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        writer.save(path)
        return
    condition = " AND ".join(
        [*(f"t.`{k}` <=> s.`{k}`" for k in table.keys), *([within] if within else [])]
    )
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(df.alias("s"), condition)
        .whenMatchedUpdate(
            condition=only_if or None,
            set={c: f"s.`{c}`" for c in updated or df.columns} | dict(matched),
        )
        .whenNotMatchedInsertAll()
        .execute()
    )
