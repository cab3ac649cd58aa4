"""The ``news_surge`` rule: many recent headlines about a commodity one way."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import NEWS_SURGE, NewsSurgeRules
from lakehouse.catalog.conf import Conf
from streaming_jobs.alerts.episodes import episodes
from streaming_jobs.alerts.messages import alert_rows
from streaming_jobs.alerts.signals import day_start, key_column, level, signal_fields, signal_rows


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
    return signal_rows(
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
        fields=signal_fields(
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
