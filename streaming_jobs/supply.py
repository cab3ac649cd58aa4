"""Supply chain in the medallion — pure DataFrame → DataFrame functions (docs/supply.md).

Every record of the supply topic ends in exactly one place: ``silver.supply_stock`` (a valid
stock report), ``silver.shipments`` (a valid shipment report: the latest one per shipment is
kept), or ``silver.quarantine`` with the ids of the rules it broke:

- parsing: ``malformed_json``, ``schema_mismatch``, ``missing_field``;
- ``duplicate``: an ``event_id`` seen before (the first copy is judged, later ones quarantined);
- ``unknown_entity`` (the entity, origin or destination is not in the supply registry — it is
  never created), ``unknown_commodity``;
- ``negative_quantity`` (stock below 0), ``non_positive_quantity`` (a shipment of 0 or less),
  ``implausible_quantity`` (above ``supply.max_quantity`` of the entity's — the origin's — kind);
- ``arrival_before_departure``, ``expected_before_departure``, ``same_origin_destination``.
"""

from __future__ import annotations

import types
from typing import Union, get_args, get_origin

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.catalog.events import SCHEMA_VERSION, SUPPLY_EVENT_MODELS, spark_schema
from lakehouse.catalog.tables import GOLD_STOCK_DAILY, GOLD_SUPPLY_REGION_DAILY
from lakehouse.domain.supply_chain.supply import ROUTE_SEPARATOR
from lakehouse.io.spark import literal_map
from streaming_jobs.batch_values import batch_number

CORRUPT = "_corrupt_record"
LINEAGE = ("topic", "partition", "offset", "kafka_timestamp", "ingest_time")
COORDINATES = ("topic", "partition", "offset")
SECONDS_PER_HOUR = 3600.0


def supply_schema() -> T.StructType:
    """The union of the stock and shipment schemas, plus the corrupt-record column."""
    fields: dict[str, T.StructField] = {}
    for model in SUPPLY_EVENT_MODELS.values():
        for field in spark_schema(model).fields:
            fields.setdefault(field.name, field)
    return T.StructType([*fields.values(), T.StructField(CORRUPT, T.StringType(), True)])


def _wire_fields(model: type) -> list[str]:
    """The fields an event of ``model`` carries on the wire: every one not optional."""
    return [
        name
        for name, f in model.model_fields.items()
        if not (
            get_origin(f.annotation) in (Union, types.UnionType)
            and type(None) in get_args(f.annotation)
        )
    ]


def _verdict(rule: str, text: Column | str) -> Column:
    return F.struct(
        F.lit(rule).alias("rule"), (F.lit(text) if isinstance(text, str) else text).alias("text")
    )


def parse_supply(records: DataFrame) -> DataFrame:
    """Bronze rows (with ``first_copy``) → one row per record: its text (``raw``), the event's
    fields and, when it is no usable event, ``parse_error`` (a rule id) and ``error``."""
    parsed = records.select(
        *LINEAGE,
        "first_copy",
        F.col("value").alias("raw"),
        F.from_json("value", supply_schema(), {"columnNameOfCorruptRecord": CORRUPT}).alias("e"),
        F.from_json("value", "map<string,string>").isNotNull().alias("_is_object"),
    ).select(*LINEAGE, "first_copy", "raw", "_is_object", "e.*")
    missing = F.lit("")
    for event_type, model in SUPPLY_EVENT_MODELS.items():
        names = F.concat_ws(
            ", ", *[F.when(F.col(n).isNull(), F.lit(n)) for n in _wire_fields(model)]
        )
        missing = F.when(F.col("event_type") == event_type, names).otherwise(missing)
    verdict = (
        F.when(~F.col("_is_object"), _verdict("malformed_json", "not a JSON object"))
        .when(
            F.col(CORRUPT).isNotNull(),
            _verdict("schema_mismatch", "a field has the wrong type or format"),
        )
        .when(
            ~F.coalesce(F.col("event_type").isin(*SUPPLY_EVENT_MODELS), F.lit(False)),
            _verdict("missing_field", "event_type must be stock or shipment"),
        )
        .when(missing != "", _verdict("missing_field", F.concat(F.lit("missing: "), missing)))
        .when(
            F.col("schema_version") > SCHEMA_VERSION,
            _verdict(
                "schema_mismatch",
                F.concat(F.lit("unsupported schema_version "), F.col("schema_version")),
            ),
        )
    )
    return (
        parsed.withColumn("_verdict", verdict)
        .withColumn("parse_error", F.col("_verdict.rule"))
        .withColumn("error", F.col("_verdict.text"))
        .drop("_verdict", "_is_object", CORRUPT)
    )


