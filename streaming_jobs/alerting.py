"""The alert step of the medallion micro-batch: reads what the rules need, MERGEs ``gold.alerts``.

It runs last in a batch, when silver and gold (``gold.data_quality`` included) hold the batch.
For the keys the batch touched it re-evaluates the rules from ``lookback_days`` before the
batch's oldest event (or from the start of a still-live alert of those keys, so an episode is
always seen whole) and MERGEs the resulting alerts on their deterministic id, changing a row
only when something in it changed. A batch replayed after a crash reads the same silver/gold
state and so writes the same alerts: exactly once, like the other gold tables.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.settings import Settings
from lakehouse.tables import (
    GOLD_ALERTS,
    GOLD_ANOMALIES,
    GOLD_DATA_QUALITY,
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_SENSOR_HOURLY,
)
from streaming_jobs.alerts import (
    CHANGED,
    AlertRules,
    alert_rows,
    anomaly_signals,
    episodes,
    forecast_signals,
    price_changes,
    price_move_signals,
    quality_signals,
    region_move_signals,
    sensor_signals,
)
from streaming_jobs.silver import local_date

log = logging.getLogger(__name__)

PRICE_RULES = ("price_spike", "price_drop", "region_move", "forecast_risk", "anomaly_score")


def _pairs(df: DataFrame, *columns: str) -> list[str]:
    """The distinct ``a|b`` keys of ``columns`` in a (small) frame."""
    return [r[0] for r in df.select(F.concat_ws("|", *columns)).distinct().collect()]


class AlertStep:
    """Evaluates the alert rules for what one medallion micro-batch touched."""

    def __init__(self, spark: SparkSession, settings: Settings, rules: AlertRules) -> None:
        self.spark = spark
        self.settings = settings
        self.rules = rules
        self.tz = settings.timezone
        delta_io.ensure_table(spark, GOLD_ALERTS, settings)

    def _read(self, table) -> DataFrame:  # noqa: ANN001 - a lakehouse.tables.Table
        return delta_io.read(self.spark, table, self.settings)

    def _start(
        self, anchor: datetime, lookback_days: float, cooldown_hours: float, prior: Column
    ) -> datetime:
        """Where re-evaluation starts: ``lookback_days`` before ``anchor``, or earlier at the
        opening of an alert matching ``prior`` that is open or was resolved less than the
        cool-down before that — so that its episode is recomputed whole, with the same id."""
        start = anchor - timedelta(days=lookback_days)
        live_since = start - timedelta(hours=cooldown_hours)
        opened = (
            self._read(GOLD_ALERTS)
            .where(prior)
            .where(F.col("resolved_at").isNull() | (F.col("resolved_at") >= F.lit(live_since)))
            .agg(F.min("opened_at"))
            .first()[0]
        )
        return min(start, opened.replace(tzinfo=UTC)) if opened else start

    def _day(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.settings.tz).astimezone(UTC)

    # ---- rule families ----------------------------------------------------------------------
    def _price_signals(self, prices: DataFrame) -> DataFrame | None:
        """Market moves, region moves, forecast risk and anomaly scores of the touched market ×
        commodity series (and their provinces)."""
        touched = prices.select(
            "market_id",
            "commodity",
            "region",
            local_date(F.col("observed_at"), self.tz).alias("date"),
        ).localCheckpoint()
        first_day = touched.agg(F.min("date")).first()[0]
        if first_day is None:
            return None
        rules = self.rules
        series, regions = (
            _pairs(touched, "market_id", "commodity"),
            _pairs(touched, "region", "commodity"),
        )
        lookback = max(
            rules.price_move.lookback_days,
            rules.region_move.lookback_days,
            rules.forecast_risk.lookback_days,
            rules.anomaly_score.lookback_days,
        )
        cooldown = max(rules.cooldown_hours()[r] for r in PRICE_RULES)
        prior = F.col("rule").isin(*PRICE_RULES) & (
            F.concat_ws("|", "market_id", "commodity").isin(series)
            | F.concat_ws("|", "region", "commodity").isin(regions)
        )
        start = self._start(self._day(first_day), lookback, cooldown, prior)
        start_day = start.astimezone(self.settings.tz).date()
        read_from = start_day - timedelta(days=rules.price_move.reference_days)
        daily = (
            self._read(GOLD_PRICE_DAILY)
            .where(F.concat_ws("|", "region", "commodity").isin(regions))
            .where(F.col("date") >= F.lit(read_from))
            .localCheckpoint()
        )
        in_series = F.concat_ws("|", "market_id", "commodity").isin(series)
        changes = price_changes(daily, rules)
        signals = [
            price_move_signals(changes.where(in_series), rules, self.tz),
            region_move_signals(changes, rules, self.tz),
        ]
        if delta_io.exists(self.spark, GOLD_FORECASTS, self.settings):
            forecasts = self._read(GOLD_FORECASTS).where(in_series)
            signals.append(
                forecast_signals(
                    forecasts.where(F.col("origin_date") >= F.lit(start_day)),
                    daily,
                    rules,
                    self.tz,
                )
            )
        if delta_io.exists(self.spark, GOLD_ANOMALIES, self.settings):
            anomalies = self._read(GOLD_ANOMALIES).where(in_series)
            signals.append(
                anomaly_signals(anomalies.where(F.col("date") >= F.lit(start_day)), rules, self.tz)
            )
        return reduce(DataFrame.unionByName, signals).where(F.col("at") >= F.lit(start))

    def _sensor_signals(self, sensors: DataFrame) -> DataFrame | None:
        """Temperature, humidity and crowding of the touched market × metric series."""
        first = sensors.agg(F.min("observed_at")).first()[0]
        if first is None:
            return None
        rules = self.rules.sensors
        keys = _pairs(sensors, "market_id", "metric")
        prior = F.col("rule").isin(*rules.rules) & F.col("alert_key").isin(keys)
        start = self._start(
            first.replace(tzinfo=UTC), rules.lookback_days, rules.cooldown_hours, prior
        )
        hourly = (
            self._read(GOLD_SENSOR_HOURLY)
            .where(F.concat_ws("|", "market_id", "metric").isin(keys))
            .where(F.to_utc_timestamp("hour", self.tz) >= F.lit(start - timedelta(hours=1)))
        )
        return sensor_signals(hourly, self.rules, self.tz).where(F.col("at") >= F.lit(start))

    def _quality_signals(self, batch_id: int) -> DataFrame | None:
        """Quarantine ratio of the sources and devices this batch received records from."""
        quality = self._read(GOLD_DATA_QUALITY)
        batch = quality.where(F.col("batch_id") == batch_id).localCheckpoint()
        batch_time = batch.agg(F.min("batch_time")).first()[0]
        if batch_time is None:
            return None
        rules = self.rules.data_quality
        keys = _pairs(batch, "source", "device_id")
        prior = (F.col("rule") == "data_quality") & F.col("alert_key").isin(keys)
        start = self._start(
            batch_time.replace(tzinfo=UTC), rules.lookback_days, rules.cooldown_hours, prior
        )
        recent = quality.where(F.concat_ws("|", "source", "device_id").isin(keys)).where(
            F.col("batch_time") >= F.lit(start - timedelta(minutes=rules.window_minutes))
        )
        return quality_signals(recent, self.rules).where(F.col("at") >= F.lit(start))

    # ---- the step -----------------------------------------------------------------------------
    def __call__(self, batch_id: int, prices: DataFrame, sensors: DataFrame, now: datetime) -> None:
        found = [
            s
            for s in (
                self._price_signals(prices),
                self._sensor_signals(sensors),
                self._quality_signals(batch_id),
            )
            if s is not None
        ]
        if not found:
            return
        signals = reduce(DataFrame.unionByName, found)
        rows = alert_rows(
            episodes(signals, self.rules.cooldown_hours()), self.rules, F.lit(now)
        ).localCheckpoint()
        delta_io.upsert(self.spark, rows, GOLD_ALERTS, self.settings, only_if=CHANGED)
        log.info("alerts evaluated", extra={"batch_id": batch_id})
