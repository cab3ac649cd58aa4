"""The supply chain's rules: ``stock_cover_low``, ``shipment_late``, ``route_delay``."""

from __future__ import annotations

from typing import Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import SupplyAlertRules
from streaming_jobs.alerts.signals import day_start, key_column, level, signal_fields, signal_rows


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
    return signal_rows(
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
        fields=signal_fields(
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
    fields = signal_fields(
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
    due = signal_rows(
        shipments,
        at=F.col("expected_at"),
        severity=level(delay, rule.warning, rule.critical),
        **common,
    )
    arrived = signal_rows(
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
    return signal_rows(
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
        fields=signal_fields(
            route=F.col("route_id"),
            value=F.col("recent"),
            reference=F.col("usual"),
        ),
    )
