"""Table upkeep, safe while the pipeline runs: OPTIMIZE (Z-ORDER on what analysts filter by),
VACUUM, then a Delta log checkpoint and expired-log cleanup — through delta-rs
(``table_writes``), so that it starts no Spark session.

Why it does not disturb the streams:

- OPTIMIZE commits with ``dataChange = false``: the streams skip such commits, and blind appends
  (bronze, silver) never conflict with it. A gold MERGE that read files OPTIMIZE replaced is
  refused at its commit and run again on a fresh snapshot (``LakeTable.merge``; MERGE is
  idempotent); an OPTIMIZE that lost to such a MERGE is run again likewise.
- VACUUM only deletes files unreferenced for longer than the retention (default 168 h, never
  below ``analyst.min_retention_hours``): readers of any version within that window — time
  travel, a stream that lags or was stopped — still find their files.
- Log cleanup only removes log entries older than the table's ``delta.logRetentionDuration``
  (Delta's default, 30 days) and behind a checkpoint, as Delta does on its own every few
  commits; it is run here so that an idle table is tidied too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tqdm import tqdm

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import ConfigError, Settings
from lakehouse.config.storage import files
from lakehouse.io.lake import Lakehouse, LakeTable

#: columns analysts filter by; each table is Z-ordered on those it has (partition columns aside)
FILTER_COLUMNS = ("commodity", "market_id", "date", "hour")


@dataclass(frozen=True)
class Upkeep:
    """What maintenance did to one table (file counts on disk: data files, then log files)."""

    table: str
    optimized: bool
    zorder_by: tuple[str, ...]
    live_files: tuple[int, int]  # files of the current version, before → after OPTIMIZE
    data_files: tuple[int, int]  # parquet files on disk, before → after VACUUM
    log_files: tuple[int, int]  # _delta_log entries, before → after checkpoint + cleanup
    version: int

    def __str__(self) -> str:
        zorder = f"z-order {', '.join(self.zorder_by)}" if self.zorder_by else "compaction"
        zorder = zorder if self.optimized else "one file per partition: as is"
        return (
            f"{self.table:<24} {zorder:<39} live files {self.live_files[0]}→{self.live_files[1]}"
            f"  on disk {self.data_files[0]}→{self.data_files[1]}"
            f"  log {self.log_files[0]}→{self.log_files[1]}  version {self.version}"
        )


def zorder_columns(table: Table, columns: list[str]) -> tuple[str, ...]:
    """The filter columns of a table with these ``columns`` (Z-ORDER cannot use partitions)."""
    return tuple(c for c in FILTER_COLUMNS if c in columns and c not in table.partition_by)


def check_retention(hours: float, settings: Settings) -> None:
    minimum = settings.analyst.min_retention_hours
    if hours < minimum:
        raise ConfigError(
            f"--retention-hours {hours:g} is below analyst.min_retention_hours ({minimum:g}): "
            "a shorter retention could delete files a lagging stream or time travel still needs"
        )


def _files(table: LakeTable) -> tuple[int, int]:
    """(data files, log files) of a table in its store."""
    found = files(table.settings, table.location)
    logs = sum(1 for f in found if f.startswith("_delta_log/"))
    data = sum(1 for f in found if f.endswith(".parquet") and not f.startswith("_delta_log/"))
    return data, logs


def _most_files_in_a_partition(live_files: list[str]) -> int:
    return max(Counter(uri.rsplit("/", 1)[0] for uri in live_files).values(), default=0)


def maintain_table(bound: LakeTable, retention_hours: float) -> Upkeep:
    """OPTIMIZE (Z-ORDER), VACUUM and log cleanup of one existing table."""
    before = bound.open()
    live_before = before.file_uris()
    data_before, log_before = _files(bound)
    zorder = zorder_columns(bound.table, [field.name for field in before.schema().fields])
    # a partition (or unpartitioned table) of one file has nothing to compact or cluster across
    # files, and Z-ORDER is not incremental: skip rewriting tables where that holds everywhere
    optimized = _most_files_in_a_partition(live_before) > 1
    if optimized:
        bound.optimize(zorder)
    bound.vacuum(retention_hours)
    bound.tidy_log()
    data_after, log_after = _files(bound)
    after = bound.open()
    return Upkeep(
        table=bound.name,
        optimized=optimized,
        zorder_by=zorder,
        live_files=(len(live_before), len(after.file_uris())),
        data_files=(data_before, data_after),
        log_files=(log_before, log_after),
        version=after.version(),
    )


def maintain(tables: list[Table], settings: Settings, retention_hours: float) -> list[Upkeep]:
    """Maintain each of ``tables`` that exists (a progress bar on a terminal)."""
    check_retention(retention_hours, settings)
    lake = Lakehouse(settings)
    existing = [lake[t] for t in tables if lake[t].version() is not None]
    return [
        maintain_table(bound, retention_hours)
        for bound in tqdm(existing, desc="maintain", unit="table", disable=None)
    ]
