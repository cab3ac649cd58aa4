"""The sensor rules' signals (temperature, humidity, crowding, per hour and at once as a
reading's alarm) and the devices' data quality."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import AlertRules, SensorRule
from lakehouse.catalog.events import Metric
from streaming_jobs.alerts.signals import key_column, level, signal_fields, signal_rows
from streaming_jobs.gold import sensor_hourly


def _capacity(rules: AlertRules) -> Column:
    """The capacity of the row's market (``market_id``; ``capacity`` in the rules)."""
    capacities = F.create_map(
        *[x for m, c in rules.capacity.markets.items() for x in (F.lit(m), F.lit(float(c)))]
    )
    return F.coalesce(capacities[F.col("market_id")], F.lit(float(rules.capacity.default)))


def _measure(rule: SensorRule, value: Column, capacity: Column) -> Column:
    """What a sensor rule's levels are compared with: the value, or a share of the capacity."""
    return value / capacity if rule.metric == Metric.crowd_count else value


def _hourly_severity(rule: SensorRule, capacity: Column) -> Column:
    """A sensor rule's severity over a row of hourly statistics (``gold.sensor_hourly``'s)."""
    return level(_measure(rule, F.col(rule.statistic), capacity), rule.warning, rule.critical)


def _hour_start(tz: str) -> Column:
    """The start of a row's local ``hour`` as a UTC timestamp (the hourly rules' points)."""
    return F.to_utc_timestamp(F.col("hour"), tz)


def sensor_alarm(rules: AlertRules) -> Column:
    """Whether a sensor reading (a row's ``market_id``, ``metric``, ``value``) alone reaches a
    sensor rule's warning level. A batch without one has no alarm (``sensor_alarms``): an
    hour's statistic of readings — their mean, least or largest — is at most the largest."""
    capacity = _capacity(rules)
    return reduce(
        Column.__or__,
        [
            (F.col("metric") == rule.metric.value)
            & (_measure(rule, F.col("value"), capacity) >= rule.warning)
            for rule in rules.sensors.rules.values()
        ],
    )


def sensor_alarms(sensors: DataFrame, rules: AlertRules, tz: str) -> DataFrame:
    """The alarms of a silver batch's readings (``silver.sensors`` rows): ``alarm``, ``hour|rule|
    market|metric|severity`` (the hour's start in UTC), where the statistic of a sensor rule over
    the batch's own readings of a market × metric × local hour reaches the rule's level. An
    hour's statistic newly reaches a level only in a batch whose own does (a mean or maximum of
    parts is below a level when each part's is), so a silver batch without an alarm raises no
    new sensor alert (``SilverFirst.silver_written``)."""
    capacity = _capacity(rules)
    hourly = sensor_hourly(sensors, tz, through=-1)
    hour = _hour_start(tz).cast("string")

    def alarm(name: str, rule: SensorRule) -> Column:
        severity = _hourly_severity(rule, capacity)
        reached = (F.col("metric") == rule.metric.value) & severity.isNotNull()
        return F.when(reached, F.concat_ws("|", hour, F.lit(name), "market_id", "metric", severity))

    alarms = F.array(*[alarm(name, rule) for name, rule in rules.sensors.rules.items()])
    return hourly.select(F.explode(alarms).alias("alarm")).where(F.col("alarm").isNotNull())


def sensor_signals(hourly: DataFrame, rules: AlertRules, tz: str) -> DataFrame:
    """Temperature, humidity and crowding per market × local hour (``gold.sensor_hourly``).
    Crowding compares the hour's peak with the market's capacity (``capacity`` in the rules)."""
    capacity = _capacity(rules)

    def signals(name: str, rule: SensorRule) -> DataFrame:
        value = F.col(rule.statistic)
        crowd = rule.metric == Metric.crowd_count
        reference = capacity if crowd else F.lit(rule.warning)
        return signal_rows(
            hourly.where(F.col("metric") == rule.metric.value),
            rule=F.lit(name),
            alert_key=key_column("market_id", "metric"),
            at=_hour_start(tz),
            severity=_hourly_severity(rule, capacity),
            value=value,
            reference=reference,
            details=F.to_json(F.struct("mean", "min", "max", "count", "hour")),
            fields=signal_fields(
                market=F.col("market_id"),
                value=value,
                reference=reference,
            ),
        )

    return reduce(
        DataFrame.unionByName, [signals(name, rule) for name, rule in rules.sensors.rules.items()]
    )


def quality_signals(quality: DataFrame, rules: AlertRules) -> DataFrame:
    """``data_quality`` per source × device × micro-batch: the share of records quarantined over
    the micro-batches of the last ``window_minutes`` (``gold.data_quality``)."""
    r = rules.data_quality
    window = (
        Window.partitionBy("source", "device_id")
        .orderBy(F.unix_seconds("batch_time"))
        .rangeBetween(-int(r.window_minutes * 60) + 1, 0)
    )
    windowed = (
        quality.withColumn("window_received", F.sum("received").over(window))
        .withColumn("window_quarantined", F.sum("quarantined").over(window))
        .where(F.col("window_received") >= r.min_received)
        .withColumn("ratio", F.col("window_quarantined") / F.col("window_received"))
    )
    return signal_rows(
        windowed,
        rule=F.lit("data_quality"),
        alert_key=key_column("source", "device_id"),
        at=F.col("batch_time"),
        severity=level(F.col("ratio"), r.warning, r.critical),
        value=F.col("ratio"),
        reference=F.lit(r.warning),
        metric=F.lit("quarantine_ratio"),
        details=F.to_json(
            F.struct("source", "device_id", "window_received", "window_quarantined", "batch_id")
        ),
        fields=signal_fields(
            source=F.col("source"),
            device=F.col("device_id"),
            value=F.col("ratio"),
            window=F.lit(f"{r.window_minutes:g}"),
        ),
    )
