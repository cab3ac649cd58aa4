"""Delta writes without Spark (delta-rs): the one way the API, ML, notifier and ledger write a
registry table, and how the pipeline's appends and MERGEs commit (``delta_io.append_once`` and
``delta_io.upsert`` hand them the micro-batch's rows; a table's first write is Spark's).

- ``append``: adds rows; with ``txn=(app_id, version)`` it is idempotent — a version the table
  already records for that application appends nothing (Delta's app transactions). The
  pipeline marks its appends with ``user_metadata`` instead (``delta_io.BatchLedger``).
- ``merge``: upsert on the table's keys, creating the table on first use.
- ``optimize``, ``vacuum``, ``tidy_log``: table upkeep (``./run.sh maintain``).

The writes retry a commit that lost to a concurrent writer (``CommitFailedError``) on a fresh
snapshot, with exponential backoff, and raise typed errors: ``WriteConflict`` when every attempt
lost, ``TableWriteError`` for anything else delta-rs refused (schema mismatch, store unreachable).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import Settings
from lakehouse.config.storage import delta_options
from lakehouse.io.version_checksum import write_checksum

log = logging.getLogger(__name__)
T = TypeVar("T")
#: commits between two checkpoints of a table that does not set ``delta.checkpointInterval``
SPARK_CHECKPOINT_INTERVAL = 10


class TableWriteError(RuntimeError):
    """delta-rs refused a write; the message names the table and why."""


class WriteConflict(TableWriteError):
    """Every attempt to commit lost to a concurrent writer of the same table."""


@dataclass(frozen=True)
class Retry:
    """How often and how patiently a conflicting commit is tried again."""

    attempts: int = 8
    backoff_seconds: float = 0.05
    backoff_max_seconds: float = 2.0

    def pause(self, attempt: int) -> float:
        """The exponential back-off's step ``attempt``, its upper half drawn at random: writers
        that lost the same commit wait apart, where equal pauses had them try again in step and
        lose to each other again (four MERGEs at once lost 6 times in a row on a busy box)."""
        step = min(self.backoff_seconds * 2**attempt, self.backoff_max_seconds)
        return step / 2 + random.uniform(0, step / 2)


@dataclass(frozen=True)
class Merged:
    inserted: int
    replaced: int
    attempts: int  # commits tried (1: no conflict)


def open_for_write(table: Table, settings: Settings) -> DeltaTable | None:
    """The table at its newest version, or None when it does not exist yet."""
    try:
        return DeltaTable(table.path(settings), storage_options=delta_options(settings))
    except TableNotFoundError:
        return None


def _with_retry(table: Table, retry: Retry, attempt: Callable[[int], T]) -> T:
    for n in range(retry.attempts):
        try:
            return attempt(n + 1)
        except CommitFailedError as exc:
            if n + 1 == retry.attempts:
                raise WriteConflict(
                    f"{table.qualified_name}: commit lost to concurrent writers "
                    f"{retry.attempts} times ({exc})"
                ) from exc
            pause = retry.pause(n)
            log.info(
                "commit conflict, retrying",
                extra={"table": table.qualified_name, "attempt": n + 1, "pause_s": pause},
            )
            time.sleep(pause)
        except DeltaError as exc:
            raise TableWriteError(f"{table.qualified_name}: {exc}") from exc
    raise AssertionError("unreachable: Retry.attempts >= 1")


def append(
    table: Table,
    settings: Settings,
    rows: pa.Table,
    txn: tuple[str, int] | None = None,
    retry: Retry = Retry(),
    *,
    user_metadata: str | None = None,
    merge_schema: bool = False,
) -> bool:
    """Append ``rows`` (creating the table on first use); False when ``txn`` was already
    committed, so nothing was appended. ``user_metadata`` is recorded in the commit (Delta's
    ``commitInfo.userMetadata``, as Spark's writer option of that name does); ``merge_schema``
    adds the columns of ``rows`` the table has not got yet. Writes a checkpoint every
    ``delta.checkpointInterval`` commits, as ``merge`` does."""

    def attempt(_: int) -> bool:
        delta = open_for_write(table, settings)
        transactions = []
        if txn is not None:
            app_id, version = txn
            done = delta.transaction_version(app_id) if delta is not None else None
            if done is not None and done >= version:
                return False
            transactions = [Transaction(app_id, version)]
        metadata = {"userMetadata": user_metadata} if user_metadata is not None else None
        write_deltalake(
            delta if delta is not None else table.path(settings),
            rows,
            mode="append",
            partition_by=list(table.partition_by) or None,
            schema_mode="merge" if merge_schema else None,
            storage_options=None if delta is not None else delta_options(settings),
            commit_properties=CommitProperties(
                app_transactions=transactions or None, custom_metadata=metadata
            ),
        )
        if delta is not None:
            delta.update_incremental()
            _committed(table, settings, delta)
        return True

    return _with_retry(table, retry, attempt)


def _created(table: Table, settings: Settings, schema: pa.Schema) -> DeltaTable:
    """The table created empty (or as a concurrent first writer created it). A MERGE's first
    rows are never the creating commit: delta-rs retries a create that lost version 0 as a blind
    append on top of the winner's commits, which would add keys another writer had merged in
    meanwhile a second time; an empty create that lands twice adds nothing."""
    try:
        DeltaTable.create(
            table.path(settings),
            schema,
            mode="ignore",
            partition_by=list(table.partition_by) or None,
            storage_options=delta_options(settings),
        )
    except DeltaError as exc:
        if "already exists" not in str(exc):  # delta-rs has no type of its own for it
            raise
    return _existing(table, settings)


def _merge_condition(table: Table, within: str = "") -> str:
    """A MERGE's condition: the table's keys equal (a null key matches a null key), and
    ``within``."""
    keys = [f"(t.{k} IS NOT DISTINCT FROM s.{k})" for k in table.keys]
    return " AND ".join([*keys, *([within] if within else [])])


def _committed(table: Table, settings: Settings, delta: DeltaTable) -> None:
    """What follows a commit of ours, as it follows Spark's: the version's checksum
    (``version_checksum``) and, at every ``delta.checkpointInterval``-th version, a checkpoint
    (delta-rs's own default is every 100th)."""
    write_checksum(table, settings, delta.version())
    interval = delta.metadata().configuration.get("delta.checkpointInterval")
    if delta.version() % int(interval or SPARK_CHECKPOINT_INTERVAL) == 0:
        delta.create_checkpoint()


def merge(
    table: Table,
    settings: Settings,
    rows: pa.Table,
    replace_when: str | None = None,
    retry: Retry = Retry(),
    *,
    combined: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    within: str = "",
    insert_when: str | None = None,
    merge_schema: bool = False,
) -> Merged:
    """Upsert ``rows`` on the table's keys (a null key matches a null key): new keys are
    inserted (only where ``insert_when``, a predicate over ``s.``, holds, when given); an
    existing row is replaced only where ``replace_when`` (a predicate over ``s.``
    source and ``t.`` target columns) holds — never if it is None. A replaced row takes the
    source's values of ``columns`` (default: all), except where ``combined`` gives an expression
    over ``s`` and ``t`` for a column (``greatest(s.high, t.high)``). ``within``, a condition on
    ``t`` with literals only that every row of ``rows`` meets, lets delta-rs skip the files of
    the other rows. Creates the table on first use; writes a checkpoint every
    ``delta.checkpointInterval`` commits (Spark's default 10), so that Spark's readers of the
    table replay few commit files. ``merge_schema`` adds the columns of ``rows`` the table has
    not got yet (its earlier rows read them as null).

    Expressions are SQL text, in the subset Spark SQL and DataFusion (delta-rs) read alike:
    plain column names, ``CASE``, ``least``/``greatest``, ``IS [NOT] DISTINCT FROM`` in
    parentheses (DataFusion's parser binds it looser than ``AND``), ``DATE '…'`` and
    ``TIMESTAMP '…'`` literals."""
    if not table.keys:
        raise TableWriteError(f"{table.qualified_name} declares no keys to merge on")
    predicate = _merge_condition(table, within)
    updates = {c: f"s.{c}" for c in columns or rows.column_names} | dict(combined or {})

    def attempt(n: int) -> Merged:
        delta = open_for_write(table, settings) or _created(table, settings, rows.schema)
        merger = delta.merge(
            rows, predicate, source_alias="s", target_alias="t", merge_schema=merge_schema
        )
        if replace_when:
            merger = merger.when_matched_update(updates, predicate=replace_when)
        stats = merger.when_not_matched_insert_all(predicate=insert_when).execute()
        _committed(table, settings, delta)
        return Merged(
            inserted=int(stats.get("num_target_rows_inserted", 0)),
            replaced=int(stats.get("num_target_rows_updated", 0)),
            attempts=n,
        )

    return _with_retry(table, retry, attempt)


def _existing(table: Table, settings: Settings) -> DeltaTable:
    delta = open_for_write(table, settings)
    if delta is None:
        raise TableWriteError(f"{table.qualified_name} does not exist ({table.path(settings)})")
    return delta


def optimize(
    table: Table, settings: Settings, zorder_by: Sequence[str], retry: Retry = Retry()
) -> None:
    """OPTIMIZE: small files compacted, Z-ordered by ``zorder_by`` when it names columns. The
    commit changes no data (``dataChange = false``): streams skip it and blind appends never
    conflict with it; one that lost to a concurrent commit (a MERGE that replaced a file this
    one read) is run again on a fresh snapshot."""

    def attempt(_: int) -> None:
        delta = _existing(table, settings)
        delta.optimize.z_order(zorder_by) if zorder_by else delta.optimize.compact()
        _committed(table, settings, delta)

    _with_retry(table, retry, attempt)


def vacuum(
    table: Table, settings: Settings, retention_hours: float, retry: Retry = Retry()
) -> None:
    """VACUUM: delete the files no version of the last ``retention_hours`` references (rounded
    up to whole hours, delta-rs's unit) — removed ones and, as Spark's VACUUM does, files the
    log never referenced (a failed or lost commit's). The table's own
    ``delta.deletedFileRetentionDuration`` is not enforced: the caller checks the retention
    against ``analyst.min_retention_hours``."""
    hours = math.ceil(retention_hours)

    def attempt(_: int) -> None:
        delta = _existing(table, settings)
        delta.vacuum(hours, dry_run=False, enforce_retention_duration=False, full=True)

    _with_retry(table, retry, attempt)


def tidy_log(table: Table, settings: Settings) -> None:
    """A checkpoint of the newest version, then the log entries older than the table's
    ``delta.logRetentionDuration`` (30 days by default) and behind a checkpoint removed — what
    Delta does on its own every few commits, for an idle table too."""
    delta = _existing(table, settings)
    try:
        delta.create_checkpoint()
        delta.cleanup_metadata()
    except DeltaError as exc:
        raise TableWriteError(f"{table.qualified_name}: {exc}") from exc
