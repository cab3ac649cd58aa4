"""Delta writes without Spark (delta-rs): what every write of ``lakehouse.io.lake`` shares —
the API, ML, notifier and ledger write a registry table through ``Lakehouse``, and the
pipeline's appends and MERGEs commit through it (``delta_io.SparkTable.append_once``
and ``upsert`` hand them the micro-batch's rows; a table's first write is Spark's).

- ``LakeTable.append``: adds rows; with ``txn=(app_id, version)`` it is idempotent — a version
  the table already records for that application appends nothing (Delta's app transactions).
  The pipeline marks its appends with ``user_metadata`` instead (``delta_io.BatchLedger``).
- ``LakeTable.merge``: upsert on the table's keys (``merge_condition``), creating the table on
  first use.
- ``LakeTable.optimize``, ``vacuum``, ``tidy_log``: table upkeep (``./run.sh maintain``).

The writes retry a commit that lost to a concurrent writer (``CommitFailedError``) on a fresh
snapshot, with exponential backoff (``with_retry``, ``Retry``), and raise typed errors:
``WriteConflict`` when every attempt lost, ``TableWriteError`` for anything else delta-rs
refused (schema mismatch, store unreachable).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from deltalake.exceptions import CommitFailedError, DeltaError

from lakehouse.catalog.tables import Table

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


#: the writes' default: 8 attempts, backing off from 50 ms to 2 s
RETRY = Retry()


@dataclass(frozen=True)
class Merged:
    inserted: int
    replaced: int
    attempts: int  # commits tried (1: no conflict)


def with_retry(table: Table, retry: Retry, attempt: Callable[[int], T]) -> T:
    """``attempt`` (called with its number, from 1) until a commit of it wins; typed errors."""
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


def merge_condition(table: Table, within: str = "") -> str:
    """A MERGE's condition: the table's keys equal (a null key matches a null key), and
    ``within``."""
    keys = [f"(t.{k} IS NOT DISTINCT FROM s.{k})" for k in table.keys]
    return " AND ".join([*keys, *([within] if within else [])])
