"""Early-warning rules — pure functions from gold/silver rows to alert rows.

Each rule turns its input into *signals*: one row per evaluation point (a local day, a local
hour, a micro-batch) and key, saying whether the rule fires there, how badly, the value and
what it was compared with. ``episodes`` then turns the signals of each rule × key into alerts:
consecutive firing points are one alert, the first calm point after them resolves it, and a
firing point within the rule's cool-down after a resolution re-opens the same alert. The alert
id is derived from rule, key and the episode's first firing point, so recomputing the same
signals always gives the same alerts (the micro-batch MERGEs them: exactly once).
Thresholds and messages: ``conf/alerts.yaml``.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache, reduce
from typing import Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import (
    NEWS_SURGE,
    AlertRules,
    Message,
    NewsSurgeRules,
    SensorRule,
    SupplyAlertRules,
)
from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import HoldStatus, Metric
from lakehouse.catalog.tables import GOLD_ALERTS
from lakehouse.io.spark import literal_map
from streaming_jobs.gold import sensor_hourly

# ---- signals --------------------------------------------------------------------------------

SEVERITIES = ("warning", "critical")  # in rising order
#: the rules of a held price's alert (``held_move_alerts``): unconfirmed, then confirmed
HELD_UNCONFIRMED, HELD_CONFIRMED = HELD_RULES = ("price_unconfirmed", "price_confirmed")
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


def _fields(**values: Column) -> Column:
    """The message placeholders of a signal, as a map of text."""
    return F.create_map(*[x for k, v in values.items() for x in (F.lit(k), v.cast("string"))])


def _signals(df: DataFrame, **columns: Column) -> DataFrame:
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


def _median(closes: Column, min_points: int) -> Column:
    """The median of an array of closes (null with fewer than ``min_points`` of them)."""
    ordered = F.array_sort(closes)
    n = F.size(ordered)
    median = (
        F.element_at(ordered, F.floor((n + 1) / 2).cast("int"))
        + F.element_at(ordered, F.floor(n / 2 + 1).cast("int"))
    ) / 2
    return F.when(n >= min_points, median)


def price_changes(daily: DataFrame, rules: AlertRules) -> DataFrame:
    """``gold.price_daily`` rows with ``reference`` (the median close of the market × commodity
    over the ``reference_days`` before, when it has ``min_reference_points`` closes there)
    and ``change`` (close / reference − 1)."""
    r = rules.price_move
    before = (
        Window.partitionBy("market_id", "commodity")
        .orderBy(F.unix_date("date"))
        .rangeBetween(-r.reference_days, -1)
    )
    reference = _median(F.collect_list("close").over(before), r.min_reference_points)
    return daily.withColumn("reference", reference).withColumn(
        "change", F.col("close") / F.col("reference") - 1
    )


def without_copies(changes: DataFrame, copied_from: Column) -> DataFrame:
    """``price_changes`` rows less those of a series that repeats another's: a province formed
    from another whose sources publish no series of its own has its parent's (the price
    simulator's ``province_averages``; ``copied_from``: a map column, such a province's
    aggregate market → its parent's, ``successor_markets``), and a move of both is one move,
    alerted once, for the parent. A row is a copy when the parent's row of its commodity and day
    has its close and reference; a series of its own that moves otherwise stays."""
    parent = copied_from[F.col("market_id")]
    same_day = Window.partitionBy(F.coalesce(parent, F.col("market_id")), "commodity", "date")
    theirs = F.first(F.when(parent.isNull(), F.struct("close", "reference")), ignorenulls=True)
    copy = (
        parent.isNotNull()
        & (F.col("_theirs.close") == F.col("close"))
        & F.col("_theirs.reference").eqNullSafe(F.col("reference"))
    )
    return changes.withColumn("_theirs", theirs.over(same_day)).where(~copy).drop("_theirs")


def reference_medians(points: DataFrame, daily: DataFrame, rules: AlertRules) -> DataFrame:
    """``points`` (``market_id``, ``commodity``, ``date`` and more) with ``reference``: the
    median close of their market × commodity over the ``reference_days`` before ``date`` in
    ``daily`` (``gold.price_daily``), as ``price_changes`` has it (null without
    ``min_reference_points`` closes there)."""
    r = rules.price_move
    series = ["market_id", "commodity"]
    days = points.select(*series, "date").distinct()
    closes = daily.select(*series, F.col("date").alias("close_date"), "close")
    within = F.col("close_date").between(
        F.date_sub("date", r.reference_days), F.date_sub("date", 1)
    )
    medians = (
        days.join(closes, series)
        .where(within)
        .groupBy(*series, "date")
        .agg(_median(F.collect_list("close"), r.min_reference_points).alias("reference"))
    )
    return points.join(medians, [*series, "date"], "left")


def move_threshold(rules: AlertRules) -> Column:
    """The move of ``commodity``'s prices that matters (``moves`` of the rules)."""
    by_commodity = literal_map({c: str(v) for c, v in rules.moves.commodities.items()})
    return F.coalesce(by_commodity[F.col("commodity")].cast("double"), F.lit(rules.moves.default))


