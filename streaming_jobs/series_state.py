"""The bounded history of each series — pure DataFrame → DataFrame functions.

The statistical rules compare an event with the newest points of its series (a market ×
commodity's prices, a device × metric's readings). Those points live in a small state table, one
row per series (``silver.price_state``, ``silver.sensor_state``), so a micro-batch reads the
series it touches and never the history of the lakehouse: its cost does not grow with it.

A row keeps, next to ``points``, the points it had before the batch that last changed it
(``previous``, with that batch's id). A batch replayed after a crash may find its own update
already committed; it then compares with ``previous`` and reaches the verdicts of the first
attempt — exactly once, like the rest of silver.
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

POINTS = "array<struct<observed_at:timestamp,event_id:string,value:double>>"


def history(state: DataFrame, batch_id: int, keys: tuple[str, ...], value: str) -> DataFrame:
    """One row per stored point (``keys``, the state's other descriptive columns,
    ``observed_at``, ``event_id`` and the point's value as ``value``) as it was before batch
    ``batch_id``."""
    before = F.when(F.col("silver_batch_id") >= batch_id, F.col("previous")).otherwise(
        F.col("points")
    )
    carried = [
        c for c in state.columns if c not in (*keys, "points", "previous", "silver_batch_id")
    ]
    return state.select(*keys, *carried, F.explode(before).alias("p")).select(
        *keys,
        *carried,
        "p.observed_at",
        "p.event_id",
        F.col("p.value").alias(value),
    )


def advanced(
    earlier: DataFrame,
    new: DataFrame,
    keys: tuple[str, ...],
    carried: tuple[str, ...],
    value: str,
    max_points: int,
    horizon: timedelta,
    batch_id: int,
) -> DataFrame:
    """The state rows of the series ``new`` touches, after it: per series the newest
    ``max_points`` of its ``earlier`` points (rows of :func:`history`) and ``new``, none more than
    ``horizon`` older than the newest. ``carried`` columns take their newest value."""
    cols = [*keys, *carried, "observed_at", "event_id", value]
    touched = new.select(*keys).distinct()
    pool = (
        earlier.join(touched, list(keys), "left_semi").select(*cols).unionByName(new.select(*cols))
    )
    point = F.struct("observed_at", "event_id", F.col(value).cast("double").alias("value"))
    newest_first = F.sort_array(F.collect_list(point), asc=False)
    grouped = pool.groupBy(*keys).agg(
        *[F.max_by(c, "observed_at").alias(c) for c in carried], newest_first.alias("_points")
    )
    newest: Column = F.col("_points")[0]["observed_at"]
    recent = F.filter("_points", lambda p: p["observed_at"] >= newest - F.expr(_interval(horizon)))
    return grouped.select(
        *keys,
        *carried,
        F.reverse(F.slice(recent, 1, max_points)).alias("points"),
        F.array().cast(POINTS).alias("previous"),
        F.lit(batch_id).cast("bigint").alias("silver_batch_id"),
    )


def _interval(span: timedelta) -> str:
    return f"INTERVAL {int(span.total_seconds())} SECONDS"


def uncovered(
    candidates: DataFrame,
    earlier: DataFrame,
    keys: tuple[str, ...],
    max_points: int,
    horizon: timedelta,
) -> DataFrame:
    """The ``candidates`` whose ``horizon`` of history the state does not hold: older than what
    their series keeps (a backfill behind the series' newest points). The state holds every
    point from its ``horizon`` before the newest, or — when it is full (``max_points``) — from
    its oldest point on; a series the state does not know has no history at all."""
    coverage = earlier.groupBy(*keys).agg(
        F.max("observed_at").alias("_newest"),
        F.min("observed_at").alias("_oldest"),
        F.count("*").alias("_points"),
    )
    start = F.when(F.col("_points") >= max_points, F.col("_oldest")).otherwise(
        F.col("_newest") - F.expr(_interval(horizon))
    )
    return (
        candidates.join(coverage, list(keys))
        .where(F.col("observed_at") - F.expr(_interval(horizon)) < start)
        .drop("_newest", "_oldest", "_points")
    )
