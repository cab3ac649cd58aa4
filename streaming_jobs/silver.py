"""Silver: parse, validate and deduplicate bronze records — pure DataFrame → DataFrame functions.

Every Kafka record ends in exactly one place: ``silver.prices`` or ``silver.sensors`` (valid,
possibly carrying statistical flags), ``silver.quarantine`` (with the ids of the rules it broke
and their details), or the duplicate count (an ``event_id`` seen before:
``bronze.with_first_copies``).

Rule ids (the ``reasons`` of a quarantine row, or the ``flags`` of a silver row):

- parsing: ``malformed_json``, ``schema_mismatch``, ``missing_field``, ``producer_rejected``
  (a dead letter: the producer could not make an event of its input), ``not_reported`` (a dead
  letter for a report's empty, 0 or ``-`` price cell: not a price);
- hard rules, one of which quarantines: ``unknown_market``, ``unknown_commodity``,
  ``unit_mismatch``, ``non_positive_price``, ``price_out_of_range``, ``future_timestamp``,
  ``late`` (older than the retention), ``sensor_out_of_range``, ``sensor_zero``, ``sensor_jump``;
- statistical flags on prices, against the history of the same market × commodity: ``zscore``,
  ``iqr``, ``median_deviation``, ``cross_market`` (the median of the other markets of the region
  that day). Two or more flags — or a cross-market deviation above the strong threshold —
  quarantine; a single flag is kept in silver. Sensors: ``sensor_stuck`` (flag).

Thresholds: conf/quality.yaml.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Union, get_args, get_origin

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.events import EVENT_MODELS, NOT_REPORTED, SCHEMA_VERSION, spark_schema
from lakehouse.reference import commodities, markets, metric_ranges
from lakehouse.rules import QualityRules
from streaming_jobs import price_judge

CORRUPT = "_corrupt_record"
LINEAGE = ("topic", "partition", "offset", "kafka_timestamp", "ingest_time")


def event_schema() -> T.StructType:
    """The union of the event schemas (one struct parses every topic) plus the corrupt-record
    column from_json fills when a record does not match."""
    fields: dict[str, T.StructField] = {}
    for model in EVENT_MODELS.values():
        for field in spark_schema(model).fields:
            known = fields.setdefault(field.name, field)
            if known.dataType != field.dataType:
                raise TypeError(f"field {field.name} has two types across event schemas")
    return T.StructType([*fields.values(), T.StructField(CORRUPT, T.StringType(), True)])


def _required(model: type) -> list[str]:
    """Fields an event of ``model`` must carry on the wire (not optional in the schema)."""

    def optional(annotation: object) -> bool:
        return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(
            annotation
        )

    return [name for name, f in model.model_fields.items() if not optional(f.annotation)]


def local_date(ts: Column, tz: str) -> Column:
    return F.to_date(F.from_utc_timestamp(ts, tz))


def parse_events(
    bronze: DataFrame, topic_types: dict[str, str], deadletter_topic: str
) -> DataFrame:
    """Bronze rows → one row per record with its text (``raw``), the event's fields and, for
    records that are not a usable event, ``parse_error`` (a rule id) and ``error`` (in words).

    ``topic_types`` maps each event topic to the event type it carries."""
    parsed = bronze.select(
        *LINEAGE,
        F.col("value").alias("raw"),
        F.from_json("value", event_schema(), {"columnNameOfCorruptRecord": CORRUPT}).alias("e"),
        F.from_json("value", "map<string,string>").isNotNull().alias("_is_json_object"),
    ).select(*LINEAGE, "raw", "_is_json_object", "e.*")

    expected_type = F.lit(None).cast("string")
    for topic, event_type in topic_types.items():
        expected_type = F.when(F.col("topic") == topic, F.lit(event_type)).otherwise(expected_type)

    missing = F.lit("")
    for event_type, model in EVENT_MODELS.items():
        names = F.concat_ws(", ", *[F.when(F.col(n).isNull(), F.lit(n)) for n in _required(model)])
        missing = F.when(F.col("event_type") == event_type, names).otherwise(missing)

    rule_and_error = (
        F.when(
            F.col("topic") == deadletter_topic,
            F.struct(
                F.when(F.get_json_object("raw", "$.reason") == NOT_REPORTED, F.lit(NOT_REPORTED))
                .otherwise(F.lit("producer_rejected"))
                .alias("rule"),
                F.get_json_object("raw", "$.reason").alias("text"),
            ),
        )
        .when(
            ~F.col("_is_json_object"),
            F.struct(
                F.lit("malformed_json").alias("rule"), F.lit("not a JSON object").alias("text")
            ),
        )
        .when(
            F.col(CORRUPT).isNotNull(),
            F.struct(
                F.lit("schema_mismatch").alias("rule"),
                F.lit("a field has the wrong type or format").alias("text"),
            ),
        )
        .when(
            F.col("event_type").isNull() | expected_type.isNull(),
            F.struct(
                F.lit("missing_field").alias("rule"),
                F.lit("missing: event_type (or unknown topic)").alias("text"),
            ),
        )
        .when(
            F.col("event_type") != expected_type,
            F.struct(
                F.lit("schema_mismatch").alias("rule"),
                F.concat(
                    F.lit("event_type "), F.col("event_type"), F.lit(" on topic "), F.col("topic")
                ).alias("text"),
            ),
        )
        .when(
            missing != "",
            F.struct(
                F.lit("missing_field").alias("rule"),
                F.concat(F.lit("missing: "), missing).alias("text"),
            ),
        )
        .when(
            F.col("schema_version") > SCHEMA_VERSION,
            F.struct(
                F.lit("schema_mismatch").alias("rule"),
                F.concat(F.lit("unsupported schema_version "), F.col("schema_version")).alias(
                    "text"
                ),
            ),
        )
    )
    return (
        parsed.withColumn("_verdict", rule_and_error)
        .withColumn("parse_error", F.col("_verdict.rule"))
        .withColumn("error", F.col("_verdict.text"))
        .drop("_verdict", "_is_json_object", CORRUPT)
    )


def _reasons(*checks: tuple[str, Column]) -> Column:
    """Array of the rule ids whose condition holds (nulls count as not holding)."""
    return F.filter(
        F.array(*[F.when(cond, F.lit(rule)) for rule, cond in checks]), lambda r: r.isNotNull()
    )


def reference_frames(spark: SparkSession, rules: QualityRules) -> dict[str, DataFrame]:
    """Reference data of conf/ as small DataFrames for the validation joins."""
    market_rows = [(m.market_id, m.province) for m in markets().values()]
    commodity_rows = [(c.id, c.unit, c.min_price, c.max_price) for c in commodities().values()]
    unit_rows = [
        (unit, target, factor)
        for unit, targets in rules.units.items()
        for target, factor in targets.items()
    ]
    range_rows = [(m.value, r.min, r.max) for m, r in metric_ranges().items()]
    return {
        "markets": spark.createDataFrame(market_rows, "market_id string, province string"),
        "commodities": spark.createDataFrame(
            commodity_rows,
            "commodity string, catalogue_unit string, min_price double, max_price double",
        ),
        "units": spark.createDataFrame(
            unit_rows, "unit_key string, catalogue_unit string, factor double"
        ),
        "metric_ranges": spark.createDataFrame(
            range_rows, "metric string, min_value double, max_value double"
        ),
    }


def _time_rules(rules: QualityRules, now: datetime) -> list[tuple[str, Column]]:
    """``future_timestamp`` beyond the tolerance; ``late`` older than the retention. Anything in
    between is accepted, however far behind the newest event it is (backfills)."""
    hard = rules.hard
    future = F.col("observed_at") > F.lit(now + timedelta(seconds=hard.future_tolerance_seconds))
    late = F.col("observed_at") < F.lit(now - timedelta(days=hard.retention_days))
    return [("future_timestamp", future), ("late", late)]


def validate_prices(
    prices: DataFrame,
    ref: dict[str, DataFrame],
    rules: QualityRules,
    now: datetime,
) -> DataFrame:
    """Hard rules on parsed price events. Adds ``region`` (from the market when absent), the
    price converted to the catalogue unit, and ``hard_reasons``."""
    known_markets = ref["markets"].withColumn("_market_known", F.lit(True))
    known_commodities = ref["commodities"].withColumn("_commodity_known", F.lit(True))
    joined = (
        prices.join(F.broadcast(known_markets), "market_id", "left")
        .join(F.broadcast(known_commodities), "commodity", "left")
        .withColumn("unit_key", F.lower(F.trim("unit")))
        .join(F.broadcast(ref["units"]), ["unit_key", "catalogue_unit"], "left")
    )
    converted = F.col("price") * F.col("factor")
    return (
        joined.withColumn("reported_unit", F.col("unit"))
        .withColumn("region", F.coalesce("region", "province"))
        .withColumn(
            "hard_reasons",
            _reasons(
                ("unknown_market", F.col("_market_known").isNull()),
                ("unknown_commodity", F.col("_commodity_known").isNull()),
                (
                    "unit_mismatch",
                    F.col("_commodity_known").isNotNull() & F.col("factor").isNull(),
                ),
                ("non_positive_price", F.col("price") <= 0),
                (
                    "price_out_of_range",
                    (F.col("price") > 0)
                    & ((converted < F.col("min_price")) | (converted > F.col("max_price"))),
                ),
                *_time_rules(rules, now),
            ),
        )
        .withColumn("price", F.coalesce(converted, F.col("price")))
        .withColumn("unit", F.coalesce("catalogue_unit", "unit"))
        .drop("_market_known", "_commodity_known", "province", "unit_key", "factor")
        .drop("min_price", "max_price", "catalogue_unit")
    )


def price_statistics(
    candidates: DataFrame, history: DataFrame, rules: QualityRules, tz: str
) -> DataFrame:
    """Statistical verdicts on candidate prices against their series' history: ``event_id``,
    ``stat_flags`` (recorded on the row), ``stat_reasons`` (the flags again when they quarantine
    it, else empty) and ``details``, one row per candidate.

    ``history`` (event_id, market_id, commodity, region, observed_at, price) holds earlier prices
    that passed the hard rules. Each candidate is compared with the ``history_days`` before its
    own time (itself and same-second rows excluded), so the verdict does not depend on how the
    stream was cut into micro-batches:

    - ``zscore`` and ``iqr`` look at the *change* of a price against the median of the series'
      previous ``RECENT`` prices, scored against the changes in the history — a trend is not an
      outlier, an abrupt jump is, and the price after a spike is not flagged for coming back;
    - ``median_deviation`` compares the price level with the rolling median;
    - ``cross_market`` compares it with the median of the other markets of the region that day.

    The rules run in one pass per province × commodity (:func:`streaming_jobs.price_judge.judge`).
    """
    cols = ["event_id", "market_id", "commodity", "region", "observed_at", "price"]
    pool = history.select(*cols, F.lit(False).alias("_candidate")).unionByName(
        candidates.select(*cols, F.lit(True).alias("_candidate"))
    )
    return (
        pool.select(
            "event_id",
            "market_id",
            "commodity",
            "region",
            F.col("observed_at").cast("long").alias("_sec"),
            F.datediff(local_date(F.col("observed_at"), tz), F.lit("1970-01-01")).alias("_day"),
            F.col("price").cast("double").alias("price"),
            "_candidate",
        )
        .groupBy("region", "commodity")
        .applyInPandas(partial(price_judge.judge, rules=rules.prices), price_judge.VERDICT_SCHEMA)
    )


def validate_sensors(
    sensors: DataFrame,
    ref: dict[str, DataFrame],
    rules: QualityRules,
    now: datetime,
) -> DataFrame:
    """Hard rules on parsed sensor events; adds ``hard_reasons``."""
    known_markets = ref["markets"].select("market_id").withColumn("_market_known", F.lit(True))
    joined = sensors.join(F.broadcast(known_markets), "market_id", "left").join(
        F.broadcast(ref["metric_ranges"]), "metric", "left"
    )
    zero_metrics = [m.value for m in rules.sensors.impossible_zero]
    return joined.withColumn(
        "hard_reasons",
        _reasons(
            ("unknown_market", F.col("_market_known").isNull()),
            (
                "sensor_out_of_range",
                (F.col("value") < F.col("min_value")) | (F.col("value") > F.col("max_value")),
            ),
            ("sensor_zero", (F.col("value") == 0) & F.col("metric").isin(zero_metrics)),
            *_time_rules(rules, now),
        ),
    ).drop("_market_known", "min_value", "max_value")


def sensor_statistics(candidates: DataFrame, history: DataFrame, rules: QualityRules) -> DataFrame:
    """Per device × metric, against its latest readings (``history``: device_id, metric,
    observed_at, value): ``sensor_jump`` (far from the median of the previous readings — robust
    to a single spike) quarantines (``stat_reasons``), ``sensor_stuck`` (the same value N times
    in a row) flags (``stat_flags``)."""
    s = rules.sensors
    cols = ["event_id", "device_id", "metric", "observed_at", "value"]
    pool = (
        history.select(*cols)
        .withColumn("_candidate", F.lit(False))
        .unionByName(candidates.select(*cols).withColumn("_candidate", F.lit(True)))
    )
    order = Window.partitionBy("device_id", "metric").orderBy("observed_at", "event_id")
    previous = order.rowsBetween(-s.stuck_readings, -1)
    stuck_window = order.rowsBetween(-(s.stuck_readings - 1), 0)
    jump_limit = F.lit(None).cast("double")
    for metric, limit in s.max_jump.items():
        jump_limit = F.when(F.col("metric") == metric.value, F.lit(limit)).otherwise(jump_limit)
    stats = (
        pool.withColumn("_prev_median", F.percentile("value", 0.5).over(previous))
        .withColumn("_stuck_n", F.count("value").over(stuck_window))
        .withColumn("_stuck_distinct", F.size(F.collect_set("value").over(stuck_window)))
        .where("_candidate")
        .select(
            "event_id",
            _reasons(
                ("sensor_jump", F.abs(F.col("value") - F.col("_prev_median")) > jump_limit)
            ).alias("stat_reasons"),
            _reasons(
                (
                    "sensor_stuck",
                    (F.col("_stuck_n") == s.stuck_readings) & (F.col("_stuck_distinct") == 1),
                )
            ).alias("stat_flags"),
            F.map_filter(
                F.create_map(F.lit("previous_median"), F.col("_prev_median")),
                lambda _k, v: v.isNotNull(),
            ).alias("details"),
        )
    )
    return candidates.join(stats, "event_id", "left")


def no_reasons() -> Column:
    return F.array().cast("array<string>")


def no_details() -> Column:
    return F.create_map().cast("map<string,double>")


def quarantine_rows(
    parsed: DataFrame, prices: DataFrame, sensors: DataFrame, now: datetime, batch_id: int
) -> DataFrame:
    """The ``silver.quarantine`` rows of a batch: records that did not parse (``parsed`` rows
    with a ``parse_error``) and judged prices and sensor readings with reasons."""

    def rows(df: DataFrame, subject: Column, reasons: Column, error: Column) -> DataFrame:
        return df.select(
            "raw",
            *LINEAGE,
            "event_id",
            "event_type",
            "market_id",
            "source",
            "device_id",
            subject.alias("subject"),
            "observed_at",
            reasons.alias("reasons"),
            F.col("details") if "details" in df.columns else no_details().alias("details"),
            error.alias("error"),
        )

    no_error = F.lit(None).cast("string")
    judged_rows = [
        rows(df.where(F.size("reasons") > 0), F.col(subject), F.col("reasons"), no_error)
        for df, subject in ((prices, "commodity"), (sensors, "metric"))
    ]
    return (
        rows(
            parsed.where(F.col("parse_error").isNotNull()),
            F.coalesce("commodity", "metric"),
            F.array("parse_error"),
            F.col("error"),
        )
        .unionByName(judged_rows[0])
        .unionByName(judged_rows[1])
        .withColumn("quarantined_at", F.lit(now))
        .withColumn("quarantine_date", F.to_date(F.lit(now)))
        .withColumn("silver_batch_id", F.lit(batch_id).cast("bigint"))
    )


def judged(checked: DataFrame, statistics: Callable[[DataFrame], DataFrame]) -> DataFrame:
    """The verdict on validated events: rows that broke a hard rule are quarantined for it;
    the others get the statistical flags they carry and the reasons, if any, to quarantine.
    ``statistics`` maps the rows that passed the hard rules to their ``stat_flags``,
    ``stat_reasons`` and ``details``. Adds ``hard_ok``, ``flags``, ``reasons`` (empty:
    accepted) and ``details``."""
    checked = checked.withColumn("hard_ok", F.size("hard_reasons") == 0)
    stat = statistics(checked.where("hard_ok")).select(
        "event_id", "stat_flags", "stat_reasons", "details"
    )
    return (
        checked.join(stat, "event_id", "left")
        .withColumn("flags", F.coalesce("stat_flags", no_reasons()))
        .withColumn(
            "reasons",
            F.when(~F.col("hard_ok"), F.col("hard_reasons")).otherwise(
                F.coalesce("stat_reasons", no_reasons())
            ),
        )
        .withColumn("details", F.coalesce("details", no_details()))
        .drop("stat_flags", "stat_reasons")
    )
