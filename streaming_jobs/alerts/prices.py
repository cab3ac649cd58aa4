"""The price rules' signals: a close against the median of the previous days, per market
(``price_spike``/``price_drop``) and per province (``region_move``); the forecasts' and the
surge model's warnings; the anomaly models' scores."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import AlertRules
from lakehouse.io.spark import literal_map
from streaming_jobs.alerts.signals import day_start, key_column, level, signal_fields, signal_rows


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
            signal_rows(
                judged,
                rule=F.lit(rule),
                alert_key=key_column("market_id", "commodity"),
                at=day_start(F.col("date"), tz),
                severity=level(F.col("change") * sign, r.warning, r.critical),
                value=F.col("close"),
                reference=F.col("reference"),
                metric=F.lit("price"),
                details=F.to_json(F.struct("change", "date")),
                fields=signal_fields(
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
    return signal_rows(
        per_day,
        rule=F.lit("region_move"),
        alert_key=key_column("region", "commodity"),
        at=day_start(F.col("date"), tz),
        severity=level(F.col("share"), r.warning, r.critical),
        value=F.col("share"),
        reference=F.col("median_change"),
        metric=F.lit("share_rising"),
        details=F.to_json(F.struct("markets", "rising", "median_change", "date")),
        fields=signal_fields(
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
    return signal_rows(
        joined,
        rule=F.lit("forecast_risk"),
        alert_key=key_column("market_id", "commodity"),
        at=day_start(F.col("origin_date"), tz),
        severity=level(F.col("change"), r.warning, r.critical),
        value=F.col("forecast"),
        reference=F.col("close"),
        metric=F.lit("forecast"),
        details=F.to_json(F.struct("change", "origin_date")),
        fields=signal_fields(
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
    return signal_rows(
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
        fields=signal_fields(
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
    return signal_rows(
        anomalies,
        rule=F.lit("anomaly_score"),
        alert_key=key_column("market_id", "commodity", "kind"),
        at=day_start(F.col("date"), tz),
        severity=level(F.col("score"), r.warning, r.critical),
        value=F.col("score"),
        reference=F.lit(r.warning),
        metric=F.col("kind"),
        details=F.to_json(F.struct("price", "explanation", "date")),
        fields=signal_fields(
            market=F.col("market_id"),
            commodity=F.col("commodity"),
            metric=F.col("kind"),
            value=F.col("score"),
        ),
    )