def _lookup(entities: DataFrame, role: str) -> DataFrame:
    """The registry's entities with their columns prefixed ``role_``."""
    return F.broadcast(
        entities.select(
            F.col("entity_id").alias(f"{role}_id"),
            *[F.col(c).alias(f"{role}_{c}") for c in ("kind", "regency_code", "province")],
        )
    )


def validate_supply(
    parsed: DataFrame,
    entities: DataFrame,
    commodity_ids: list[str],
    max_quantity: dict[str, float],
) -> DataFrame:
    """``parse_supply`` rows with ``reasons`` (empty: valid), ``details`` and, for valid ones,
    the entity's (origin's, destination's) kind, regency and province from ``entities``
    (``entity_id``, ``kind``, ``regency_code``, ``province``: the registry)."""
    joined = (
        parsed.join(_lookup(entities, "entity"), "entity_id", "left")
        .join(_lookup(entities, "origin"), "origin_id", "left")
        .join(_lookup(entities, "destination"), "destination_id", "left")
    )
    stock = F.col("event_type") == "stock"
    shipment = F.col("event_type") == "shipment"
    kind = F.when(stock, F.col("entity_kind")).otherwise(F.col("origin_kind"))
    ceiling = literal_map(max_quantity)[kind]
    rules = F.array_compact(
        F.array(
            F.when(
                (stock & F.col("entity_kind").isNull())
                | (shipment & (F.col("origin_kind").isNull() | F.col("destination_kind").isNull())),
                "unknown_entity",
            ),
            F.when(~F.col("commodity").isin(*commodity_ids), "unknown_commodity"),
            F.when(stock & (F.col("quantity") < 0), "negative_quantity"),
            F.when(shipment & (F.col("quantity") <= 0), "non_positive_quantity"),
            F.when(F.col("quantity") > ceiling, "implausible_quantity"),
            F.when(
                shipment & (F.col("arrived_at") < F.col("departed_at")), "arrival_before_departure"
            ),
            F.when(
                shipment & (F.col("expected_at") < F.col("departed_at")),
                "expected_before_departure",
            ),
            F.when(
                shipment & (F.col("origin_id") == F.col("destination_id")),
                "same_origin_destination",
            ),
        )
    )
    return joined.withColumn(
        "reasons",
        F.when(~F.col("first_copy"), F.array(F.lit("duplicate")))
        .when(F.col("parse_error").isNotNull(), F.array("parse_error"))
        .otherwise(rules),
    ).withColumn(
        "details",
        F.map_filter(
            F.create_map(F.lit("quantity"), F.col("quantity"), F.lit("max_quantity"), ceiling),
            lambda _k, v: v.isNotNull(),
        ).cast("map<string,double>"),
    )


def _accepted(validated: DataFrame, event_type: str) -> DataFrame:
    return validated.where((F.size("reasons") == 0) & (F.col("event_type") == event_type))


def stock_rows(validated: DataFrame, batch_id: int) -> DataFrame:
    """The ``silver.supply_stock`` rows of a batch."""
    return _accepted(validated, "stock").select(
        "event_id",
        "entity_id",
        F.col("entity_kind").alias("kind"),
        F.col("entity_regency_code").alias("regency_code"),
        F.col("entity_province").alias("province"),
        "commodity",
        "quantity",
        "unit",
        "observed_at",
        "source",
        *LINEAGE,
        batch_number(batch_id).alias("silver_batch_id"),
    )


