"""Signals → alerts: consecutive firing points of a rule × key are one alert (its id from
rule, key and first firing point), the first calm point resolves it, a firing point within the
cool-down re-opens it."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from streaming_jobs.alerts.signals import SEVERITIES, SIGNAL_COLUMNS


def severity_rank(severity: Column) -> Column:
    return F.array_position(F.array(*map(F.lit, SEVERITIES)), severity)


def episodes(signals: DataFrame, cooldown_hours: dict[str, float]) -> DataFrame:
    """The alerts of rule × key: runs of consecutive firing points; a run starting within the
    cool-down after the previous run was resolved continues its episode. Per episode:
    ``opened_at`` (first firing point), ``resolved_at`` (first calm point after the last
    firing one; null: ``status`` open), the highest ``severity``, ``last_firing_at`` and the
    value, reference and description of the last firing point."""
    key = ("rule", "alert_key")
    cooldown = F.create_map(
        *[x for rule, hours in cooldown_hours.items() for x in (F.lit(rule), F.lit(hours * 3600))]
    )
    by_time = Window.partitionBy(*key).orderBy("at")
    firing = F.col("severity").isNotNull()
    changed = firing != F.lag(firing).over(by_time)
    # a rule × key that never fires has no episode: its calm points (every healthy device's
    # quarantine ratio after every batch, at the national count millions) are not windowed
    fired = signals.where(firing).select(*key).distinct()
    runs = (
        signals.join(fired, list(key), "left_semi")
        .withColumn("firing", firing)
        .withColumn("run", F.sum(F.coalesce(changed, F.lit(True)).cast("int")).over(by_time))
        .groupBy(*key, "run")
        .agg(
            F.first("firing").alias("firing"),
            F.min("at").alias("start"),
            F.max("at").alias("last_at"),
            F.max(severity_rank(F.col("severity"))).alias("rank"),
            F.max_by(F.struct(*SIGNAL_COLUMNS[4:]), "at").alias("last"),
        )
    )
    by_run = Window.partitionBy(*key).orderBy("run")
    runs = runs.withColumn("resolved_at", F.lead("start").over(by_run)).where("firing")
    previous_resolved = F.lag("resolved_at").over(by_run)
    new_episode = previous_resolved.isNull() | (
        F.unix_seconds("start") - F.unix_seconds(previous_resolved) > cooldown[F.col("rule")]
    )
    return (
        runs.withColumn("episode", F.sum(new_episode.cast("int")).over(by_run))
        .groupBy(*key, "episode")
        .agg(
            F.min("start").alias("opened_at"),
            F.max_by("resolved_at", "run").alias("resolved_at"),
            F.max("last_at").alias("last_firing_at"),
            F.max("rank").alias("rank"),
            F.max_by("last", "run").alias("last"),
        )
        .select(
            F.substring(
                F.sha2(F.concat_ws("|", "rule", "alert_key", F.unix_micros("opened_at")), 256),
                1,
                32,
            ).alias("alert_id"),
            *key,
            F.element_at(F.array(*map(F.lit, SEVERITIES)), F.col("rank").cast("int")).alias(
                "severity"
            ),
            F.when(F.col("resolved_at").isNull(), "open").otherwise("resolved").alias("status"),
            "opened_at",
            "resolved_at",
            "last_firing_at",
            "last.*",
        )
    )
