"""Silver: parse, validate and judge the first copy of each record — pure DataFrame → DataFrame
functions, streaming or not.

Every Kafka record ends in exactly one place: ``silver.prices`` or ``silver.sensors`` (valid,
possibly carrying statistical flags), ``silver.quarantine`` (with the ids of the rules it broke
and their details), or the duplicate count (an ``event_id`` seen before:
``bronze.first_copies``).

Rule ids (the ``reasons`` of a quarantine row, or the ``flags`` of a silver row):

- parsing: ``malformed_json``, ``schema_mismatch``, ``missing_field``, ``producer_rejected``
  (a dead letter: the producer could not make an event of its input), ``not_reported`` (a dead
  letter for a report's empty, 0 or ``-`` price cell: not a price);
- hard rules, one of which quarantines: ``unknown_market``, ``unknown_commodity``,
  ``unit_mismatch``, ``non_positive_price``, ``price_out_of_range``, ``future_timestamp``,
  ``late`` (older than the retention), ``sensor_out_of_range``, ``sensor_zero``;
- statistical rules (``streaming_jobs.series_judge``), against the history of the same
  market × commodity: ``zscore``, ``iqr``, ``median_deviation``, ``cross_market`` (the median of
  the other markets of the province that day). Two or more flags — or a cross-market deviation
  above the strong threshold — quarantine (the price is *held*:
  ``lakehouse.domain.validation.holds``); a single flag is kept in silver. Sensors, per device ×
  metric: ``sensor_jump`` (quarantines), ``sensor_stuck`` (flags).

Thresholds: conf/quality.yaml. The hard rules are column expressions over the reference data of
``conf/`` (map lookups, no join), the price rules' conditions those of
``lakehouse.domain.validation.hard_rules`` (which the API's price check evaluates over numpy
arrays); the statistical ones run in the stateful step, one group per bucket of provinces ×
commodities (prices) or of markets (sensors) (``series_key``), with the series' history in Spark's
state."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Literal, Union, get_args, get_origin

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming.state import GroupStateTimeout

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import (
    EVENT_MODELS,
    NOT_REPORTED,
    SCHEMA_VERSION,
    ReviewEvent,
    spark_schema,
)
from lakehouse.catalog.rules import QualityRules
from lakehouse.domain.validation.hard_rules import (
    PriceTerms,
    price_rules,
    time_rules,
    unit_factors,
    window,
)
from lakehouse.domain.validation.holds import REVIEW_DECISIONS
from lakehouse.domain.validation.series_state import STATE_SCHEMA
from lakehouse.domain.validation.verdicts import FLAGS_MASK, REASONS_MASK
from lakehouse.io.spark import literal_map
from streaming_jobs import jvm_judge
from streaming_jobs.batch_values import batch_number, batch_time
from streaming_jobs.bronze import sender
from streaming_jobs.row_kinds import PASSED, RowKind, SeriesKey, SilverRows
from streaming_jobs.series_judge import KEY, VERDICT_DDL, SeriesJudge
from streaming_jobs.verdicts import details_map, ids_where, rule_ids

CORRUPT = "_corrupt_record"
LINEAGE = ("topic", "partition", "offset", "kafka_timestamp", "ingest_time")
#: an operator's decision as it travels on the reviews topic (``serving_api`` writes it)
REVIEW_SCHEMA = spark_schema(ReviewEvent)
REVIEW_PREFIX = "review_"
#: the columns the stateful step passes on only for the rows it does not judge (key ``x``)
PASSED_ONLY = ("raw", "parse_error", "error", "hard_reasons")


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


def _province_of(conf: Conf) -> Column:
    """The literal map of each market of ``conf`` to its province."""
    return literal_map({m.market_id: m.province for m in conf.markets.values()})


def parse_events(
    bronze: DataFrame,
    topic_types: dict[str, str],
    deadletter_topic: str,
    conf: Conf,
    reviews_topic: str | None = None,
) -> DataFrame:
    """Bronze rows → one row per record with its text (``raw``), the event's fields and, for
    records that are not a usable event, ``parse_error`` (a rule id) and ``error`` (in words).
    Records of ``reviews_topic`` are operators' reviews (``_kind`` ``review``, their fields
    prefixed ``review_`` and ``review_valid``), not events.

    ``topic_types`` maps each event topic to the event type it carries; a review must name a
    market of ``conf``."""
    is_review = F.lit(False) if reviews_topic is None else F.col("topic") == reviews_topic
    parsed = bronze.select(
        *LINEAGE,
        F.col("value").alias("raw"),
        F.from_json("value", event_schema(), {"columnNameOfCorruptRecord": CORRUPT}).alias("e"),
        F.from_json("value", "map<string,string>").isNotNull().alias("_is_json_object"),
        F.when(is_review, F.from_json("value", REVIEW_SCHEMA)).alias("_review"),
        F.when(is_review, RowKind.REVIEW.lit()).otherwise(RowKind.EVENT.lit()).alias("_kind"),
    ).select(*LINEAGE, "raw", "_is_json_object", "_review", "_kind", "e.*")

    expected_type = F.lit(None).cast("string")
    for topic, event_type in topic_types.items():
        expected_type = F.when(F.col("topic") == topic, F.lit(event_type)).otherwise(expected_type)

    missing = F.lit("")
    for event_type, model in EVENT_MODELS.items():
        names = F.concat_ws(", ", *[F.when(F.col(n).isNull(), F.lit(n)) for n in _required(model)])
        missing = F.when(F.col("event_type") == event_type, names).otherwise(missing)

    rule_and_error = (
        F.when(RowKind.REVIEW.of("_kind"), F.lit(None))
        .when(
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
    review = [
        F.col(f"_review.{f.name}").alias(f"{REVIEW_PREFIX}{f.name}") for f in REVIEW_SCHEMA.fields
    ]
    valid_review = (
        F.col("_review.target_event_id").isNotNull()
        & F.col("_review.decision").isin(*REVIEW_DECISIONS)
        & F.col("_review.reviewer").isNotNull()
        & F.col("_review.commodity").isNotNull()
        & _province_of(conf)[F.col("_review.market_id")].isNotNull()
    )
    return (
        parsed.withColumn("_verdict", rule_and_error)
        .withColumn("parse_error", F.col("_verdict.rule"))
        .withColumn("error", F.col("_verdict.text"))
        .select(
            "*",
            *review,
            F.coalesce(valid_review, F.lit(False)).alias(f"{REVIEW_PREFIX}valid"),
        )
        .drop("_verdict", "_is_json_object", "_review", CORRUPT)
    )


def _at(now: Column | datetime) -> Column:
    return now if isinstance(now, Column) else F.lit(now)


def _time_window(rules: QualityRules, now: Column | datetime) -> tuple[Column, Column]:
    """(latest, earliest) observation time the time rules accept (``hard_rules.window``)."""
    tolerance, retention = (
        F.expr(f"INTERVAL {int(span.total_seconds())} SECONDS") for span in window(rules)
    )
    return _at(now) + tolerance, _at(now) - retention


def validate_events(
    events: DataFrame, rules: QualityRules, conf: Conf, now: Column | datetime
) -> DataFrame:
    """Hard rules on parsed events (prices and sensor readings alike; ``now`` the batch's time;
    the markets, commodities and sensor ranges of ``conf``).
    Adds ``hard_reasons``; a price gets its ``region`` (from the market when absent), is
    converted to the catalogue unit and keeps the unit it came in as ``reported_unit``."""
    province = _province_of(conf)[F.col("market_id")]
    catalogue = conf.commodities.values()
    unit_of = literal_map({c.id: c.unit for c in catalogue})[F.col("commodity")]
    min_of = literal_map({c.id: c.min_price for c in catalogue})[F.col("commodity")]
    max_of = literal_map({c.id: c.max_price for c in catalogue})[F.col("commodity")]
    factor_of = literal_map(unit_factors(rules))[
        F.concat(F.lower(F.trim("unit")), F.lit("|"), unit_of)
    ]
    converted = F.col("price") * factor_of
    ranges = conf.metric_ranges
    low_of = literal_map({m.value: r.min for m, r in ranges.items()})[F.col("metric")]
    high_of = literal_map({m.value: r.max for m, r in ranges.items()})[F.col("metric")]
    zero_metrics = [m.value for m in rules.sensors.impossible_zero]
    latest, earliest = _time_window(rules, now)
    price_reasons = ids_where(
        *price_rules(
            PriceTerms(
                known_market=province.isNotNull(),
                known_commodity=unit_of.isNotNull(),
                known_unit=factor_of.isNotNull(),
                price=F.col("price"),
                converted=converted,
                min_price=min_of,
                max_price=max_of,
                observed_at=F.col("observed_at"),
                latest=latest,
                earliest=earliest,
            )
        )
    )
    sensor_reasons = ids_where(
        ("unknown_market", province.isNull()),
        ("sensor_out_of_range", (F.col("value") < low_of) | (F.col("value") > high_of)),
        ("sensor_zero", (F.col("value") == 0) & F.col("metric").isin(zero_metrics)),
        *time_rules(F.col("observed_at"), latest, earliest),
    )
    is_price = F.col("event_type") == "price"
    return (
        events.withColumn(
            "hard_reasons",
            F.when(is_price, price_reasons)
            .when(F.col("event_type") == "sensor", sensor_reasons)
            .otherwise(F.array().cast("array<string>")),
        )
        .withColumn("reported_unit", F.when(is_price, F.col("unit")))
        .withColumn("region", F.when(is_price, F.coalesce("region", province)))
        .withColumn("price", F.coalesce(converted, F.col("price")))
        .withColumn("unit", F.when(is_price, F.coalesce(unit_of, "unit")).otherwise(F.col("unit")))
    )


def series_group(conf: Conf) -> Column:
    """The province × commodity (``_group``) of a price that passed the hard rules, or of the
    held price a review names: the markets its prices are compared with."""
    province = _province_of(conf)
    review = RowKind.REVIEW.of("_kind")
    market = F.when(review, F.col(f"{REVIEW_PREFIX}market_id")).otherwise(F.col("market_id"))
    commodity = F.when(review, F.col(f"{REVIEW_PREFIX}commodity")).otherwise(F.col("commodity"))
    return F.concat_ws("|", province[market], commodity)


def series_key(buckets: int) -> Column:
    """The group of a validated row in the stateful step (``series_judge``): the bucket of its
    province × commodity (``_group``) for a price that passed the hard rules and for a valid
    review, the bucket of its market for a sensor reading that passed them, ``x`` for anything
    else. The key names the count of buckets too: with another count the series' history
    starts again in new keys, it is never split across them."""
    passed = F.col("parse_error").isNull() & (F.size("hard_reasons") == 0)
    event = RowKind.EVENT.of("_kind") & passed

    def bucket(series: SeriesKey, of: Column) -> Column:  # "p|3/16": another count, other keys
        number = F.pmod(F.xxhash64(of), F.lit(buckets)).cast("string")
        return F.concat(F.lit(f"{series.value}|"), number, F.lit(f"/{buckets}"))

    return (
        F.when(
            (RowKind.REVIEW.of("_kind") & F.col(f"{REVIEW_PREFIX}valid"))
            | (event & (F.col("event_type") == "price")),
            bucket(SeriesKey.PRICE, F.col("_group")),
        )
        .when(
            event & (F.col("event_type") == "sensor"), bucket(SeriesKey.SENSOR, F.col("market_id"))
        )
        .otherwise(F.lit(PASSED))
    )


def judge(
    validated: DataFrame,
    rules: QualityRules,
    conf: Conf,
    tz: str,
    buckets: int,
    engine: Literal["python", "jvm"] = "python",
) -> DataFrame:
    """Validated first copies (``validate_events`` of ``parse_events``), streaming → the same
    rows with their verdicts — ``flags``, ``reasons`` (empty: accepted) and ``details`` — and
    the rows of the decisions on held prices (``kind``: see ``series_judge``). The statistical
    rules compare with the series' history in the query's state, in pandas (``series_judge``)
    or, ``engine`` ``jvm``, in the JVM (``jvm_judge``: the same verdicts); the provinces of the
    markets come from ``conf``."""
    keyed = validated.withColumn("_group", series_group(conf)).withColumn(KEY, series_key(buckets))
    passed = F.col(KEY) == PASSED
    # what only a row decided before the step needs crosses to pandas as null for the others
    # (a column of Python objects is the dearest part of the crossing): the record's text (a
    # judged row that ends in quarantine gets it back from its record: ``with_raw``), why it
    # failed to parse or broke a hard rule
    prepared = keyed.select(
        *[
            F.when(passed, F.col(c)).alias(c) if c in PASSED_ONLY else F.col(c)
            for c in keyed.columns
        ],
        F.unix_seconds("observed_at").alias("_sec"),
        F.datediff(local_date(F.col("observed_at"), tz), F.lit("1970-01-01")).alias("_day"),
    )
    # nested values cross to pandas as JSON text (one string per row, not Python objects)
    nested = {
        f.name: f.dataType
        for f in prepared.schema.fields
        if isinstance(f.dataType, T.MapType | T.StructType | T.ArrayType)
    }
    prepared = prepared.select(
        *[F.to_json(c).alias(c) if c in nested else F.col(c) for c in prepared.columns]
    )
    verdicts = prepared.sparkSession.createDataFrame([], VERDICT_DDL).schema
    output = T.StructType([f for f in prepared.schema.fields if f.name != KEY] + verdicts.fields)
    if engine == "jvm":
        judged = jvm_judge.judge(prepared, KEY, output, rules)
    else:
        judged = prepared.groupBy(KEY).applyInPandasWithState(
            SeriesJudge(rules, output),
            output,
            STATE_SCHEMA,
            "append",
            GroupStateTimeout.NoTimeout,
        )
    judged = judged.select(
        *[F.from_json(c, nested[c]).alias(c) if c in nested else F.col(c) for c in judged.columns]
    ).withColumn("hard_reasons", F.coalesce("hard_reasons", F.array().cast("array<string>")))
    reasons = (
        F.when(F.col("parse_error").isNotNull(), F.array("parse_error"))
        .when(F.size("hard_reasons") > 0, F.col("hard_reasons"))
        .otherwise(rule_ids(F.col(REASONS_MASK)))
    )
    return judged.select(
        *judged.columns,
        # who sent it: an event's own fields, or for a record decided before the step its text
        # (both read as ``bronze.sender`` reads the record)
        F.when(F.col("raw").isNotNull(), sender("raw")[0])
        .otherwise(F.coalesce("source", "topic"))
        .alias("q_source"),
        F.when(F.col("raw").isNotNull(), sender("raw")[1])
        .otherwise(F.coalesce("device_id", F.lit("")))
        .alias("q_device"),
        rule_ids(F.col(FLAGS_MASK)).alias("flags"),
        reasons.alias("reasons"),
        details_map().alias("details"),
        rule_ids(F.col("hold_reasons_mask")).alias("hold_reasons"),
        local_date(F.col("observed_at"), tz).alias("observed_date"),
        batch_time().alias("batch_time"),  # streaming: the micro-batch's time
    )


PRICE_COLUMNS = (
    "event_id",
    "market_id",
    "commodity",
    "region",
    "price",
    "unit",
    "reported_unit",
    "observed_at",
    "source",
    "device_id",
    "attributes",
    "schema_version",
)
SENSOR_COLUMNS = (
    "event_id",
    "market_id",
    "device_id",
    "metric",
    "value",
    "observed_at",
    "source",
    "schema_version",
)


def event_columns(event_type: str, kept: tuple[str, ...]) -> list[str]:
    """The columns silver keeps of an event: ``kept``, then any other field of the event model,
    so that an optional field added to the model flows into silver without a rewrite (the
    append adds the new column to the table's schema; older rows read it as null)."""
    model = EVENT_MODELS[event_type]
    return [*kept, *(f for f in model.model_fields if f not in kept and f != "event_type")]


def _silver_columns(event_type: str, kept: tuple[str, ...]) -> list[str]:
    """The columns of a silver row of ``event_type`` (``silver_batch_id`` aside)."""
    return [*event_columns(event_type, kept), "flags", "details", *LINEAGE, "observed_date"]


def price_columns() -> list[str]:
    """The columns of a ``silver.prices`` row (``silver_batch_id`` aside) — also what a held
    price keeps in ``silver.holds`` until it is released."""
    return _silver_columns("price", PRICE_COLUMNS)


def sensor_columns() -> list[str]:
    """The columns of a ``silver.sensors`` row (``silver_batch_id`` aside)."""
    return _silver_columns("sensor", SENSOR_COLUMNS)


def _batch(batch_id: int) -> Column:
    return batch_number(batch_id).alias("silver_batch_id")


def _accepted_events(rows: SilverRows, event_type: str) -> DataFrame:
    return rows.events.where(
        F.col("parse_error").isNull()
        & (F.col("event_type") == event_type)
        & (F.size("reasons") == 0)
    )


def accepted_prices(rows: SilverRows, batch_id: int) -> DataFrame:
    """The ``silver.prices`` rows of a batch: its accepted prices and the held ones released."""
    return (
        _accepted_events(rows, "price")
        .unionByName(rows.releases)
        .select(*price_columns(), _batch(batch_id))
    )


def accepted_sensors(rows: SilverRows, batch_id: int) -> DataFrame:
    """The ``silver.sensors`` rows of a batch."""
    return _accepted_events(rows, "sensor").select(*sensor_columns(), _batch(batch_id))


def with_raw(rows: SilverRows) -> DataFrame:
    """A batch's judged events that ended in quarantine (``reasons``), with the text of their
    record (``raw``): a row the stateful step judged crossed it without (``PASSED_ONLY``); it
    is found again among the batch's records by its Kafka coordinates — few rows, broadcast."""
    quarantined = rows.events.where(F.size("reasons") > 0)
    coordinates = ["topic", "partition", "offset"]
    judged = quarantined.where(F.col("raw").isNull()).drop("raw")
    texts = rows.records.select(*coordinates, "raw")
    return quarantined.where(F.col("raw").isNotNull()).unionByName(
        texts.join(F.broadcast(judged), coordinates).select(*quarantined.columns)
    )


def quarantine_rows(rows: SilverRows, batch_id: int) -> DataFrame:
    """The ``silver.quarantine`` rows of a batch: records that did not parse, and events with
    reasons (hard rules, statistical quarantines — held prices among them)."""
    return with_raw(rows).select(
        "raw",
        *LINEAGE,
        "event_id",
        "event_type",
        "market_id",
        "source",
        "device_id",
        F.coalesce("commodity", "metric").alias("subject"),
        "observed_at",
        "reasons",
        "details",
        "error",
        F.col("batch_time").alias("quarantined_at"),
        F.to_date("batch_time").alias("quarantine_date"),
        _batch(batch_id),
    )


HOLD_COLUMNS = ("hold_reasons", "baseline", "move", "held_at")


def hold_changes(rows: SilverRows, batch_id: int) -> DataFrame:
    """The ``silver.holds`` rows a batch writes: its new holds (whatever their status) and the
    holds it decided (MERGEd on ``event_id``: a decision changes only the status columns)."""
    return rows.holds.select(
        *price_columns(),
        *HOLD_COLUMNS,
        batch_number(batch_id).alias("held_batch_id"),
        "status",
        "previous_status",
        F.when(F.col("decided"), batch_number(batch_id)).alias("decided_batch_id"),
    )


def hold_decisions(rows: SilverRows, batch_id: int) -> DataFrame:
    """The ``silver.hold_decisions`` rows of a batch."""
    return rows.decisions.select(
        "event_id",
        "decision",
        "decided_by",
        F.col("decision_note").alias("note"),
        "supports",
        "refutes",
        F.col("batch_time").alias("decided_at"),
        "market_id",
        "commodity",
        "region",
        "source",
        F.coalesce("device_id", F.lit("")).alias("device_id"),
        "price",
        "observed_at",
        *HOLD_COLUMNS,
        _batch(batch_id),
    )
