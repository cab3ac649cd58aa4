"""The read side without Spark: Delta tables opened with delta-rs, for the API, the DuckDB query
engine and the ML jobs. Readers see committed versions only, so they never block or disturb the
streaming writers."""

from __future__ import annotations

from datetime import datetime

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lakehouse.settings import Settings
from lakehouse.tables import Table


class TableMissing(LookupError):
    """The table has not been written yet (the pipeline has not produced it)."""


def open_table(table: Table, settings: Settings, as_of: int | datetime | None = None) -> DeltaTable:
    """The Delta table at its newest version, or ``as_of`` a version number or a time.

    Raises ``TableMissing`` when nothing has been written there yet."""
    path = str(table.path(settings))
    try:
        delta = DeltaTable(path, version=as_of if isinstance(as_of, int) else None)
    except TableNotFoundError:
        raise TableMissing(f"{table.qualified_name} does not exist yet ({path})") from None
    if isinstance(as_of, datetime):
        delta.load_as_version(as_of)
    return delta


def table_version(table: Table, settings: Settings) -> int | None:
    """The newest committed version, or None when the table does not exist yet."""
    try:
        return open_table(table, settings).version()
    except TableMissing:
        return None