def _route(origin: Column, destination: Column) -> Column:
    return F.concat_ws(ROUTE_SEPARATOR, origin, destination)


def shipment_rows(validated: DataFrame, batch_id: int) -> DataFrame:
    """The ``silver.shipments`` rows of a batch: the latest valid report of each shipment in it
    (MERGEd where newer than the stored one)."""
    reports = _accepted(validated, "shipment").select(
        "shipment_id",
        "commodity",
        "quantity",
        "unit",
        "origin_id",
        "destination_id",
        F.col("origin_province"),
        F.col("destination_province"),
        _route(F.col("origin_regency_code"), F.col("destination_regency_code")).alias("route_id"),
        "departed_at",
        "expected_at",
        "arrived_at",
        "observed_at",
        "event_id",
        "source",
        "partition",
        "offset",
    )
    newest = Window.partitionBy("shipment_id").orderBy(
        F.col("observed_at").desc(), F.col("arrived_at").desc_nulls_last(), F.col("offset").desc()
    )
    return (
        reports.withColumn("_n", F.row_number().over(newest))
        .where("_n = 1")
        .drop("_n", "partition", "offset")
        .withColumn("silver_batch_id", batch_number(batch_id))
    )


def quarantine_rows(validated: DataFrame, batch_id: int) -> DataFrame:
    """The ``silver.quarantine`` rows of a batch (the shared quarantine: ``event_type`` stock
    or shipment, ``subject`` the commodity)."""
    return validated.where(F.size("reasons") > 0).select(
        "raw",
        *LINEAGE,
        F.col("event_id").cast("string"),
        "event_type",
        F.lit(None).cast("string").alias("market_id"),
        "source",
        F.lit(None).cast("string").alias("device_id"),
        F.col("commodity").alias("subject"),
        "observed_at",
        "reasons",
        "details",
        "error",
        F.col("ingest_time").alias("quarantined_at"),
        F.to_date("ingest_time").alias("quarantine_date"),
        batch_number(batch_id).alias("silver_batch_id"),
    )


# ---- gold ----------------------------------------------------------------------------------


def _hours(later: Column, earlier: Column) -> Column:
    return (F.unix_micros(later) - F.unix_micros(earlier)) / (SECONDS_PER_HOUR * 1e6)


def gold_shipments(shipments: DataFrame, as_of: Column, late_after_hours: float) -> DataFrame:
    """``silver.shipments`` rows → ``gold.shipments``: state and delay as of ``as_of`` (the
    stream's newest report time: in transit, a shipment's delay grows with it)."""
    end = F.coalesce(F.col("arrived_at"), as_of)
    delay = F.greatest(_hours(end, F.col("expected_at")), F.lit(0.0))
    return shipments.select(
        *[c for c in shipments.columns if c not in ("event_id", "source", "silver_batch_id")],
        F.when(F.col("arrived_at").isNull(), "in_transit").otherwise("arrived").alias("state"),
        (delay > late_after_hours).alias("late"),
        delay.alias("delay_hours"),
        _hours(F.col("expected_at"), F.col("departed_at")).alias("planned_hours"),
        as_of.cast("timestamp").alias("as_of"),
    )


def local_date(ts: Column, tz: str) -> Column:
    return F.to_date(F.from_utc_timestamp(ts, tz))


