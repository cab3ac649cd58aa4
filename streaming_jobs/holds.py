"""Held prices — pure DataFrame → DataFrame functions.

A price that passed every hard rule but was quarantined by the statistical ones (``zscore``,
``iqr``, ``median_deviation``, ``cross_market``) is *held*, not binned: a real spike looks like a
data-entry error until a second report confirms it. A hold ends in one of these ways:

- **confirmed** (``released`` by ``rule:confirmation``): ``hold.confirm_reports`` other reports of
  the same market × commodity (any source) within ``hold.window_days`` of it are at its level
  (± ``hold.level_tolerance``), and none after it is back at the earlier level. The price is
  released into silver and gold recomputes what it touches;
- **not confirmed**: a later report is back at the earlier level first. The price stays held
  (an operator may still release it), its alert resolves "not confirmed";
- **reviewed**: an operator releases or rejects it (``POST /api/v1/quarantine/{event_id}/…``,
  through the reviews topic). A rejected price stays out for good.

Every decision is one row of ``silver.hold_decisions``; the hold's row in ``silver.holds`` keeps
its status and, for a replay of the batch that decided it, the status before (``as_of``).
Hard-rule failures are never held, so never released.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.events import HoldStatus, ReviewDecision, ReviewEvent, spark_schema
from lakehouse.rules import HoldRules

BY_RULE = "rule:confirmation"
#: an operator's decision as it travels on the reviews topic (``serving_api`` writes it)
REVIEW_SCHEMA = spark_schema(ReviewEvent)
#: what a review's decision makes of the hold
REVIEW_DECISIONS = {d.value: d.outcome.value for d in ReviewDecision}
_DECISION_COLUMNS = ("event_id", "decision", "decided_by", "note", "supports", "refutes")


def new_holds(
    prices: DataFrame, silver_columns: list[str], batch_id: int, now: datetime
) -> DataFrame:
    """The rows of ``silver.holds`` for a batch's judged prices (``hard_ok``, ``reasons``,
    ``details`` of ``silver.judged``) that the statistical rules quarantined: the
    ``silver_columns`` silver would have had, the reasons, the level before the move
    (``baseline``) and the move."""
    baseline = F.coalesce(
        F.col("details")["rolling_median"], F.col("details")["cross_market_median"]
    )
    return prices.where(F.col("hard_ok") & (F.size("reasons") > 0)).select(
        *silver_columns,
        F.col("reasons").alias("hold_reasons"),
        baseline.alias("baseline"),
        (F.col("price") / baseline - 1).alias("move"),
        F.lit(now).cast("timestamp").alias("held_at"),
        F.lit(batch_id).cast("bigint").alias("held_batch_id"),
        F.lit(HoldStatus.held.value).alias("status"),
        F.lit(None).cast("string").alias("previous_status"),
        F.lit(None).cast("bigint").alias("decided_batch_id"),
    )


def as_of(holds: DataFrame, batch_id: int) -> DataFrame:
    """``silver.holds`` as it stood before micro-batch ``batch_id``: a replay of a batch whose
    decisions were already committed sees what the first attempt saw, and decides the same."""
    decided_since = F.col("decided_batch_id") >= batch_id
    return holds.where(F.col("held_batch_id") < batch_id).withColumn(
        "status", F.when(decided_since, F.col("previous_status")).otherwise(F.col("status"))
    )


def confirmations(holds: DataFrame, points: DataFrame, rules: HoldRules) -> DataFrame:
    """Rule decisions on the ``held`` rows of ``holds`` from the points of their series
    (``points``: market_id, commodity, observed_at, event_id, value — the series state after
    the batch, held prices included): ``not_confirmed`` when a later report is back at the
    baseline, ``released`` when ``confirm_reports`` others are at the held level."""
    h, p = holds.where(F.col("status") == HoldStatus.held.value).alias("h"), points.alias("p")
    apart = F.abs(F.unix_seconds("p.observed_at") - F.unix_seconds("h.observed_at"))
    evidence = h.join(
        p,
        (F.col("p.market_id") == F.col("h.market_id"))
        & (F.col("p.commodity") == F.col("h.commodity"))
        & (F.col("p.event_id") != F.col("h.event_id"))
        & (apart <= int(rules.window_days * 86400)),
        "left",
    )
    tolerance = rules.level_tolerance
    at_level = F.abs(F.col("p.value") / F.col("h.price") - 1) <= tolerance
    back = (F.col("p.observed_at") > F.col("h.observed_at")) & (
        F.abs(F.col("p.value") / F.col("h.baseline") - 1) <= tolerance
    )
    counted = evidence.groupBy("h.event_id").agg(
        F.count(F.when(at_level, 1)).alias("supports"),
        F.count(F.when(back, 1)).alias("refutes"),
    )
    decision = F.when(F.col("refutes") > 0, HoldStatus.not_confirmed.value).when(
        F.col("supports") >= rules.confirm_reports, HoldStatus.released.value
    )
    note = F.when(
        F.col("refutes") > 0,
        F.lit("a later report came back to the level before the move"),
    ).otherwise(F.format_string("confirmed by %d reports at the new level", F.col("supports")))
    return counted.select(
        "event_id",
        decision.alias("decision"),
        F.lit(BY_RULE).alias("decided_by"),
        note.alias("note"),
        "supports",
        "refutes",
    ).where(F.col("decision").isNotNull())


def parse_reviews(records: DataFrame) -> DataFrame:
    """Reviews-topic records (``value`` text, Kafka coordinates) → the valid reviews, with
    ``valid`` false on a record that is not one (the API only writes valid ones)."""
    review = F.from_json("value", REVIEW_SCHEMA).alias("r")
    parsed = records.select("partition", "offset", review).select("partition", "offset", "r.*")
    valid = (
        F.col("target_event_id").isNotNull()
        & F.col("decision").isin(*REVIEW_DECISIONS)
        & F.col("reviewer").isNotNull()
    )
    return parsed.withColumn("valid", F.coalesce(valid, F.lit(False)))


def reviewed(holds: DataFrame, reviews: DataFrame) -> DataFrame:
    """Operators' decisions on reviewable holds; of several reviews of one hold in a batch the
    first requested wins; a review of a hold already released or rejected changes nothing."""
    first = Window.partitionBy("target_event_id").orderBy("requested_at", "partition", "offset")
    decision = F.create_map(*[F.lit(x) for kv in REVIEW_DECISIONS.items() for x in kv])
    return (
        reviews.where("valid")
        .withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .join(
            holds.where(F.col("status").isin(*HoldStatus.reviewable())).select(
                F.col("event_id").alias("target_event_id")
            ),
            "target_event_id",
            "left_semi",
        )
        .select(
            F.col("target_event_id").alias("event_id"),
            decision[F.col("decision")].alias("decision"),
            F.concat(F.lit("operator:"), F.col("reviewer")).alias("decided_by"),
            F.coalesce("note", F.lit("")).alias("note"),
            F.lit(None).cast("bigint").alias("supports"),
            F.lit(None).cast("bigint").alias("refutes"),
        )
    )


def decided(
    holds: DataFrame, by_rule: DataFrame, by_operator: DataFrame, batch_id: int, now: datetime
) -> DataFrame:
    """The batch's ``silver.hold_decisions`` rows: an operator's decision wins over the rule's
    on the same hold in the same batch."""
    decisions = by_operator.select(*_DECISION_COLUMNS).unionByName(
        by_rule.select(*_DECISION_COLUMNS).join(by_operator, "event_id", "left_anti")
    )
    return decisions.join(holds, "event_id").select(
        *_DECISION_COLUMNS,
        F.lit(now).cast("timestamp").alias("decided_at"),
        "market_id",
        "commodity",
        "region",
        "source",
        F.coalesce("device_id", F.lit("")).alias("device_id"),
        "price",
        "observed_at",
        "hold_reasons",
        "baseline",
        "move",
        "held_at",
        F.lit(batch_id).cast("bigint").alias("silver_batch_id"),
    )


def updated(holds: DataFrame, decisions: DataFrame, batch_id: int) -> DataFrame:
    """The ``silver.holds`` rows the decisions change (MERGEd on ``event_id``)."""
    return (
        holds.join(decisions.select("event_id", "decision"), "event_id")
        .withColumn("previous_status", F.col("status"))
        .withColumn("status", F.col("decision"))
        .withColumn("decided_batch_id", F.lit(batch_id).cast("bigint"))
        .drop("decision")
    )


def released(holds: DataFrame, decisions: DataFrame, silver_columns: list[str]) -> DataFrame:
    """The released holds as ``silver.prices`` rows (their statistical reasons kept as flags)."""
    return (
        holds.join(
            decisions.where(F.col("decision") == HoldStatus.released.value).select("event_id"),
            "event_id",
        )
        .withColumn("flags", F.array_distinct(F.concat("flags", "hold_reasons")))
        .select(*silver_columns)
    )