def price_move_signals(changes: DataFrame, rules: AlertRules, tz: str) -> DataFrame:
    """``price_spike`` / ``price_drop`` per market × commodity × day (from ``price_changes``)."""
    r = rules.price_move
    judged = changes.where(F.col("reference").isNotNull())
    return reduce(
        DataFrame.unionByName,
        [
            _signals(
                judged,
                rule=F.lit(rule),
                alert_key=key_column("market_id", "commodity"),
                at=day_start(F.col("date"), tz),
                severity=level(F.col("change") * sign, r.warning, r.critical),
                value=F.col("close"),
                reference=F.col("reference"),
                metric=F.lit("price"),
                details=F.to_json(F.struct("change", "date")),
                fields=_fields(
                    market=F.col("market_id"),
                    commodity=F.col("commodity"),
                    value=F.col("close"),
                    reference=F.col("reference"),
                    change=F.abs(F.col("change")),
                ),
            )
            for rule, sign in (("price_spike", 1), ("price_drop", -1))
        ],
    )


def region_move_signals(changes: DataFrame, rules: AlertRules, tz: str) -> DataFrame:
    """``region_move`` per province × commodity × day: the share of its markets whose close is
    the commodity's ``moves`` threshold or more above their own reference."""
    r = rules.region_move
    per_day = (
        changes.where(F.col("change").isNotNull())
        .groupBy("region", "commodity", "date")
        .agg(
            F.count("*").alias("markets"),
            F.count(F.when(F.col("change") >= move_threshold(rules), 1)).alias("rising"),
            F.percentile("change", 0.5).alias("median_change"),
        )
        .where(F.col("markets") >= r.min_markets)
        .withColumn("share", F.col("rising") / F.col("markets"))
    )
    return _signals(
        per_day,
        rule=F.lit("region_move"),
        alert_key=key_column("region", "commodity"),
        at=day_start(F.col("date"), tz),
        severity=level(F.col("share"), r.warning, r.critical),
        value=F.col("share"),
        reference=F.col("median_change"),
        metric=F.lit("share_rising"),
        details=F.to_json(F.struct("markets", "rising", "median_change", "date")),
        fields=_fields(
            region=F.col("region"),
            commodity=F.col("commodity"),
            share=F.col("share"),
            change=F.col("median_change"),
        ),
    )


def forecast_signals(
    forecasts: DataFrame, daily: DataFrame, rules: AlertRules, tz: str
) -> DataFrame:
    """``forecast_risk`` per market × commodity × forecast origin: the highest forecast of the
    next ``horizon_days`` against the close of the origin day."""
    r = rules.forecast_risk
    ahead = (
        forecasts.where(F.col("market_id").isNotNull())
        .where(F.col("horizon").between(1, r.horizon_days))
        .groupBy("market_id", "commodity", "origin_date")
        .agg(F.max("yhat").alias("forecast"))
    )
    today = daily.select("market_id", "commodity", F.col("date").alias("origin_date"), "close")
    joined = ahead.join(today, ["market_id", "commodity", "origin_date"]).withColumn(
        "change", F.col("forecast") / F.col("close") - 1
    )
    return _signals(
        joined,
        rule=F.lit("forecast_risk"),
        alert_key=key_column("market_id", "commodity"),
        at=day_start(F.col("origin_date"), tz),
        severity=level(F.col("change"), r.warning, r.critical),
        value=F.col("forecast"),
        reference=F.col("close"),
        metric=F.lit("forecast"),
        details=F.to_json(F.struct("change", "origin_date")),
        fields=_fields(
            market=F.col("market_id"),
            commodity=F.col("commodity"),
            value=F.col("forecast"),
            reference=F.col("close"),
            change=F.col("change"),
        ),
    )


def surge_signals(forecasts: DataFrame, rules: AlertRules, rise: float, tz: str) -> DataFrame:
    """``surge_risk`` per market × commodity × forecast origin: the forecast's probability of a
    rise ≥ ``rise`` (``ml.surge_rise``) within its horizon (rows without one are skipped),
    warned from the series' own ``surge_warn_at`` — the threshold its surge classifier reached
    its precision at — else from ``surge_risk.warning`` (also for forecasts written before the
    column); critical from ``surge_risk.critical`` or that threshold, the higher."""
    r = rules.surge_risk
    own = "surge_warn_at" in forecasts.columns
    per_origin = (
        forecasts.where(F.col("market_id").isNotNull() & F.col("surge_prob").isNotNull())
        .groupBy("market_id", "commodity", "origin_date")
        .agg(
            F.max("surge_prob").alias("surge_prob"),
            F.max("horizon").alias("horizon"),
            F.max(F.col("surge_warn_at") if own else F.lit(None).cast("double")).alias("warn_at"),
        )
        .withColumn("warn_at", F.coalesce(F.col("warn_at"), F.lit(r.warning)))
    )
    return _signals(
        per_origin,
        rule=F.lit("surge_risk"),
        alert_key=key_column("market_id", "commodity"),
        at=day_start(F.col("origin_date"), tz),
        severity=level(
            F.col("surge_prob"), F.col("warn_at"), F.greatest("warn_at", F.lit(r.critical))
        ),
        value=F.col("surge_prob"),
        reference=F.col("warn_at"),
        metric=F.lit("surge_prob"),
        details=F.to_json(F.struct("surge_prob", "warn_at", "horizon", "origin_date")),
        fields=_fields(
            market=F.col("market_id"),
            commodity=F.col("commodity"),
            value=F.col("surge_prob"),
            warn_at=F.col("warn_at"),
            rise=F.lit(rise),
            horizon=F.col("horizon"),
        ),
    )