def stock_daily(
    stock: DataFrame, shipments: DataFrame, tz: str, cover_window_days: int
) -> DataFrame:
    """``silver.supply_stock`` rows (all of some entity × commodity pairs) and the shipments
    arriving there → ``gold.stock_daily``: the day's last stock, inflow, net flow, outflow =
    max(inflow − net flow, 0), its mean over the last ``cover_window_days`` days with a verdict
    and days of cover = stock / mean outflow."""
    daily = (
        stock.withColumn("date", local_date(F.col("observed_at"), tz))
        .groupBy("entity_id", "commodity", "date")
        .agg(
            F.max_by("quantity", F.struct("observed_at", "offset")).alias("stock"),
            F.first("kind").alias("kind"),
            F.first("regency_code").alias("regency_code"),
            F.first("province").alias("province"),
            F.count(F.lit(1)).alias("reports"),
        )
    )
    inflow = (
        shipments.where(F.col("arrived_at").isNotNull())
        .select(
            F.col("destination_id").alias("entity_id"),
            "commodity",
            local_date(F.col("arrived_at"), tz).alias("date"),
            "quantity",
        )
        .groupBy("entity_id", "commodity", "date")
        .agg(F.sum("quantity").alias("inflow"))
    )
    series = Window.partitionBy("entity_id", "commodity").orderBy("date")
    day_number = F.datediff(F.col("date"), F.lit("1970-01-01").cast("date"))
    window = (
        Window.partitionBy("entity_id", "commodity")
        .orderBy(day_number)
        .rangeBetween(-(cover_window_days - 1), 0)
    )
    net_flow = F.col("stock") - F.lag("stock").over(series)
    return (
        daily.join(inflow, ["entity_id", "commodity", "date"], "left")
        .withColumn("inflow", F.coalesce("inflow", F.lit(0.0)))
        .withColumn("net_flow", net_flow)
        .withColumn(  # none on an entity's first reported day (greatest() would skip the null)
            "outflow",
            F.when(
                F.col("net_flow").isNotNull(),
                F.greatest(F.col("inflow") - F.col("net_flow"), F.lit(0.0)),
            ),
        )
        .withColumn("mean_outflow", F.avg("outflow").over(window))
        .withColumn(
            "days_of_cover",
            F.when(F.col("mean_outflow") > 0, F.col("stock") / F.col("mean_outflow")),
        )
        .select(*GOLD_STOCK_DAILY.columns)
    )


def supply_region_daily(daily: DataFrame, shipments: DataFrame, tz: str) -> DataFrame:
    """``gold.stock_daily`` rows (all of some province × commodity pairs) and
    ``gold.shipments`` → ``gold.supply_region_daily``: per day the entities' stock, days of
    cover = stock / their mean outflow, the shipments to the province in transit at the day's
    end and, of those and the ones arrived that day, the late ones."""
    regions = daily.groupBy("date", "province", "commodity").agg(
        F.sum("stock").alias("stock"), F.sum("mean_outflow").alias("_outflow")
    )
    day_end = F.to_utc_timestamp(F.date_add(F.col("date"), 1).cast("timestamp"), tz)
    to_province = shipments.select(
        F.col("destination_province").alias("province"),
        "commodity",
        "departed_at",
        "expected_at",
        "arrived_at",
    )
    counted = (
        regions.select("date", "province", "commodity")
        .join(to_province, ["province", "commodity"])
        .withColumn("_end", day_end)
        .withColumn(
            "_in_transit",
            (F.col("departed_at") < F.col("_end"))
            & (F.col("arrived_at").isNull() | (F.col("arrived_at") >= F.col("_end"))),
        )
        .withColumn("_arrived_today", local_date(F.col("arrived_at"), tz) == F.col("date"))
        .withColumn(
            "_late",
            (F.col("_in_transit") & (F.col("expected_at") < F.col("_end")))
            | (
                F.coalesce("_arrived_today", F.lit(False))
                & (F.col("arrived_at") > F.col("expected_at"))
            ),
        )
        .groupBy("date", "province", "commodity")
        .agg(
            F.sum(F.col("_in_transit").cast("long")).alias("shipments_in_transit"),
            F.sum(F.col("_late").cast("long")).alias("shipments_late"),
        )
    )
    return (
        regions.join(counted, ["date", "province", "commodity"], "left")
        .withColumn(
            "days_of_cover", F.when(F.col("_outflow") > 0, F.col("stock") / F.col("_outflow"))
        )
        .withColumn(
            "shipments_in_transit", F.coalesce("shipments_in_transit", F.lit(0)).cast("long")
        )
        .withColumn("shipments_late", F.coalesce("shipments_late", F.lit(0)).cast("long"))
        .select(*GOLD_SUPPLY_REGION_DAILY.columns)
    )
