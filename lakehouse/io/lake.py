"""The lakehouse as one object: every registered table bound once to where it lives.

``Lakehouse(settings)`` works out the storage once; ``lake[GOLD_PRICE_LATEST]`` is that table
bound to its location and storage options (a ``LakeTable``), with everything the platform does
to a table without Spark (delta-rs): ``open``, ``version``, ``read``, ``where``, ``commits``,
``added_since``, ``append``, ``merge``, ``optimize``, ``vacuum``, ``tidy_log``. Readers see
committed versions only, so they never block or disturb the streaming writers; the layout of
what they read is settled in one place (``fast_read.plain``). Writes retry a commit that lost
to a concurrent writer and raise the typed errors of ``table_writes``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, QueryBuilder, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lakehouse.catalog.tables import GOLD_ALERT_DELIVERIES, GOLD_SUBSCRIPTION_DELIVERIES, Table
from lakehouse.config.settings import Settings
from lakehouse.config.storage import delta_options, exists, read_text
from lakehouse.io.fast_read import (
    Columns,
    Condition,
    TableMissing,
    added_files,
    file_rows,
    rows_of,
)
from lakehouse.io.table_writes import (
    RETRY,
    SPARK_CHECKPOINT_INTERVAL,
    Merged,
    Retry,
    TableWriteError,
    merge_condition,
    with_retry,
)
from lakehouse.io.version_checksum import write_checksum


@dataclass(frozen=True)
class LakeTable:
    """A registered table bound to its ``location`` (a folder or a URI) and the
    ``storage_options`` delta-rs opens it with; ``settings`` gives the store's own readers."""

    table: Table
    location: str
    storage_options: dict[str, str]
    settings: Settings

    @property
    def name(self) -> str:
        return self.table.qualified_name

    def log(self, version: int | None = None) -> str:
        """The ``_delta_log`` folder, or the commit file of ``version`` in it."""
        return self.table.log(self.settings, version)

    # ---- reads ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the table has been written (its log folder alone is looked at)."""
        return exists(self.settings, self.log())

    def has_commit(self, version: int) -> bool:
        """Whether commit ``version`` is in the log (its commit file alone is looked at)."""
        return exists(self.settings, self.log(version))

    def open(self, as_of: int | datetime | None = None, metadata_only: bool = False) -> DeltaTable:
        """The Delta table at its newest version, or ``as_of`` a version number or a time;
        ``metadata_only``: without its list of files (for its schema or version alone).

        Raises ``TableMissing`` when nothing has been written there yet."""
        try:
            delta = DeltaTable(
                self.location,
                version=as_of if isinstance(as_of, int) else None,
                storage_options=self.storage_options,
                without_files=metadata_only,
            )
        except TableNotFoundError:
            raise TableMissing(f"{self.name} does not exist yet ({self.location})") from None
        if isinstance(as_of, datetime):
            delta.load_as_version(as_of)
        return delta

    def version(self) -> int | None:
        """The newest committed version, or None when the table does not exist yet."""
        try:
            return self.open().version()
        except TableMissing:
            return None

    def read(self, columns: Columns = None, where: Sequence[Condition] = ()) -> pa.Table:
        """The rows of the newest version (only ``columns`` when given) where every condition
        of ``where`` holds, in the layout of ``fast_read.plain``. Raises ``TableMissing`` when
        nothing has been written there yet."""
        return rows_of(self.open(), columns, where)

    def where(self, condition: str, limit: int | None = None) -> pa.Table:
        """The rows of the newest version where ``condition`` — SQL over ``t`` (``t.date
        BETWEEN DATE '…' AND DATE '…'``) — holds (at most ``limit`` of them), in the table's own
        Arrow types; delta-rs reads only the files whose statistics or partitions may hold one."""
        delta = self.open()
        query = f"SELECT * FROM t WHERE {condition}" + ("" if limit is None else f" LIMIT {limit}")
        found = QueryBuilder().register("t", delta).execute(query)
        return pa.table(found).cast(pa.schema(delta.schema().to_arrow()))

    def commits(self, version: int) -> list[dict[str, Any]] | None:
        """The actions of commit ``version`` (``commitInfo``, ``add``, ``remove``, …), from its
        commit file alone; None while that version is not committed (or once the log's cleanup
        removed it)."""
        commit = read_text(self.settings, self.log(version))
        if commit is None:
            return None
        return [json.loads(line) for line in commit.splitlines() if line]

    def committed_files(self, version: int) -> list[dict[str, Any]] | None:
        """The data files commit ``version`` added (``fast_read.changes_data``); None while
        that version is not committed."""
        actions = self.commits(version)
        return None if actions is None else added_files(actions)

    def files_rows(
        self, files: list[dict[str, Any]], columns: Columns = None, dictionary: Columns = None
    ) -> pa.Table:
        """The rows of some of the table's data files (``add`` actions), in one table: only
        ``columns`` when given, ``dictionary`` of them dictionary-encoded (as
        ``pyarrow.parquet.ParquetFile`` reads them)."""
        if not files:
            return pa.table({})
        parts = [file_rows(self.settings, self.location, add, columns, dictionary) for add in files]
        return pa.concat_tables(parts, promote_options="default")

    def table_rows(self, files: list[dict[str, Any]]) -> pa.Table:
        """The rows of some of the table's data files (``files_rows``) in the table's own
        schema: its columns in its order and Arrow types, a column no file holds as nulls (so
        every column may be null: older files lack a column added since)."""
        stored = pa.schema(self.open(metadata_only=True).schema().to_arrow())
        schema = pa.schema([f.with_nullable(True) for f in stored])
        rows = self.files_rows(files)
        return pa.Table.from_arrays(
            [
                rows.column(f.name).cast(f.type)
                if f.name in rows.column_names
                else pa.nulls(rows.num_rows, f.type)
                for f in schema
            ],
            schema=schema,
        )

    def added_since(
        self, version: int, columns: Columns = None, dictionary: Columns = None
    ) -> tuple[int, pa.Table]:
        """The rows that the commits after ``version`` added (``committed_files``, read as
        ``files_rows`` reads them), and the newest version read. Commit files are read
        directly (one small JSON each), so the cost is that of the new data, whatever the size
        of the table. A MERGE adds the files it rewrote whole: a reader keeps the newest row
        per key."""
        files: list[dict[str, Any]] = []
        current = version
        while (added := self.committed_files(current + 1)) is not None:
            files += added
            current += 1
        return current, self.files_rows(files, columns, dictionary)

    # ---- writes ------------------------------------------------------------------------------
    def open_for_write(self) -> DeltaTable | None:
        """The table at its newest version, or None when it does not exist yet."""
        try:
            return self.open()
        except TableMissing:
            return None

    def _existing(self) -> DeltaTable:
        delta = self.open_for_write()
        if delta is None:
            raise TableWriteError(f"{self.name} does not exist ({self.location})")
        return delta

    def _committed(self, delta: DeltaTable) -> None:
        """What follows a commit of ours, as it follows Spark's: the version's checksum
        (``version_checksum``) and, at every ``delta.checkpointInterval``-th version, a
        checkpoint (delta-rs's own default is every 100th)."""
        write_checksum(self.table, self.settings, delta.version())
        interval = delta.metadata().configuration.get("delta.checkpointInterval")
        if delta.version() % int(interval or SPARK_CHECKPOINT_INTERVAL) == 0:
            delta.create_checkpoint()

    def append(
        self,
        rows: pa.Table,
        txn: tuple[str, int] | None = None,
        retry: Retry = RETRY,
        *,
        user_metadata: str | None = None,
        merge_schema: bool = False,
    ) -> bool:
        """Append ``rows`` (creating the table on first use); False when ``txn`` was already
        committed, so nothing was appended. ``user_metadata`` is recorded in the commit
        (Delta's ``commitInfo.userMetadata``, as Spark's writer option of that name does);
        ``merge_schema`` adds the columns of ``rows`` the table has not got yet. Writes a
        checkpoint every ``delta.checkpointInterval`` commits, as ``merge`` does."""

        def attempt(_: int) -> bool:
            delta = self.open_for_write()
            transactions = []
            if txn is not None:
                app_id, version = txn
                done = delta.transaction_version(app_id) if delta is not None else None
                if done is not None and done >= version:
                    return False
                transactions = [Transaction(app_id, version)]
            metadata = {"userMetadata": user_metadata} if user_metadata is not None else None
            write_deltalake(
                delta if delta is not None else self.location,
                rows,
                mode="append",
                partition_by=list(self.table.partition_by) or None,
                schema_mode="merge" if merge_schema else None,
                storage_options=None if delta is not None else self.storage_options,
                commit_properties=CommitProperties(
                    app_transactions=transactions or None, custom_metadata=metadata
                ),
            )
            if delta is not None:
                delta.update_incremental()
                self._committed(delta)
            return True

        return with_retry(self.table, retry, attempt)

    def _created(self, schema: pa.Schema) -> DeltaTable:
        """The table created empty (or as a concurrent first writer created it). A MERGE's
        first rows are never the creating commit: delta-rs retries a create that lost version 0
        as a blind append on top of the winner's commits, which would add keys another writer
        had merged in meanwhile a second time; an empty create that lands twice adds nothing."""
        try:
            DeltaTable.create(
                self.location,
                schema,
                mode="ignore",
                partition_by=list(self.table.partition_by) or None,
                storage_options=self.storage_options,
            )
        except DeltaError as exc:
            if "already exists" not in str(exc):  # delta-rs has no type of its own for it
                raise
        return self._existing()

    def merge(
        self,
        rows: pa.Table,
        replace_when: str | None = None,
        retry: Retry = RETRY,
        *,
        combined: Mapping[str, str] | None = None,
        columns: Sequence[str] | None = None,
        within: str = "",
        insert_when: str | None = None,
        merge_schema: bool = False,
    ) -> Merged:
        """Upsert ``rows`` on the table's keys (a null key matches a null key): new keys are
        inserted (only where ``insert_when``, a predicate over ``s.``, holds, when given); an
        existing row is replaced only where ``replace_when`` (a predicate over ``s.`` source
        and ``t.`` target columns) holds — never if it is None. A replaced row takes the
        source's values of ``columns`` (default: all), except where ``combined`` gives an
        expression over ``s`` and ``t`` for a column (``greatest(s.high, t.high)``).
        ``within``, a condition on ``t`` with literals only that every row of ``rows`` meets,
        lets delta-rs skip the files of the other rows. Creates the table on first use; writes
        a checkpoint every ``delta.checkpointInterval`` commits (Spark's default 10), so that
        Spark's readers of the table replay few commit files. ``merge_schema`` adds the columns
        of ``rows`` the table has not got yet (its earlier rows read them as null).

        Expressions are SQL text, in the subset Spark SQL and DataFusion (delta-rs) read alike:
        plain column names, ``CASE``, ``least``/``greatest``, ``IS [NOT] DISTINCT FROM`` in
        parentheses (DataFusion's parser binds it looser than ``AND``), ``DATE '…'`` and
        ``TIMESTAMP '…'`` literals."""
        if not self.table.keys:
            raise TableWriteError(f"{self.name} declares no keys to merge on")
        predicate = merge_condition(self.table, within)
        updates = {c: f"s.{c}" for c in columns or rows.column_names} | dict(combined or {})

        def attempt(n: int) -> Merged:
            delta = self.open_for_write() or self._created(rows.schema)
            merger = delta.merge(
                rows, predicate, source_alias="s", target_alias="t", merge_schema=merge_schema
            )
            if replace_when:
                merger = merger.when_matched_update(updates, predicate=replace_when)
            stats = merger.when_not_matched_insert_all(predicate=insert_when).execute()
            self._committed(delta)
            return Merged(
                inserted=int(stats.get("num_target_rows_inserted", 0)),
                replaced=int(stats.get("num_target_rows_updated", 0)),
                attempts=n,
            )

        return with_retry(self.table, retry, attempt)

    def optimize(self, zorder_by: Sequence[str], retry: Retry = RETRY) -> None:
        """OPTIMIZE: small files compacted, Z-ordered by ``zorder_by`` when it names columns.
        The commit changes no data (``dataChange = false``): streams skip it and blind appends
        never conflict with it; one that lost to a concurrent commit (a MERGE that replaced a
        file this one read) is run again on a fresh snapshot."""

        def attempt(_: int) -> None:
            delta = self._existing()
            delta.optimize.z_order(zorder_by) if zorder_by else delta.optimize.compact()
            self._committed(delta)

        with_retry(self.table, retry, attempt)

    def vacuum(self, retention_hours: float, retry: Retry = RETRY) -> None:
        """VACUUM: delete the files no version of the last ``retention_hours`` references
        (rounded up to whole hours, delta-rs's unit) — removed ones and, as Spark's VACUUM
        does, files the log never referenced (a failed or lost commit's). The table's own
        ``delta.deletedFileRetentionDuration`` is not enforced: the caller checks the retention
        against ``analyst.min_retention_hours``."""
        hours = math.ceil(retention_hours)

        def attempt(_: int) -> None:
            delta = self._existing()
            delta.vacuum(hours, dry_run=False, enforce_retention_duration=False, full=True)

        with_retry(self.table, retry, attempt)

    def tidy_log(self) -> None:
        """A checkpoint of the newest version, then the log entries older than the table's
        ``delta.logRetentionDuration`` (30 days by default) and behind a checkpoint removed —
        what Delta does on its own every few commits, for an idle table too."""
        delta = self._existing()
        try:
            delta.create_checkpoint()
            delta.cleanup_metadata()
        except DeltaError as exc:
            raise TableWriteError(f"{self.name}: {exc}") from exc


class Lakehouse:
    """Every registered table of the lakehouse of ``settings``, bound once: ``lake[T]`` is
    ``T`` at its location with the store's options (a ``LakeTable``, built at its first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._options = delta_options(settings)
        self._tables: dict[Table, LakeTable] = {}

    def __getitem__(self, table: Table) -> LakeTable:
        bound = self._tables.get(table)
        if bound is None:
            bound = LakeTable(table, table.path(self.settings), self._options, self.settings)
            self._tables[table] = bound
        return bound


def delivery_counts(lake: Lakehouse) -> dict[str, int]:
    """Finished deliveries per outcome (``delivered``, ``undelivered``) — the broadcast
    channels' and the subscribers' — for metrics."""
    delivered = undelivered = 0
    for table in (GOLD_ALERT_DELIVERIES, GOLD_SUBSCRIPTION_DELIVERIES):
        try:
            rows = lake[table].read(["delivered"])
        except TableMissing:
            continue
        done = sum(1 for d in rows.column("delivered").to_pylist() if d)
        delivered, undelivered = delivered + done, undelivered + rows.num_rows - done
    return {"delivered": delivered, "undelivered": undelivered}
