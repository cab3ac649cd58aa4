"""The shape every rule's evaluation takes: one signal row per evaluation point and key,
with its severity, value and what it was compared with."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SEVERITIES = ("warning", "critical")  # in rising order


#: a signal's columns: what and when (the first four), then what an alert keeps of its last point
SIGNAL_COLUMNS = (
    "rule",
    "alert_key",
    "at",
    "severity",
    "value",
    "reference",
    "market_id",
    "region",
    "commodity",
    "metric",
    "details",
    "fields",
)


def level(x: Column, warning: float | Column, critical: float | Column) -> Column:
    """The severity of a point whose measure is ``x`` (null: calm)."""
    return F.when(x >= critical, "critical").when(x >= warning, "warning")


def day_start(date: Column, tz: str) -> Column:
    """The start of a local day as a UTC timestamp (the evaluation time of daily points)."""
    return F.to_utc_timestamp(date.cast("timestamp"), tz)


def key_column(*columns: str) -> Column:
    """A rule's key (``alert_key``) from its columns: ``IP-001|beras``."""
    return F.concat_ws("|", *[F.coalesce(F.col(c), F.lit("")) for c in columns])


def signal_fields(**values: Column) -> Column:
    """The message placeholders of a signal, as a map of text."""
    return F.create_map(*[x for k, v in values.items() for x in (F.lit(k), v.cast("string"))])


def signal_rows(df: DataFrame, **columns: Column) -> DataFrame:
    """Select the signal columns (missing descriptive ones are null)."""
    selected = []
    for name in SIGNAL_COLUMNS:
        if name in columns:
            selected.append(columns[name].alias(name))
        elif name in ("market_id", "region", "commodity", "metric"):
            column = F.col(name) if name in df.columns else F.lit(None).cast("string")
            selected.append(column.alias(name))
        else:
            raise ValueError(f"signal column {name} missing")
    return df.select(*selected)
