"""The lakehouse as a Spark job reads and writes it, every write idempotent: a micro-batch
replayed after a crash writes nothing twice.

``SparkLake(spark, settings)`` binds every registered table once to its location and the
session: ``lake[GOLD_PRICE_DAILY]`` is a ``SparkTable`` — ``read``, ``where``, ``exists``,
``ensure``, ``commits`` (the rows of some commits), ``append_once``, ``upsert`` — over the same
``LakeTable`` (``lakehouse.io.lake``) the delta-rs side uses, which does the small reads and the
commits after a table's first write. A job's computation hands what it writes back as a
``Write`` (a table, the rows, the MERGE's options); ``lake.write`` MERGEs it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from delta.tables import DeltaTable
from deltalake import DeltaTable as LogReader
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing, added_files, changes_data
from lakehouse.io.lake import Lakehouse, LakeTable
from lakehouse.io.spark import arrow_frame

#: the table property that makes Delta keep each commit's rows readable by version
CHANGE_FEED = "delta.enableChangeDataFeed"
#: the columns a change data feed read adds to the table's
_CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
#: the commits ``SparkTable.commits`` reads by delta-rs add at most this many bytes of data files
SMALL_COMMITS_BYTES = 1 << 20
#: a ``SparkTable.where`` of more rows is read by Spark from the table's files: rows handed to
#: Spark from the driver become a local relation, held in the driver's heap by every plan and
#: task that uses it (the national load's gold batches ran a 2 GB driver out of heap that way)
IN_PLAN_ROWS = 50_000


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
        self._newest: dict[tuple[str, str], int | None] = {}  # None: no batch recorded
        self._lock = threading.Lock()

    @staticmethod
    def metadata(app_id: str, batch: int) -> str:
        return json.dumps({"writer": app_id, "batch": batch})

    @staticmethod
    def mark(commit_info: dict[str, Any]) -> tuple[str, int] | None:
        """The writer and batch a commit records (``metadata``), if it records one."""
        try:
            mark = json.loads(commit_info.get("userMetadata") or "{}")
        except ValueError:
            return None
        if isinstance(mark, dict) and "writer" in mark and "batch" in mark:
            return str(mark["writer"]), int(mark["batch"])
        return None

    @staticmethod
    def _recorded(table: LakeTable, app_id: str) -> int | None:
        """The newest batch of ``app_id`` the table records (None: none; a writer's batches
        may be numbered below 0, as the history query's are)."""
        try:
            log = LogReader(table.location, storage_options=table.storage_options)
        except TableNotFoundError:
            return None
        for commit in log.history():  # newest first
            mark = BatchLedger.mark(commit)
            if mark is not None and mark[0] == app_id:
                return mark[1]
        return None

    def written(self, table: LakeTable, app_id: str, batch: int) -> bool:
        key = (table.location, app_id)
        with self._lock:
            if key not in self._newest:
                self._newest[key] = self._recorded(table, app_id)
            newest = self._newest[key]
            return newest is not None and batch <= newest

    def record(self, table: LakeTable, app_id: str, batch: int) -> None:
        with self._lock:
            self._newest[(table.location, app_id)] = batch


LEDGER = BatchLedger()


class BatchCommits:
    """The versions in which the batches of one writer (``BatchLedger.metadata``; every writer
    whose id starts with ``writer``, e.g. ``silver:`` whatever the query id) committed to a
    table, so that a reader takes exactly their rows (``SparkTable.commits``).

    Each commit file is read once: the first question about a table looks back from its newest
    version to the oldest batch asked for, later ones read the commits since. The batches of a
    writer commit in order, so a batch not found among the commits read appended nothing."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}  # table path → the first version not read yet
        #: table path → version → the writer's batch, or None: another writer's rows
        self._commits: dict[str, dict[int, int | None]] = {}
        #: table path → version → the data files the writer's batch added there
        self._added: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self._floor: dict[str, float] = {}  # every commit of a batch from this one on was read

    def span(self, table: LakeTable, batches: Sequence[int]) -> range | None:
        """The versions holding the rows of ``batches`` and nothing else (empty: they appended
        none), or None when that cannot be said: a commit was cleaned from the log, or another
        writer changed the table's rows in between."""
        path = table.location
        with self._lock:
            if path not in self._next:
                self._look_back(table, min(batches))
            self._read_since(table)
            if min(batches) < self._floor[path]:
                return None
            commits = self._commits[path]
            newest = {b: v for v, b in sorted(commits.items()) if b is not None}
            versions = sorted(newest[b] for b in set(batches) if b in newest)
            if not versions:
                return range(0)
            span = range(versions[0], versions[-1] + 1)
            if any(v not in versions for v in commits if v in span):
                return None
            for v in [v for v in commits if v < span.start]:  # read batches move forward
                del commits[v]
                self._added[path].pop(v, None)
            self._floor[path] = max(self._floor[path], min(batches))
            return span

    def added(self, table: LakeTable, versions: range) -> list[dict[str, Any]]:
        """The data files the commits ``versions`` (a ``span``) added, as their commits list
        them (for ``SparkTable.commits``)."""
        with self._lock:
            added = self._added[table.location]
            return [add for v in versions for add in added.get(v, [])]

    def _note(self, path: str, version: int, actions: list[dict[str, Any]]) -> int | None:
        """Remember what commit ``version`` holds; the writer's batch, if it is one."""
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        mark = BatchLedger.mark(info)
        batch = mark[1] if mark is not None and mark[0].startswith(self.writer) else None
        if batch is not None or any(changes_data(a) for a in actions):
            self._commits[path][version] = batch
        if batch is not None:
            self._added[path][version] = added_files(actions)
        return batch

    def _look_back(self, table: LakeTable, oldest: int) -> None:
        path = table.location
        self._commits[path] = {}
        self._added[path] = {}
        try:
            newest = table.open().version()
        except TableMissing:
            newest = -1
        self._next[path] = newest + 1
        self._floor[path] = float("inf")
        for version in range(newest, -1, -1):
            actions = table.commits(version)
            if actions is None:  # cleaned from the log: older batches cannot be told
                return
            batch = self._note(path, version, actions)
            if batch is not None:
                self._floor[path] = batch
                if batch < oldest:
                    return
        self._floor[path] = float("-inf")  # the whole log was read

    def _read_since(self, table: LakeTable) -> None:
        path = table.location
        version = self._next[path]
        while (actions := table.commits(version)) is not None:
            self._note(path, version, actions)
            version += 1
        self._next[path] = version


@dataclass(frozen=True)
class SparkTable:
    """A registered table as a Spark job reads and writes it: ``bound`` (its location and the
    delta-rs side) and the ``spark`` session."""

    spark: SparkSession
    bound: LakeTable

    @property
    def table(self) -> Table:
        return self.bound.table

    def ensure(self) -> None:
        """Create an empty table from its declared schema if it does not exist yet."""
        (
            DeltaTable.createIfNotExists(self.spark)
            .location(self.bound.location)
            .addColumns(self.spark.createDataFrame([], self.table.schema).schema)
            .partitionedBy(*self.table.partition_by)
            .execute()
        )

    def ensure_change_feed(self) -> None:
        """Turn on the change data feed of a ``change_feed`` table written before the registry
        asked for it (a table created since has it from its first write). Its older commits
        stay unreadable by version: ``commits`` raises ``DELTA_MISSING_CHANGE_DATA`` for them."""
        try:
            configuration = self.bound.open().metadata().configuration
        except TableMissing:
            return
        if configuration.get(CHANGE_FEED) != "true":
            at = self.bound.location
            self.spark.sql(f"ALTER TABLE delta.`{at}` SET TBLPROPERTIES ({CHANGE_FEED} = true)")

    def exists(self) -> bool:
        return DeltaTable.isDeltaTable(self.spark, self.bound.location)

    def read(self) -> DataFrame:
        return self.spark.read.format("delta").load(self.bound.location)

    def where(self, condition: str) -> DataFrame:
        """The table's rows where ``condition`` — SQL over ``t`` with literals only, as
        ``LakeTable.where`` takes it — holds. Up to ``IN_PLAN_ROWS`` of them are read by
        delta-rs and handed to Spark as an in-memory DataFrame: for the few rows a gold batch
        reads back from a table that changed since Spark last read it, Spark would first rebuild
        the table's state from its log (1–2 s of jobs on this box), delta-rs reads the log and
        the matching files in milliseconds (docs/benchmarks.md). More are read by Spark's
        executors, skipping the files whose statistics rule ``condition`` out."""
        rows = self.bound.where(condition, limit=IN_PLAN_ROWS + 1)
        if rows.num_rows > IN_PLAN_ROWS:
            return self.spark.sql(
                f"SELECT * FROM delta.`{self.bound.location}` AS t WHERE {condition}"
            )
        return arrow_frame(self.spark, rows)

    def commits(self, versions: range, added: list[dict[str, Any]]) -> DataFrame:
        """The rows the commits ``versions`` added to a ``change_feed`` table — ``added``, the
        data files they added (``BatchCommits`` finds both). Small ones
        (``SMALL_COMMITS_BYTES``: an idle or lightly loaded batch) are read by delta-rs and
        handed to Spark in memory, as ``where`` does: Spark's change data feed would first list
        them in jobs of its own (0.2–0.4 s a gold batch on this box). Larger ones are read from
        Delta's change data feed by Spark's executors: only the files those commits added are
        listed and read, without rebuilding the table's state or evaluating a filter against
        every file."""
        if sum(add.get("size", 0) for add in added) <= SMALL_COMMITS_BYTES:
            return arrow_frame(self.spark, self.bound.table_rows(added))
        return (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", versions.start)
            .option("endingVersion", versions.stop - 1)
            .load(self.bound.location)
            .where(F.col("_change_type") == "insert")
            .drop(*_CHANGE_COLUMNS)
        )

    def append_once(self, df: DataFrame, app_id: str, version: int) -> None:
        """Append ``df`` unless batch ``version`` of writer ``app_id`` was already committed to
        the table (``BatchLedger``), so a replayed micro-batch appends nothing. A column the
        table does not have yet (an optional event field added later) is added to its schema.

        The first append creates the table with Spark (its protocol, partitioning and change
        data feed); later ones collect ``df``'s rows to the driver as Arrow and commit them
        through delta-rs (``LakeTable.append``): an idle silver batch's appends took 0.23 s
        instead of 0.86 s of Spark's write and commit jobs (docs/benchmarks.md)."""
        if LEDGER.written(self.bound, app_id, version):
            return
        mark = BatchLedger.metadata(app_id, version)
        if self.exists():
            self.bound.append(df.toArrow(), user_metadata=mark, merge_schema=True)
        else:
            self._create(df, user_metadata=mark)
        LEDGER.record(self.bound, app_id, version)

    def _create(self, df: DataFrame, user_metadata: str = "") -> None:
        """The table's first write, with Spark: Spark's protocol, the registry's partitioning
        and, for a ``change_feed`` table, Delta's change data feed; ``user_metadata`` in its
        commit."""
        writer = df.write.format("delta").mode("append")
        if user_metadata:
            writer = writer.option("userMetadata", user_metadata)
        if self.table.partition_by:
            writer = writer.partitionBy(*self.table.partition_by)
        if self.table.change_feed:
            writer = writer.option(CHANGE_FEED, "true")
        writer.save(self.bound.location)

    def upsert(
        self,
        df: DataFrame,
        only_if: str = "",
        matched: Mapping[str, str | Column] | None = None,
        updated: Sequence[str] | None = None,
        within: str = "",
        insert_when: str | None = None,
    ) -> None:
        """MERGE ``df`` into the table on its keys (insert new keys — where ``insert_when``, a
        predicate over the new row ``s``, holds, when given —, replace existing rows — only
        their ``updated`` columns when given — or only those where ``only_if`` holds;
        ``matched`` overrides columns of a replaced row with expressions over the old row ``t``
        and the new ``s``). ``within``, a condition on ``t`` with literals only (``t.date
        BETWEEN …``) that every row ``df`` matches meets, lets Delta skip the files of the other
        rows. The first write creates the table with Spark (its protocol, partitioning and
        layout).

        The MERGE runs in delta-rs (``LakeTable.merge``) on ``df``'s rows collected to the
        driver as Arrow: a micro-batch's few gold rows MERGE there in ~20 ms against ~1 s of
        Spark jobs here (docs/benchmarks.md). ``matched`` given as SQL text is evaluated there
        (the subset both engines read, ``LakeTable.merge``); a Spark ``Column`` among them (a
        lambda over maps, which DataFusion lacks) makes Spark combine the rows first, with the
        table's rows read by delta-rs (``_combined_in_spark``). Re-running with the same rows
        leaves the table as it was, so a MERGE that lost a race with a concurrent commit (an
        OPTIMIZE of ``./run.sh maintain`` replacing files it read) is simply run again. (The
        first write takes every row: with ``insert_when``, create the table first,
        ``ensure``.)"""
        matched = matched or {}
        if not self.exists():
            self._create(df)
            return
        if all(isinstance(e, str) for e in matched.values()):
            rows, combined = df, cast(Mapping[str, str], matched)
        else:
            rows, combined = self._combined_in_spark(df, matched, within), {}
        self.bound.merge(
            rows.toArrow(),
            only_if or "true",
            combined=combined,
            columns=updated,
            within=within,
            insert_when=insert_when,
        )

    def _combined_in_spark(
        self, df: DataFrame, matched: Mapping[str, str | Column], within: str
    ) -> DataFrame:
        """``df``'s rows with each ``matched`` column combined with the table's row of the same
        key (``t``: only the rows ``within``, ``where``), where it has one — the values the
        MERGE then writes. For expressions only Spark evaluates (``gold.quality_combined``'s sum
        of two maps); the table's rows do not change meanwhile, as the query that MERGEs is the
        table's only writer (a concurrent OPTIMIZE rewrites files, not rows)."""
        t = self.where(within or "true").withColumn(_FOUND, F.lit(True)).alias("t")
        same_key = [F.col(f"s.{k}").eqNullSafe(F.col(f"t.{k}")) for k in self.table.keys]
        joined = df.alias("s").join(t, same_key, "left")
        found = F.col(f"t.{_FOUND}").isNotNull()
        return joined.select(
            *[
                F.when(found, _column(matched[c])).otherwise(F.col(f"s.{c}")).alias(c)
                if c in matched
                else F.col(f"s.{c}")
                for c in df.columns
            ]
        )


#: marks the table's rows joined to a batch's in ``SparkTable._combined_in_spark``
_FOUND = "_found_in_table"


def _column(expression: str | Column) -> Column:
    return F.expr(expression) if isinstance(expression, str) else expression


@dataclass(frozen=True)
class Write:
    """Rows to write: ``rows`` MERGEd into ``table`` with ``options`` (those of
    ``SparkTable.upsert``: ``only_if``, ``matched``, ``within``, ``insert_when`` …)."""

    table: Table
    rows: DataFrame
    options: Mapping[str, Any] = field(default_factory=dict)


class SparkLake:
    """Every registered table of the lakehouse of ``settings`` as the Spark session ``spark``
    reads and writes it: ``lake[T]`` (a ``SparkTable``); ``lake.delta`` is the same lakehouse
    without Spark."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.delta = Lakehouse(settings)

    def __getitem__(self, table: Table) -> SparkTable:
        return SparkTable(self.spark, self.delta[table])

    def write(self, write: Write) -> None:
        """MERGE what a computation returned to be written (``SparkTable.upsert``)."""
        self[write.table].upsert(write.rows, **write.options)
