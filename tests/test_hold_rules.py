"""The hold rules on small frames (chispa): confirmation, not confirmed, operators' reviews, what
a replay sees, what a release writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.rules import quality_rules
from streaming_jobs import holds

T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 10, tzinfo=UTC)
HOLD = (
    "event_id string, market_id string, commodity string, region string, source string, "
    "device_id string, price double, observed_at timestamp, flags array<string>, "
    "hold_reasons array<string>, baseline double, move double, held_at timestamp, "
    "held_batch_id bigint, status string, previous_status string, decided_batch_id bigint"
)
POINTS = "market_id string, commodity string, observed_at timestamp, event_id string, value double"
RULES = quality_rules().hold


def hold(event_id: str, market: str, day: int, status: str = "held", **change) -> tuple:
    row = {
        "event_id": event_id, "market_id": market, "commodity": "cabai_merah",
        "region": "DKI Jakarta", "source": "test", "device_id": None, "price": 90000.0,
        "observed_at": T0 + timedelta(days=day), "flags": [], "hold_reasons": ["iqr", "zscore"],
        "baseline": 50000.0, "move": 0.8, "held_at": NOW, "held_batch_id": 3, "status": status,
        "previous_status": None, "decided_batch_id": None, **change,
    }  # fmt: skip
    return tuple(row.values())


def point(market: str, day: int, value: float, event_id: str) -> tuple:
    return (market, "cabai_merah", T0 + timedelta(days=day), event_id, value)


def test_two_reports_at_the_new_level_confirm_one_back_refutes(spark):
    held = spark.createDataFrame(
        [hold("a", "IP-001", 14), hold("b", "IP-003", 14), hold("c", "IP-004", 14)], HOLD
    )
    points = spark.createDataFrame(
        [
            point("IP-001", 14, 90000.0, "a"),  # itself: not evidence
            point("IP-001", 15, 91000.0, "a2"),
            point("IP-001", 16, 88000.0, "a3"),
            point("IP-001", 30, 90000.0, "far"),  # outside the window
            point("IP-003", 15, 50500.0, "b2"),  # back at the old level
            point("IP-003", 16, 90000.0, "b3"),
            point("IP-004", 15, 90000.0, "c2"),  # one report only: not yet
            point("IP-004", 13, 50000.0, "c0"),  # the old level, but before: not a refutation
        ],
        POINTS,
    )
    decided = holds.confirmations(held, points, RULES).select(
        "event_id", "decision", "supports", "refutes"
    )
    expected = spark.createDataFrame(
        [("a", "released", 2, 0), ("b", "not_confirmed", 1, 1)],
        "event_id string, decision string, supports long, refutes long",
    )
    assert_df_equality(decided, expected, ignore_row_order=True, ignore_nullable=True)


def test_reviews_first_wins_and_only_reviewable_holds(spark):
    held = spark.createDataFrame(
        [
            hold("a", "IP-001", 14),
            hold("b", "IP-003", 14, status="not_confirmed"),
            hold("c", "IP-004", 14, status="rejected"),
        ],
        HOLD,
    )
    at = NOW + timedelta(minutes=1)
    records = spark.createDataFrame(
        [
            (0, 1, f'{{"event_id":"r1","target_event_id":"a","decision":"reject","note":"typo",'
             f'"reviewer":"ops","requested_at":"{at.isoformat()}"}}'),
            (0, 2, f'{{"event_id":"r2","target_event_id":"a","decision":"release","note":"ok",'
             f'"reviewer":"ops","requested_at":"{(at + timedelta(seconds=5)).isoformat()}"}}'),
            (0, 3, f'{{"event_id":"r3","target_event_id":"b","decision":"release",'
             f'"reviewer":"lead","requested_at":"{at.isoformat()}"}}'),
            (0, 4, f'{{"event_id":"r4","target_event_id":"c","decision":"release",'
             f'"reviewer":"ops","requested_at":"{at.isoformat()}"}}'),
            (0, 5, '{"event_id":"r5","target_event_id":"a","decision":"maybe"}'),
        ],
        "partition int, offset long, value string",
    )  # fmt: skip
    reviews = holds.parse_reviews(records)
    assert reviews.where(~F.col("valid")).count() == 1
    decided = holds.reviewed(held, reviews).select("event_id", "decision", "decided_by", "note")
    expected = spark.createDataFrame(
        [("a", "rejected", "operator:ops", "typo"), ("b", "released", "operator:lead", "")],
        "event_id string, decision string, decided_by string, note string",
    )
    assert_df_equality(decided, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_replay_sees_the_holds_as_before_its_batch(spark):
    stored = spark.createDataFrame(
        [
            hold("a", "IP-001", 14, status="released", previous_status="held", decided_batch_id=7),
            hold("b", "IP-003", 14, status="rejected", previous_status="not_confirmed",
                 decided_batch_id=5),
            hold("c", "IP-004", 14, held_batch_id=7),  # held by the batch itself
        ],
        HOLD,
    )  # fmt: skip
    seen = holds.as_of(stored, 7).select("event_id", "status")
    expected = spark.createDataFrame(
        [("a", "held"), ("b", "rejected")], "event_id string, status string"
    )
    assert_df_equality(seen, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_release_is_a_silver_row_and_a_status_change(spark):
    held = spark.createDataFrame([hold("a", "IP-001", 14, flags=["cross_market"])], HOLD)
    decision = (
        "event_id string, decision string, decided_by string, note string, supports long, "
        "refutes long"
    )
    by_rule = spark.createDataFrame([], decision)
    by_operator = spark.createDataFrame(
        [("a", "released", "operator:ops", "ok", None, None)], decision
    )
    decisions = holds.decided(held, by_rule, by_operator, 9, NOW)
    row = decisions.first()
    assert (row.decision, row.decided_by, row.silver_batch_id, row.move) == (
        "released", "operator:ops", 9, 0.8,
    )  # fmt: skip
    silver = holds.released(held, decisions, ["event_id", "price", "flags"]).first()
    assert (silver.event_id, silver.price) == ("a", 90000.0)
    assert sorted(silver.flags) == ["cross_market", "iqr", "zscore"]
    changed = holds.updated(held, decisions, 9).first()
    assert (changed.status, changed.previous_status, changed.decided_batch_id) == (
        "released", "held", 9,
    )  # fmt: skip