def anomaly_signals(anomalies: DataFrame, rules: AlertRules, tz: str) -> DataFrame:
    """``anomaly_score`` per market × commodity × anomaly kind × day."""
    r = rules.anomaly_score
    return _signals(
        anomalies,
        rule=F.lit("anomaly_score"),
        alert_key=key_column("market_id", "commodity", "kind"),
        at=day_start(F.col("date"), tz),
        severity=level(F.col("score"), r.warning, r.critical),
        value=F.col("score"),
        reference=F.lit(r.warning),
        metric=F.col("kind"),
        details=F.to_json(F.struct("price", "explanation", "date")),
        fields=_fields(
            market=F.col("market_id"),
            commodity=F.col("commodity"),
            metric=F.col("kind"),
            value=F.col("score"),
        ),
    )


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
        return _signals(
            hourly.where(F.col("metric") == rule.metric.value),
            rule=F.lit(name),
            alert_key=key_column("market_id", "metric"),
            at=_hour_start(tz),
            severity=_hourly_severity(rule, capacity),
            value=value,
            reference=reference,
            details=F.to_json(F.struct("mean", "min", "max", "count", "hour")),
            fields=_fields(
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
    return _signals(
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
        fields=_fields(
            source=F.col("source"),
            device=F.col("device_id"),
            value=F.col("ratio"),
            window=F.lit(f"{r.window_minutes:g}"),
        ),
    )


#: what became of a held price, in the words of its alert (``{outcome_id}``, ``{outcome_en}``):
#: by decision, else held
_OUTCOMES = {
    HoldStatus.held.value: Message(id="ditahan", en="held"),
    HoldStatus.not_confirmed.value: Message(id="tidak terkonfirmasi", en="not confirmed"),
    HoldStatus.rejected.value: Message(id="ditolak operator", en="rejected by an operator"),
}
#: how a released price was confirmed (``{confirmation_id}``, ``{confirmation_en}``): by
#: ``{supports}`` reports at its level (the rule), else by an operator
_CONFIRMATIONS = {
    "rule": Message(
        id="dikonfirmasi {supports} laporan di level baru",
        en="confirmed by {supports} reports at the new level",
    ),
    "operator": Message(id="dirilis operator", en="released by an operator"),
}
#: the columns of a held price's last state (``held_prices``)
_HELD = ("event_id", "market_id", "region", "commodity", "price", "move", "hold_reasons")
_HELD += ("observed_at", "held_at", "decision", "decided_by", "supports", "note", "decided_at")


def held_prices(holds: DataFrame, decisions: DataFrame | None, tz: str) -> DataFrame:
    """The last state of each held price (``lakehouse.domain.holds``): ``holds`` are
    ``silver.holds`` rows, ``decisions`` ``silver.hold_decisions`` rows (an event's newest
    decision wins over its hold; None: there are none yet); with the local ``date`` it was
    observed on and its ``province`` (its market's, where a price names none)."""
    undecided = {"decision": "string", "decided_by": "string", "supports": "bigint"}
    undecided |= {"note": "string", "decided_at": "timestamp"}
    held = holds.select(
        *[F.lit(None).cast(undecided[c]).alias(c) if c in undecided else c for c in _HELD]
    )
    if decisions is not None:
        newest = Window.partitionBy("event_id").orderBy(F.col("decided_at").desc())
        ended = (
            decisions.select(*_HELD)
            .withColumn("_newest", F.row_number().over(newest))
            .where(F.col("_newest") == 1)
            .drop("_newest")
        )
        held = ended.unionByName(held.join(ended.select("event_id"), "event_id", "left_anti"))
    return held.withColumn("date", F.to_date(F.from_utc_timestamp("observed_at", tz))).withColumn(
        "province", _province()
    )


#: a held move's scope: every market of a province follows the day's real change together
MOVE_SCOPE = ("province", "commodity", "date")


def _province() -> Column:
    """The province of a held price or its alert: its ``region``, else its market."""
    return F.coalesce("region", "market_id")


def held_groups(touched: DataFrame, held: DataFrame) -> DataFrame:
    """The held prices (``held_prices`` of ``silver.holds`` and ``silver.hold_decisions``) of
    every province × commodity × day ``touched`` (``held_prices`` of a batch's holds and
    decisions) has a price in: a held move's alert is recomputed from all of its prices."""
    return held.join(touched.select(*MOVE_SCOPE).distinct(), list(MOVE_SCOPE), "left_semi")


def held_alert_days(alerts: DataFrame) -> DataFrame:
    """Stored ``gold.alerts`` rows of held prices with the local ``date`` and ``observed_at`` of
    their price (from ``details``): the ``earlier`` of ``held_move_alerts``."""
    observed = F.get_json_object("details", "$.observed_at")
    return alerts.select(
        "alert_id",
        "market_id",
        _province().alias("province"),
        "commodity",
        F.to_date(F.get_json_object("details", "$.date")).alias("date"),
        F.coalesce(F.to_timestamp(observed), F.col("opened_at")).alias("observed_at"),
        F.col("value").alias("price"),
    )


def _moves(held: DataFrame, earlier: DataFrame) -> DataFrame:
    """Which alert each of the ``held`` prices (``alert_id``, ``MOVE_SCOPE``, ``observed_at``,
    ``price``, ``change`` from the reference, the commodity's ``threshold``) belongs to: pairs of
    its ``alert_id`` and the ``head``, the alert id of the price that opened its move. Walking a
    province × commodity × day in time, a price heads a move when ``earlier``
    (``held_alert_days``) already alerted it, or when it moved ``threshold`` from the reference
    and — if a move was alerted there that day — another ``threshold`` from the price that
    opened it; a price that moved ``threshold`` within the move belongs to it. So a move every
    market of a province follows (the day's real change) is one alert, not one per market."""
    day = list(MOVE_SCOPE)
    point = ["observed_at", "alert_id", "price", "stored", "matters", "threshold"]
    earlier = earlier.join(held.select(*day).distinct(), day, "left_semi")
    stored = earlier.select("alert_id", F.lit(True).alias("stored"))
    before = (
        earlier.join(held.select("alert_id"), "alert_id", "left_anti")
        .withColumn("stored", F.lit(True))
        .withColumn("matters", F.lit(False))
        .withColumn("threshold", F.lit(None).cast("double"))
    )
    mine = (
        held.join(stored, "alert_id", "left")
        .withColumn("stored", F.coalesce("stored", F.lit(False)))
        .withColumn("matters", F.coalesce(F.abs("change") >= F.col("threshold"), F.lit(False)))
    )
    pair = "array<struct<alert_id:string,head:string>>"
    start = F.struct(
        F.lit(None).cast("double").alias("last"),
        F.lit(None).cast("string").alias("head"),
        F.array().cast(pair).alias("pairs"),
    )

    def state(last: Column, head: Column, seen: Column, x: Column) -> Column:
        joined = F.struct(x["alert_id"].alias("alert_id"), head.alias("head"))
        pairs = F.concat(seen["pairs"], F.array(joined))
        return F.struct(last.alias("last"), head.alias("head"), pairs.alias("pairs"))

    def step(seen: Column, x: Column) -> Column:
        again = seen["last"].isNull() | (F.abs(x["price"] / seen["last"] - 1) >= x["threshold"])
        heads = state(x["price"], x["alert_id"], seen, x)
        joins = state(seen["last"], seen["head"], seen, x)
        return (
            F.when(x["stored"] | (x["matters"] & again), heads)
            .when(x["matters"] & seen["head"].isNotNull(), joins)
            .otherwise(seen)
        )

    points = F.array_sort(F.collect_list(F.struct(*point)))
    return (
        before.select(*day, *point)
        .unionByName(mine.select(*day, *point))
        .groupBy(*day)
        .agg(F.aggregate(points, start, step)["pairs"].alias("pairs"))
        .select(F.inline("pairs"))
    )


def _words(words: dict[str, Message], language: str, key: Column) -> Column:
    return literal_map({k: getattr(m, language) for k, m in words.items()})[key]


def held_move_alerts(
    held: DataFrame, daily: DataFrame, earlier: DataFrame, rules: AlertRules
) -> DataFrame:
    """The alerts of held prices (``held_prices``; all of a province × commodity × day's,
    ``held_groups``), in the columns of ``episodes``, one per held move: its prices moved the
    commodity's ``moves`` threshold from the median close of the days before
    (``reference_medians`` of ``daily``, ``gold.price_daily``), in one province × commodity and
    day; a move again that day only when a price moved that much from the one that opened the
    last (``_moves``; ``earlier``: the stored alerts of held prices, ``held_alert_days``). The
    alert is the opening price's (its market, value, reference), with how many ``markets`` the
    move has in ``details``. While a price of the move is held: ``price_unconfirmed``, open —
    only from ``held_move.unconfirmed_severity`` on; once one is released: ``price_confirmed``,
    open; when every one was not confirmed or rejected: ``price_unconfirmed``, resolved (a move
    below that severity that was never confirmed: no alert)."""
    r = rules.price_move
    alert_id = F.substring(F.sha2(F.concat(F.lit("held|"), "event_id"), 256), 1, 32)
    judged = (
        reference_medians(held, daily, rules)
        .withColumn("alert_id", alert_id)
        .withColumn("change", F.col("price") / F.col("reference") - 1)
        .withColumn("threshold", move_threshold(rules))
    )
    released = F.col("decision") == HoldStatus.released.value
    moves = (
        judged.join(_moves(judged, earlier), "alert_id")
        .groupBy(F.col("head").alias("alert_id"))
        .agg(
            F.max(released).alias("confirmed"),
            F.max(F.col("decision").isNull()).alias("pending"),
            F.countDistinct("market_id").alias("markets"),
            F.max(F.coalesce("decided_at", "held_at")).alias("last_at"),
            F.max("decided_at").alias("last_decided_at"),
            F.min(F.when(released, F.struct("decided_at", "decided_by", "supports"))).alias(
                "release"
            ),
        )
    )
    severity = level(F.abs(F.col("change")), r.warning, r.critical)
    rows = judged.join(moves, "alert_id").withColumn(  # each move's alert: its opening price's
        "severity", F.coalesce(severity, F.lit("warning"))
    )
    confirmed, pending = F.col("confirmed"), F.col("pending")
    unconfirmed_from = _rank(F.lit(rules.held_move.unconfirmed_severity))
    rows = rows.where(confirmed | (_rank(F.col("severity")) >= unconfirmed_from))
    outcome = F.when(pending, F.lit(HoldStatus.held.value)).otherwise(F.col("decision"))
    operator = F.col("release.decided_by").startswith("operator:")
    by = F.when(operator, "operator").otherwise("rule")
    supports = F.coalesce(F.col("release.supports").cast("string"), F.lit("?"))
    fields = _fields(
        market=F.col("market_id"),
        commodity=F.col("commodity"),
        value=F.col("price"),
        reference=F.col("reference"),
        change=F.col("change"),
        **{
            f"{name}_{language}": word
            for language in ("id", "en")
            for name, word in (
                ("outcome", _words(_OUTCOMES, language, outcome)),
                (
                    "confirmation",
                    F.replace(_words(_CONFIRMATIONS, language, by), F.lit("{supports}"), supports),
                ),
            )
        },
    )
    return rows.select(
        "alert_id",
        F.when(confirmed, HELD_CONFIRMED).otherwise(HELD_UNCONFIRMED).alias("rule"),
        key_column("market_id", "commodity").alias("alert_key"),
        "severity",
        F.when(pending | confirmed, "open").otherwise("resolved").alias("status"),
        F.col("held_at").alias("opened_at"),
        F.when(~pending & ~confirmed, F.col("last_decided_at")).alias("resolved_at"),
        F.col("last_at").alias("last_firing_at"),
        F.col("price").alias("value"),
        "reference",
        "market_id",
        "region",
        "commodity",
        F.lit("price").alias("metric"),
        F.to_json(
            F.struct(
                "event_id",
                "move",
                "change",
                "date",
                "observed_at",
                "hold_reasons",
                "decision",
                "note",
                "decided_at",
                "markets",
            )
        ).alias("details"),
        fields.alias("fields"),
    )


def held_news(rows: DataFrame, stored: DataFrame, since: datetime) -> DataFrame:
    """The ``held_move_alerts`` rows still news: their price observed at or after ``since``
    (``alerting.news_since``), or their alert already stored (``stored``: ``gold.alerts`` rows),
    which then follows its price's decision whenever that comes."""
    observed = F.to_timestamp(F.get_json_object("details", "$.observed_at"))
    known = stored.select("alert_id", F.lit(True).alias("_stored"))
    return (
        rows.join(known, "alert_id", "left")
        .where((observed >= F.lit(since)) | F.col("_stored").isNotNull())
        .drop("_stored")
    )


# ---- episodes -------------------------------------------------------------------------------


def _rank(severity: Column) -> Column:
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
            F.max(_rank(F.col("severity"))).alias("rank"),
            F.max_by(
                F.struct(
                    "value",
                    "reference",
                    "market_id",
                    "region",
                    "commodity",
                    "metric",
                    "details",
                    "fields",
                ),
                "at",
            ).alias("last"),
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


_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _grouped(x: Column, decimals: int, language: str) -> Column:
    """``x`` with thousands grouped and ``decimals`` decimals: ``40.216,5`` in Indonesian,
    ``40,216.5`` in English."""
    text = F.format_number(x, decimals)
    return F.translate(text, ",.", ".,") if language == "id" else text


#: the ``{x:kind}`` of a number with that many decimals (``formatted``)
DECIMALS = {"d0": 0, "d1": 1, "d2": 2}


def formatted(x: Column, kind: str, language: str) -> Column:
    """A number of a message in its language's way: ``rp`` rupiah (``Rp 40.216``, Indonesian
    grouping in both languages: how prices are written), ``pct`` a fraction as a percentage
    (``-3,5 %`` / ``-3.5%``), ``spct`` the same with its sign (``+3,5 %`` / ``+3.5%``), ``d0``,
    ``d1``, ``d2`` a number with that many decimals (``1.100``, ``2,4`` / ``1,100``, ``2.4``)."""
    if kind in DECIMALS:
        return _grouped(x, DECIMALS[kind], language)
    if kind == "rp":
        return F.concat(F.lit("Rp "), _grouped(F.round(x), 0, "id"))
    if kind in ("pct", "spct"):
        number = _grouped(x * 100, 1, language)
        if kind == "spct":
            number = F.concat(F.when(x * 100 >= 0.05, "+").otherwise(""), number)
        return F.concat(number, F.lit(" %" if language == "id" else "%"))
    raise ValueError(f"unknown number format {{...:{kind}}} in an alert message")


def _render(
    template: str, fields: Column, language: str, names: dict[str, Column] | None = None
) -> Column:
    """A message template in ``language`` with its ``{placeholders}`` filled from ``names`` (the
    words people read, ``_people_words``) or else from the ``fields`` map; ``{x:kind}`` formats
    the number ``x`` (``formatted``)."""
    names = names or {}
    parts: list[Column] = []
    pieces = _PLACEHOLDER.split(template)
    for i in range(0, len(pieces), 3):
        parts.append(F.lit(pieces[i]))
        if i + 1 < len(pieces):
            name, kind = pieces[i + 1], pieces[i + 2]
            value = names.get(name, fields[name])
            if kind:
                value = formatted(value.cast("double"), kind, language)
            parts.append(F.coalesce(value, F.lit("?")))
    return F.concat(*parts)


def alert_rows(
    alerts: DataFrame, messages: dict[str, Message], conf: Conf, now: Column
) -> DataFrame:
    """``episodes`` as rows of ``gold.alerts``: the rules' ``messages`` in Indonesian and English
    rendered with the names of ``conf``'s reference data, ``updated_at`` = ``now`` (the MERGE
    only keeps it where something else changed)."""
    made = {
        f"message_{language}": _messages_in(
            language, tuple((rule, getattr(m, language)) for rule, m in messages.items())
        )
        for language in ("id", "en")
    }
    made["updated_at"] = now.cast("timestamp")
    return _with_people_words(alerts, conf).select(
        *[made[c].alias(c) if c in made else c for c in GOLD_ALERTS.columns]
    )


@cache
def _messages_in(language: str, templates: tuple[tuple[str, str], ...]) -> Column:
    """The message column of ``language`` for the rules' ``templates`` ((rule, template)
    pairs), built once per set of templates: its few thousand py4j calls took seconds of every
    gold batch. A Column names its inputs and binds to no DataFrame, so one serves every batch."""
    names = {
        "market": F.col(f"{WORDS}market"),
        "province": F.col(f"{WORDS}province"),
        "location": F.col(f"{WORDS}location_{language}"),
        "commodity": F.col(f"{WORDS}commodity_{language}"),
    }
    out = F.lit(None).cast("string")
    for rule, template in templates:
        out = F.when(
            F.col("rule") == rule, _render(template, F.col("fields"), language, names)
        ).otherwise(out)
    return out


#: the columns that name an alert for its whole life (its id, what it is about, when it opened)
_FIXED = ("alert_id", "market_id", "region", "commodity", "metric", "opened_at", "alert_key")
#: what makes a recomputed alert row different from the stored one (``updated_at`` aside)
CHANGED = " OR ".join(
    f"(t.{c} IS DISTINCT FROM s.{c})"
    for c in GOLD_ALERTS.columns
    if c not in (*_FIXED, "updated_at")
)


# ---- the words people read in messages (ids stay in the alert's columns and fields) ---------


#: prefix of the columns ``_with_people_words`` adds (``alert_rows`` does not keep them)
WORDS = "_words_"


def _with_people_words(alerts: DataFrame, conf: Conf) -> DataFrame:
    """``alerts`` with the names its messages show: the market's name, the province (the
    market's, or the alert's region), the location (``Market.location``) and the commodity's
    catalogue name in each language (``id``, ``en``), from the alert's ids. An id the reference
    data does not know is shown as it is."""
    markets = tuple(
        (m.market_id, m.name, m.province, m.location("id"), m.location("en"))
        for m in conf.markets.values()
    )
    labels = tuple((c.id, c.label("id"), c.label("en")) for c in conf.commodities.values())
    return alerts.withColumns(dict(_people_words(markets, labels)))


@cache
def _people_words(
    markets: tuple[tuple[str, str, str, str, str], ...], labels: tuple[tuple[str, str, str], ...]
) -> tuple[tuple[str, Column], ...]:
    """The columns of ``_with_people_words`` for these ``markets`` (id, name, province, location in
    Indonesian and in English) and commodity ``labels`` (id, Indonesian, English), built once
    (``_messages_in``: a literal map is two py4j calls an entry, ~10⁵ at the national count)."""
    market_name = literal_map({market_id: name for market_id, name, *_ in markets})
    province = literal_map({market_id: p for market_id, _, p, *_ in markets})
    market = F.coalesce(market_name[F.col("market_id")], F.col("fields")["market"])
    words = {
        f"{WORDS}market": market,
        f"{WORDS}province": F.coalesce(province[F.col("market_id")], F.col("region"), F.lit("")),
    }
    for i, language in enumerate(("id", "en")):
        location = literal_map({market_id: where[i] for market_id, _, _, *where in markets})
        words[f"{WORDS}location_{language}"] = F.coalesce(
            location[F.col("market_id")], F.concat_ws(", ", market, F.col("region"))
        )
        label = literal_map({c[0]: c[i + 1] for c in labels})
        words[f"{WORDS}commodity_{language}"] = F.coalesce(
            label[F.col("commodity")], F.col("fields")["commodity"]
        )
    return tuple(words.items())


# ---- supply chain (issue 35): stock_cover_low, shipment_late, route_delay -------------------


def _name_of(entity_id: str, names: Column) -> Column:
    """The name of the entity in column ``entity_id`` (``names``: a map column, entity id →
    name), its id where it has none."""
    return F.coalesce(names[F.col(entity_id)], F.col(entity_id))


def entity_places(stock: DataFrame, names: Column) -> DataFrame:
    """``gold.stock_daily`` rows with ``place``, the words that name their entity: its name
    and province (``Gudang Bulog Makassar (Sulawesi Selatan)``, ``_name_of``)."""
    name = _name_of("entity_id", names)
    return stock.withColumn("place", F.concat(name, F.lit(" ("), F.col("province"), F.lit(")")))


def shared_provinces(regions: DataFrame, stock: DataFrame) -> DataFrame:
    """``gold.supply_region_daily`` rows (``place``: the province) of a province × commodity ×
    day whose stock more than one entity holds (``gold.stock_daily``): where one entity holds
    it all, the province's cover is that entity's, and its own ``stock_cover_low`` says so once."""
    keys = ["province", "commodity", "date"]
    shared = (
        stock.groupBy(*keys)
        .agg(F.countDistinct("entity_id").alias("holders"))
        .where(F.col("holders") > 1)
    )
    return regions.join(shared, keys, "left_semi").withColumn("place", F.col("province"))


def stock_cover_signals(
    daily: DataFrame, rules: SupplyAlertRules, tz: str, scope: Literal["entity", "province"]
) -> DataFrame:
    """Per entity (``gold.stock_daily``, ``entity_places``) or province
    (``gold.supply_region_daily``, ``shared_provinces``) × commodity × day: days of cover below
    the rule's levels (fewer days: worse)."""
    rule = rules.stock_cover_low
    who = "entity_id" if scope == "entity" else "province"
    cover = F.col("days_of_cover")
    return _signals(
        daily.where(cover.isNotNull()),
        rule=F.lit("stock_cover_low"),
        alert_key=F.concat(F.lit(f"{scope}:"), key_column(who, "commodity")),
        at=day_start(F.col("date"), tz),
        severity=level(-cover, -rule.warning, -rule.critical),
        value=cover,
        reference=F.lit(rule.warning),
        region=F.col("province"),
        metric=F.lit("days_of_cover"),
        details=F.lit(None).cast("string"),
        fields=_fields(
            place=F.col("place"),
            commodity=F.col("commodity"),
            value=cover,
            reference=F.lit(rule.warning),
        ),
    )


def shipment_late_signals(
    shipments: DataFrame, rules: SupplyAlertRules, names: Column
) -> DataFrame:
    """Per shipment (``gold.shipments``): a point at its expected time, firing by its delay
    in hours, and a calm one when it arrived — so a late shipment is one alert, resolved on
    arrival. Its origin and destination by name (``names``: entity id → name, a map column)."""
    rule = rules.shipment_late
    delay = F.col("delay_hours")
    fields = _fields(
        shipment=F.col("shipment_id"),
        commodity=F.col("commodity"),
        origin=_name_of("origin_id", names),
        destination=_name_of("destination_id", names),
        value=delay,
    )
    common = dict(
        rule=F.lit("shipment_late"),
        alert_key=F.col("shipment_id"),
        value=delay,
        reference=F.lit(rule.warning),
        region=F.col("destination_province"),
        metric=F.lit("delay_hours"),
        details=F.col("route_id"),
        fields=fields,
    )
    due = _signals(
        shipments,
        at=F.col("expected_at"),
        severity=level(delay, rule.warning, rule.critical),
        **common,
    )
    arrived = _signals(
        shipments.where(
            F.col("arrived_at").isNotNull() & (F.col("arrived_at") > F.col("expected_at"))
        ),
        at=F.col("arrived_at"),
        severity=F.lit(None).cast("string"),
        **common,
    )
    return due.unionByName(arrived)


def route_delay_signals(shipments: DataFrame, rules: SupplyAlertRules, tz: str) -> DataFrame:
    """Per route × arrival day: the mean delay (hours) of the last ``recent_days`` days'
    arrivals against the route's usual delay (the mean of the arrivals before them, at least
    ``min_history``); fires when recent − usual reaches the levels."""
    rule = rules.route_delay
    arrived = shipments.where(F.col("arrived_at").isNotNull()).withColumn(
        "date", F.to_date(F.from_utc_timestamp("arrived_at", tz))
    )
    day = F.datediff(F.col("date"), F.lit("1970-01-01").cast("date"))
    by_route = Window.partitionBy("route_id").orderBy(day)
    recent = by_route.rangeBetween(-(rule.recent_days - 1), 0)
    before = by_route.rangeBetween(Window.unboundedPreceding, -rule.recent_days)
    daily = (
        arrived.groupBy("route_id", "date")
        .agg(
            F.sum("delay_hours").alias("total"),
            F.count(F.lit(1)).alias("n"),
            F.first("destination_province").alias("province"),
            F.first("commodity").alias("commodity"),
        )
        .withColumn("recent", F.sum("total").over(recent) / F.sum("n").over(recent))
        .withColumn("usual_n", F.coalesce(F.sum("n").over(before), F.lit(0)))
        .withColumn("usual", F.sum("total").over(before) / F.col("usual_n"))
    )
    excess = F.when(F.col("usual_n") >= rule.min_history, F.col("recent") - F.col("usual"))
    return _signals(
        daily,
        rule=F.lit("route_delay"),
        alert_key=F.col("route_id"),
        at=day_start(F.col("date"), tz),
        severity=level(excess, rule.warning, rule.critical),
        value=F.col("recent"),
        reference=F.col("usual"),
        region=F.col("province"),
        metric=F.lit("delay_hours"),
        details=F.lit(None).cast("string"),
        fields=_fields(
            route=F.col("route_id"),
            value=F.col("recent"),
            reference=F.col("usual"),
        ),
    )


# ---- news_surge (issue 36): many recent headlines one way --------------------------------------


def news_surge_signals(
    signal: DataFrame, rules: NewsSurgeRules, tz: str, today: Column
) -> DataFrame:
    """``news_surge`` per province × commodity × local day, from ``gold.news_signal`` rows of
    the keys to judge: over the ``window_days`` ending that day, the headlines and the share
    saying one way, ``|up − down| / headlines``. Every day from a key's first headline (within
    ``lookback_days``) to ``today`` is a point (a quiet day after a surge is a calm point: it
    resolves the alert)."""
    keys = ("province", "commodity")
    signal = signal.where(F.col("date") >= F.date_sub(today, int(rules.lookback_days)))
    spans = signal.groupBy(*keys).agg(
        F.sequence(F.min("date"), F.greatest(F.max("date"), today)).alias("dates")
    )
    calendar = spans.select(*keys, F.explode("dates").alias("date"))
    counts = ("headlines", "up", "down")
    daily = calendar.join(signal.select(*keys, "date", *counts), [*keys, "date"], "left")
    window = (
        Window.partitionBy(*keys)
        .orderBy(F.unix_date("date"))
        .rangeBetween(-(rules.window_days - 1), 0)
    )
    summed = daily.select(
        *keys,
        "date",
        *[F.sum(F.coalesce(F.col(c), F.lit(0))).over(window).alias(c) for c in counts],
    )
    net = F.when(F.col("headlines") > 0, (F.col("up") - F.col("down")) / F.col("headlines"))
    judged = F.when(F.col("headlines") >= rules.min_headlines, F.abs(net))
    rising = net > 0
    return _signals(
        summed.withColumn("net", net),
        rule=F.lit(NEWS_SURGE),
        alert_key=key_column("province", "commodity"),
        at=day_start(F.col("date"), tz),
        severity=level(judged, rules.warning, rules.critical),
        value=F.col("net"),
        reference=F.col("headlines").cast("double"),
        region=F.col("province"),
        metric=F.lit("news_net_direction"),
        details=F.to_json(F.struct("headlines", "up", "down", "date")),
        fields=_fields(
            region=F.col("province"),
            commodity=F.col("commodity"),
            headlines=F.col("headlines"),
            window=F.lit(rules.window_days),
            share=F.abs(F.col("net")),
            direction_id=F.when(rising, "naik").otherwise("turun"),
            direction_en=F.when(rising, "rising").otherwise("falling"),
        ),
    )


def news_surge_alerts(
    signals: DataFrame, rules: NewsSurgeRules, conf: Conf, now: Column
) -> DataFrame:
    """The ``gold.alerts`` rows of ``news_surge`` signals: episodes and messages, made as
    ``alert_rows`` makes them for the other rules."""
    found = episodes(signals, {NEWS_SURGE: rules.cooldown_hours})
    return alert_rows(found, rules.messages(), conf, now)
