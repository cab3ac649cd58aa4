"""The alert step of the gold micro-batch: reads what the rules need, computes the rows to
MERGE into ``gold.alerts``.

It runs beside the gold aggregates, in three calls: ``plan`` (what the batch touched, from
``gold.alerts``), ``signals`` of each family of rules once its gold table holds the batch, and
``alerts``. For the keys the batch touched it re-evaluates the rules from ``lookback_days``
before the batch's oldest event (or from the start of a still-live alert of those keys, so an
episode is always seen whole) and returns the resulting alerts as a ``Write`` (``alert_write``:
MERGEd on their deterministic id, changing a row only when something in it changed). A batch
replayed after a crash reads the same silver/gold state and so writes the same alerts: exactly
once, like the other gold tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import AlertRules, rule_ids
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.reference import successor_markets
from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_ANOMALIES,
    GOLD_DATA_QUALITY,
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_SENSOR_HOURLY,
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    Table,
)
from lakehouse.config.logs import Laps
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import SparkLake, Write
from lakehouse.io.spark import literal_map, pinned
from streaming_jobs.alerts.episodes import episodes
from streaming_jobs.alerts.held import (
    HELD_RULES,
    held_alert_days,
    held_groups,
    held_move_alerts,
    held_news,
    held_prices,
)
from streaming_jobs.alerts.messages import CHANGED, alert_rows
from streaming_jobs.alerts.prices import (
    anomaly_signals,
    forecast_signals,
    price_changes,
    price_move_signals,
    region_move_signals,
    surge_signals,
    without_copies,
)
from streaming_jobs.alerts.sensors import quality_signals, sensor_signals
from streaming_jobs.alerts.signals import key_column
from streaming_jobs.batch_values import batch_clock
from streaming_jobs.silver import local_date

log = logging.getLogger(__name__)

#: the price rules of the gold tables (the held prices' rules follow silver's holds: ``held_moves``)
PRICE_RULES = tuple(r for r in rule_ids(family="prices") if r not in HELD_RULES)
#: the families of rules, each evaluated from its own gold table
PRICES, SENSORS, QUALITY = "prices", "sensors", "quality"


def _sql_time(value: datetime) -> str:
    """A time as the text of a SQL ``TIMESTAMP`` literal, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def news_since(settings: Settings, now: datetime) -> datetime:
    """The oldest event time that raises an alert at ``now``: ``alerts.max_age_hours`` before.
    History loaded, back-filled or replayed is analysed in gold (prices, ``region_move``'s
    province view, charts) but is not news: it raises, and pages, nobody."""
    return now - timedelta(hours=settings.alerts.max_age_hours)


def alert_write(rows: DataFrame, settings: Settings, now: datetime) -> Write:
    """Alert rows (``alert_rows``, ``held_move_alerts`` …) to MERGE into ``gold.alerts`` (which
    must exist): a stored alert takes each change (``CHANGED``); a new one is stored only when
    its last firing point is news (``news_since`` ``now``)."""
    since = _sql_time(news_since(settings, now))
    news = f"s.last_firing_at >= TIMESTAMP '{since}'"
    return Write(GOLD_ALERTS, rows, {"only_if": CHANGED, "insert_when": news})


def upsert_alerts(lake: SparkLake, rows: DataFrame, now: datetime) -> None:
    """MERGE alert rows into ``gold.alerts`` (``alert_write``), created first if need be."""
    lake[GOLD_ALERTS].ensure()
    lake.write(alert_write(rows, lake.settings, now))


@dataclass(frozen=True)
class Touched:
    """What a batch touched in one family of rules: the keys, the time re-evaluation is
    anchored at, and which stored alerts may belong to those keys.

    The keys stay a DataFrame (one ``key`` column, from the batch's rows) that filters by a
    broadcast semi-join: at the national count a batch touches ~10⁵ series, whose keys as literals
    (``isin``) made every plan that huge — and new code to compile each batch."""

    anchor: datetime
    keys: dict[str, DataFrame]  # "a|b" keys by the gold.alerts columns they are made of
    lookback_days: float
    cooldown_hours: float
    rules: tuple[str, ...]

    @property
    def since(self) -> datetime:
        return self.anchor - timedelta(days=self.lookback_days)

    def within(self, rows: DataFrame, name: str, *columns: str) -> DataFrame:
        """The ``rows`` whose key of ``columns`` (by default those ``name`` joins: the keys
        ``"market_id|commodity"`` are of those two columns) is among the keys ``name``."""
        keys = self.keys[name]
        on = key_column(*(columns or name.split("|"))) == keys["key"]
        return rows.join(F.broadcast(keys), on, "left_semi")

    def prior(self, alerts: DataFrame) -> DataFrame:
        """The stored ``alerts`` of these keys that are open or resolved within the cool-down."""
        live = F.col("resolved_at").isNull() | (
            F.col("resolved_at") >= batch_clock(self.since - timedelta(hours=self.cooldown_hours))
        )
        mine = alerts.where(F.col("rule").isin(*self.rules) & live)
        return reduce(DataFrame.unionByName, [self.within(mine, cols) for cols in self.keys])


def _keys(rows: DataFrame, *columns: str) -> DataFrame:
    """The distinct keys (``key_column``) of ``columns`` in ``rows``, as a ``key`` column."""
    return rows.select(key_column(*columns).alias("key")).distinct()


@dataclass(frozen=True)
class Plan:
    """What one gold batch re-evaluates: the touched families, where each one starts, and the
    seconds each call spent (for the step's log line)."""

    touched: dict[str, Touched]
    starts: dict[str, datetime]
    seconds: dict[str, float] = field(default_factory=dict)


class AlertStep:
    """Evaluates the alert rules for what the silver batches of one gold batch touched."""

    def __init__(self, lake: SparkLake, rules: AlertRules) -> None:
        self.lake = lake
        self.spark = lake.spark
        self.settings = lake.settings
        self.rules = rules
        self.tz = self.settings.timezone
        self.copied_from = literal_map(successor_markets(conf_of(self.settings).provinces))
        lake[GOLD_ALERTS].ensure()

    def _read(self, table: Table, condition: str) -> DataFrame:
        """The rows of a gold table where ``condition`` (SQL over ``t``: a coarse bound the
        rules then narrow) holds, read by delta-rs: these tables changed since Spark last read
        them, and Spark would rebuild their state first (``SparkTable.where``)."""
        return self.lake[table].where(condition)

    def _day(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.settings.tz).astimezone(UTC)

    # ---- what the batch touched (one small job per family) ---------------------------------
    def _touched_prices(self, prices: DataFrame) -> Touched | None:
        first = prices.agg(F.min(local_date(F.col("observed_at"), self.tz))).first()[0]
        if first is None:
            return None
        sections = [s for rule, s in self.rules.configured() if rule.id in PRICE_RULES]
        return Touched(
            anchor=self._day(first),
            keys={
                "market_id|commodity": _keys(prices, "market_id", "commodity"),
                "region|commodity": _keys(prices, "region", "commodity"),
            },
            lookback_days=max(s.lookback_days for s in sections),
            cooldown_hours=max(s.cooldown_hours for s in sections),
            rules=PRICE_RULES,
        )

    def _touched_sensors(self, sensors: DataFrame) -> Touched | None:
        first = sensors.agg(F.min("observed_at")).first()[0]
        if first is None:
            return None
        r = self.rules.sensors
        return Touched(
            anchor=first.replace(tzinfo=UTC),
            keys={"market_id|metric": _keys(sensors, "market_id", "metric")},
            lookback_days=r.lookback_days,
            cooldown_hours=r.cooldown_hours,
            rules=tuple(r.rules),
        )

    def _touched_sources(self, quality: DataFrame) -> Touched | None:
        first = quality.agg(F.min("batch_time")).first()[0]
        if first is None:
            return None
        r = self.rules.data_quality
        return Touched(
            anchor=first.replace(tzinfo=UTC),
            keys={"alert_key": _keys(quality, "source", "device_id")},  # source|device_id
            lookback_days=r.lookback_days,
            cooldown_hours=r.cooldown_hours,
            rules=("data_quality",),
        )

    # ---- signals of each family -------------------------------------------------------------
    def _price_signals(self, touched: Touched, start: datetime) -> DataFrame:
        """Market moves, region moves, forecast risk and anomaly scores of the touched market ×
        commodity series (and their provinces)."""
        start_day = start.astimezone(self.settings.tz).date()
        read_from = start_day - timedelta(days=self.rules.price_move.reference_days)
        daily = touched.within(
            self._read(GOLD_PRICE_DAILY, f"t.date >= DATE '{read_from}'"), "region|commodity"
        )
        changes = price_changes(daily, self.rules)
        series = "market_id|commodity"
        moves = touched.within(without_copies(changes, self.copied_from), series)
        signals = [
            price_move_signals(moves, self.rules, self.tz),
            region_move_signals(changes, self.rules, self.tz),
        ]
        if self.lake[GOLD_FORECASTS].exists():
            recent = self._read(GOLD_FORECASTS, f"t.origin_date >= DATE '{start_day}'")
            recent = touched.within(recent, series)
            signals.append(forecast_signals(recent, daily, self.rules, self.tz))
            rise = self.settings.ml.surge_rise
            signals.append(surge_signals(recent, self.rules, rise, self.tz))
        if self.lake[GOLD_ANOMALIES].exists():
            recent = self._read(GOLD_ANOMALIES, f"t.date >= DATE '{start_day}'")
            signals.append(anomaly_signals(touched.within(recent, series), self.rules, self.tz))
        return reduce(DataFrame.unionByName, signals)

    def _sensor_signals(self, touched: Touched, start: datetime) -> DataFrame:
        """Temperature, humidity and crowding of the touched market × metric series."""
        # ``hour`` is the local wall clock: read from that of an hour earlier still (a clock
        # change), so a day of every market's rows is not read to keep the last hour's
        first = (start - timedelta(hours=2)).astimezone(self.settings.tz)
        local_hours = f"t.hour >= TIMESTAMP '{first:%Y-%m-%d %H:%M:%S}'"
        hourly = touched.within(
            self._read(GOLD_SENSOR_HOURLY, local_hours), "market_id|metric"
        ).where(F.to_utc_timestamp("hour", self.tz) >= batch_clock(start - timedelta(hours=1)))
        return sensor_signals(hourly, self.rules, self.tz)

    def _quality_signals(self, touched: Touched, start: datetime) -> DataFrame:
        """Quarantine ratio of the sources and devices this batch received records from."""
        window = timedelta(minutes=self.rules.data_quality.window_minutes)
        since = start - window  # a row per source × device × silver batch: read the window only
        read = f"t.date >= DATE '{since.date()}' AND t.batch_time >= TIMESTAMP '{_sql_time(since)}'"
        recent = touched.within(
            self._read(GOLD_DATA_QUALITY, read),
            "alert_key",
            "source",
            "device_id",
        ).where(F.col("batch_time") >= batch_clock(since))
        return quality_signals(recent, self.rules)

    # ---- the step, in three calls -----------------------------------------------------------
    def plan(self, prices: DataFrame, sensors: DataFrame, quality: DataFrame) -> Plan:
        """The families of rules these rows touched and where each one's re-evaluation starts:
        ``lookback_days`` before its anchor, or earlier at the opening of a stored alert of its
        keys that is open or was resolved less than the cool-down before that — so that its
        episode is recomputed whole, with the same id. Reads ``gold.alerts`` only (one pass for
        all families), so it can run while the gold aggregates are written."""
        laps = Laps()
        touched = {
            family: t
            for family, t in (
                (PRICES, self._touched_prices(prices)),
                (SENSORS, self._touched_sensors(sensors)),
                (QUALITY, self._touched_sources(quality)),
            )
            if t is not None
        }
        starts: dict[str, datetime] = {}
        if touched:
            rules = ", ".join(f"'{r}'" for t in touched.values() for r in t.rules)
            live = min(t.since - timedelta(hours=t.cooldown_hours) for t in touched.values())
            live_then = f"(t.resolved_at IS NULL OR t.resolved_at >= TIMESTAMP '{_sql_time(live)}')"
            stored = self._read(GOLD_ALERTS, f"t.rule IN ({rules}) AND {live_then}")
            opened = reduce(  # one pass over the stored alerts for every family
                DataFrame.unionByName,
                [
                    t.prior(stored).select(F.lit(family).alias("family"), "opened_at")
                    for family, t in touched.items()
                ],
            )
            earliest = dict(opened.groupBy("family").agg(F.min("opened_at")).collect())
            starts = {
                family: min(t.since, earliest[family].replace(tzinfo=UTC))
                if earliest.get(family)
                else t.since
                for family, t in touched.items()
            }
        laps("plan")
        return Plan(touched, starts, laps.seconds)

    def signals(self, plan: Plan, family: str) -> DataFrame | None:
        """The signals of one family since its start, computed (None: the family is not
        touched). Reads the gold table of its family: call it once that table holds the batch
        (``gold.price_daily``: prices; ``gold.sensor_hourly``: sensors; quality any time)."""
        if family not in plan.touched:
            return None
        laps = Laps()
        touched, start = plan.touched[family], plan.starts[family]
        of = {
            PRICES: self._price_signals,
            SENSORS: self._sensor_signals,
            QUALITY: self._quality_signals,
        }[family]
        rows = of(touched, start).where(F.col("at") >= batch_clock(start)).transform(pinned)
        laps(f"signals_{family}")
        plan.seconds.update(laps.seconds)
        return rows

    def alerts(
        self, batch_id: int, plan: Plan, signals: list[DataFrame | None], now: datetime
    ) -> Write | None:
        """The alerts of the families' ``signals``, to MERGE into ``gold.alerts``; ``batch_id`` is
        the gold batch's."""
        computed = [s for s in signals if s is not None]
        if not computed:
            return None
        laps = Laps()
        rows = alert_rows(
            episodes(reduce(DataFrame.unionByName, computed), self.rules.cooldown_hours()),
            self.rules.messages(),
            conf_of(self.settings),
            batch_clock(now),
        ).transform(pinned)
        laps("alerts")
        log.info(
            "alerts evaluated",
            extra={"batch_id": batch_id, "seconds": plan.seconds | laps.seconds},
        )
        return alert_write(rows, self.settings, now)

    # ---- held prices (silver's holds and decisions) -------------------------------------------
    def held_moves(
        self,
        fresh: DataFrame,
        decisions: DataFrame | None,
        now: datetime,
        exists: Callable[[Table], bool],
    ) -> Write | None:
        """The alerts of the ``fresh`` holds and of the ``decisions`` on holds of a gold batch's
        silver batches that matter (``held.held_move_alerts``), to MERGE into ``gold.alerts``; a
        confirmed one resolves ``price_move.cooldown_hours`` after its confirmation. ``exists``:
        whether a table is written yet."""
        rules = self.rules
        cooldown = timedelta(hours=rules.price_move.cooldown_hours)
        rows = (
            self._read(GOLD_ALERTS, "t.rule = 'price_confirmed' AND t.status = 'open'")
            .where(F.col("last_firing_at") < F.lit(now - cooldown))
            .withColumn("status", F.lit("resolved"))
            .withColumn(
                "resolved_at",
                F.col("last_firing_at")
                + F.expr(f"INTERVAL {int(cooldown.total_seconds())} SECONDS"),
            )
            .withColumn("updated_at", batch_clock(now))
        )
        touched = held_prices(fresh, decisions, self.tz).transform(pinned)
        first = touched.agg(F.min("date")).first()[0]
        if first is not None and exists(GOLD_PRICE_DAILY):
            moves = self._held_rows(self._held_moves(touched, first, exists), first, now)
            rows = moves.unionByName(rows.join(moves.select("alert_id"), "alert_id", "left_anti"))
        rows = rows.transform(pinned)
        return None if rows.isEmpty() else alert_write(rows, self.settings, now)

    def _held_moves(
        self, touched: DataFrame, first: date, exists: Callable[[Table], bool]
    ) -> DataFrame:
        """Every held price of the province × commodity × days ``touched`` has prices in
        (``held.held_groups``; ``first``: the earliest of those days): a held move's alert
        follows all of its prices' reviews."""
        since = datetime.combine(first - timedelta(days=1), time(), UTC)  # any zone's day start
        observed = f"t.observed_at >= TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}'"
        holds = self._read(SILVER_HOLDS, observed)
        decisions = (
            self._read(SILVER_HOLD_DECISIONS, observed) if exists(SILVER_HOLD_DECISIONS) else None
        )
        return held_groups(touched, held_prices(holds, decisions, self.tz)).transform(pinned)

    def _held_rows(self, held: DataFrame, first: date, now: datetime) -> DataFrame:
        """The ``gold.alerts`` rows of ``held`` prices (``held.held_prices``; ``first``: the
        earliest local day they were observed on), judged against ``gold.price_daily`` and the
        stored alerts of held prices since the days their references begin."""
        rules = self.rules
        days_from = first - timedelta(days=rules.price_move.reference_days)
        daily = self._read(GOLD_PRICE_DAILY, f"t.date >= DATE '{days_from}'")
        opened_from = datetime.combine(days_from, time(), UTC)  # before any of those days began
        earlier = self._read(
            GOLD_ALERTS,
            f"t.rule IN ({', '.join(repr(r) for r in HELD_RULES)}) "
            f"AND t.opened_at >= TIMESTAMP '{opened_from:%Y-%m-%d %H:%M:%S}'",
        )
        rows = alert_rows(
            held_move_alerts(held, daily, held_alert_days(earlier), rules),
            rules.messages(),
            conf_of(self.settings),
            batch_clock(now),
        )
        return held_news(rows, earlier, news_since(self.settings, now))
