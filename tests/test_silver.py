"""Silver rules on small frames (chispa): each rule, exact flags and quarantine reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.rules import quality_rules
from streaming_jobs import gold, series_state
from streaming_jobs.bronze import with_first_copies
from streaming_jobs.price_judge import percentile
from streaming_jobs.quality import batch_quality
from streaming_jobs.silver import (
    parse_events,
    price_statistics,
    reference_frames,
    sensor_statistics,
    validate_prices,
    validate_sensors,
)

TOPICS = {"market.prices": "price", "market.sensors": "sensor"}
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
BRONZE = (
    "topic string, partition int, offset long, kafka_timestamp timestamp, key string, "
    "value string, ingest_time timestamp, ingest_date date"
)


def price(event_id: str = "p1", **change) -> dict:
    return {
        "event_id": event_id, "schema_version": 1, "event_type": "price", "market_id": "IP-001",
        "commodity": "beras", "price": 14000.0, "unit": "kg", "source": "test",
        "observed_at": T0.isoformat(), "region": "DKI Jakarta", **change,
    }  # fmt: skip


def sensor(event_id: str = "s1", **change) -> dict:
    return {
        "event_id": event_id, "schema_version": 1, "event_type": "sensor", "market_id": "IP-001",
        "device_id": "IP-001-d1", "metric": "temperature_c", "value": 28.0, "source": "dev",
        "observed_at": T0.isoformat(), **change,
    }  # fmt: skip


def bronze(spark, records: list[tuple[str, str]]):
    rows = [
        (topic, 0, offset, T0, None, value, NOW, NOW.date())
        for offset, (topic, value) in enumerate(records)
    ]
    return spark.createDataFrame(rows, BRONZE)


@pytest.fixture(scope="module")
def ref(spark):
    return reference_frames(spark, quality_rules())


def test_parse_events_names_what_is_wrong(spark):
    records = [
        ("market.prices", json.dumps(price())),
        ("market.sensors", json.dumps(sensor())),
        ("market.prices", "{not json"),
        ("market.prices", json.dumps(price(price="cheap"))),
        ("market.prices", json.dumps({k: v for k, v in price().items() if k != "unit"})),
        ("market.deadletter", json.dumps({"reason": "row has 5 fields", "raw": "a;b"})),
        ("market.prices", json.dumps(sensor())),
        ("market.prices", json.dumps(price(schema_version=99))),
        ("market.prices", json.dumps({k: v for k, v in price().items() if k != "event_type"})),
        ("market.prices", json.dumps(price(surprise="new optional field"))),
    ]
    out = parse_events(bronze(spark, records), TOPICS, "market.deadletter")
    expected = spark.createDataFrame(
        [
            (0, None, None),
            (1, None, None),
            (2, "malformed_json", "not a JSON object"),
            (3, "schema_mismatch", "a field has the wrong type or format"),
            (4, "missing_field", "missing: unit"),
            (5, "producer_rejected", "row has 5 fields"),
            (6, "schema_mismatch", "event_type sensor on topic market.prices"),
            (7, "schema_mismatch", "unsupported schema_version 99"),
            (8, "missing_field", "missing: event_type (or unknown topic)"),
            (9, None, None),  # an unknown extra field does not break parsing
        ],
        "offset long, parse_error string, error string",
    )
    assert_df_equality(out.select("offset", "parse_error", "error"), expected, ignore_nullable=True)
    assert out.where("offset = 1").first().value == 28.0
    assert out.where("offset = 0").first().raw == records[0][1]


def test_first_copies_and_duplicate_counts(spark):
    records = bronze(
        spark,
        [("market.prices", json.dumps(price("a"))), ("market.prices", json.dumps(price("a"))),
         ("market.prices", json.dumps(price("b", source="feed-b"))), ("market.prices", "not json"),
         ("market.prices", "not json")],
    )  # fmt: skip
    tagged = with_first_copies(records, horizon_hours=1)
    firsts = tagged.where("first_copy")
    assert tagged.where("not first_copy").count() == 5  # every record stays in bronze
    assert sorted(r.offset for r in firsts.collect() if "a" in r.value[:20]) in ([0], [1])
    assert firsts.count() == 4  # a once, b, and each unparseable record (its own identity)

    parsed = parse_events(firsts, TOPICS, "market.deadletter")
    verdicts = parsed.where("parse_error is null").withColumn(
        "reasons", F.array().cast("array<string>")
    )
    quality = batch_quality(
        tagged, parsed, verdicts, verdicts.limit(0), None, batch_id=7, now=NOW
    ).select("source", "received", "accepted", "quarantined", "duplicates")
    expected = spark.createDataFrame(
        [("test", 2, 1, 0, 1), ("feed-b", 1, 1, 0, 0), ("market.prices", 2, 0, 2, 0)],
        quality.schema,
    )
    assert_df_equality(quality, expected, ignore_row_order=True, ignore_nullable=True)


def test_series_state_keeps_the_newest_points_and_what_a_replay_needs(spark):
    schema = "market_id string, commodity string, region string, observed_at timestamp, "
    schema += "event_id string, price double"
    points = [("IP-001", "beras", "DKI Jakarta", T0 + timedelta(days=d), f"e{d}", 100.0 + d)
              for d in range(5)]  # fmt: skip
    new = spark.createDataFrame(points[3:], schema)
    earlier = spark.createDataFrame(points[:3], schema)
    keys = ("market_id", "commodity")
    state = series_state.advanced(
        earlier, new, keys, ("region",), "price", 3, timedelta(days=30), batch_id=4
    )
    (row,) = state.collect()
    assert [p.event_id for p in row.points] == ["e2", "e3", "e4"]  # the newest three, in order
    assert row.silver_batch_id == 4 and row.region == "DKI Jakarta"

    stored = state.withColumn("previous", F.col("points")).withColumn(
        "points", F.array_remove("points", F.col("points")[0])
    )
    # batch 4 replayed after its own update was committed: it compares with ``previous``
    assert [r.event_id for r in series_state.history(stored, 4, keys, "price").collect()] == [
        "e2", "e3", "e4"
    ]  # fmt: skip
    # the next batch compares with ``points``
    assert [r.event_id for r in series_state.history(stored, 5, keys, "price").collect()] == [
        "e3", "e4"
    ]  # fmt: skip
    recent = series_state.advanced(
        earlier, new, keys, ("region",), "price", 10, timedelta(days=1), batch_id=4
    ).first()
    assert [p.event_id for p in recent.points] == ["e3", "e4"]  # none older than the horizon

    # a candidate whose day of history the state does not hold is a backfill (read from silver)
    history = series_state.history(state, 5, keys, "price")  # e2..e4, the state is full (3)
    candidates = spark.createDataFrame(
        [("IP-001", "beras", "DKI Jakarta", T0 + timedelta(days=d), f"c{d}", 100.0)
         for d in (2, 5)],
        schema,
    )  # fmt: skip
    late = series_state.uncovered(candidates, history, keys, 3, timedelta(days=1))
    assert [r.event_id for r in late.collect()] == ["c2"]  # needs day 1; the state starts at e2


def _parsed(spark, events: list[dict], topic: str = "market.prices"):
    records = [(topic, json.dumps(e)) for e in events]
    return parse_events(bronze(spark, records), TOPICS, "market.deadletter")


def test_hard_price_rules(spark, ref):
    retention = timedelta(days=quality_rules().hard.retention_days)
    late_time = (NOW - retention - timedelta(days=1)).isoformat()
    events = [
        price("ok"),
        price("grams", price=15.0, unit="g"),  # 15 IDR/g = 15 000 IDR/kg
        price("unknown-market", market_id="ZZ-404"),
        price("unknown-commodity", commodity="durian"),
        price("zero", price=0.0),
        price("absurd", price=9_999_999.0),
        price("wrong-unit", unit="liter"),
        price("future", observed_at=(NOW + timedelta(hours=1)).isoformat()),
        price("late", observed_at=late_time),
        price("backfill", observed_at=(NOW - timedelta(days=400)).isoformat()),
    ]
    out = validate_prices(_parsed(spark, events), ref, quality_rules(), NOW)
    expected = spark.createDataFrame(
        [("ok", []), ("grams", []), ("unknown-market", ["unknown_market"]),
         ("unknown-commodity", ["unknown_commodity"]), ("zero", ["non_positive_price"]),
         ("absurd", ["price_out_of_range"]), ("wrong-unit", ["unit_mismatch"]),
         ("future", ["future_timestamp"]), ("late", ["late"]),
         ("backfill", [])],  # far behind the newest event, within the retention
        "event_id string, hard_reasons array<string>",
    )  # fmt: skip
    assert_df_equality(
        out.select("event_id", "hard_reasons"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    normalised = spark.createDataFrame(
        [("ok", 14000.0, "kg", "DKI Jakarta"), ("grams", 15000.0, "kg", "DKI Jakarta")],
        "event_id string, price double, unit string, region string",
    )
    assert_df_equality(
        out.where("event_id in ('ok', 'grams')").select(*normalised.columns),
        normalised,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def _series(spark, market: str, days: int, level: float, start: datetime = T0):
    rows = [
        (f"{market}-{d}", market, "beras", "DKI Jakarta", start + timedelta(days=d),
         level * (1 + 0.001 * ((d % 3) - 1)))
        for d in range(days)
    ]  # fmt: skip
    return spark.createDataFrame(
        rows,
        "event_id string, market_id string, commodity string, region string, "
        "observed_at timestamp, price double",
    )


def test_price_statistics_flags_a_spike_and_not_a_calm_price(spark):
    rules = quality_rules()
    history = _series(spark, "IP-001", 20, 14000.0)
    for other, level in (("IP-003", 14200.0), ("IP-004", 13900.0), ("IP-005", 14100.0)):
        history = history.unionByName(_series(spark, other, 21, level))
    day = T0 + timedelta(days=20)
    candidates = spark.createDataFrame(
        [("spike", "IP-001", "beras", "DKI Jakarta", day, 31000.0),
         ("calm", "IP-001", "beras", "DKI Jakarta", day + timedelta(hours=1), 14010.0)],
        history.schema,
    )  # fmt: skip
    out = {
        r.event_id: r
        for r in price_statistics(candidates, history, rules, "Asia/Jakarta").collect()
    }
    spike, calm = out["spike"], out["calm"]
    assert spike.stat_flags == ["zscore", "iqr", "median_deviation", "cross_market"]
    assert spike.stat_reasons == spike.stat_flags
    assert spike.details["rolling_median"] == pytest.approx(14000.0, rel=0.01)
    assert spike.details["cross_market_median"] == pytest.approx(14100.0, rel=0.01)
    # the spike itself is in the history of the calm price; its median baseline shrugs it off
    assert calm.stat_flags == [] and calm.stat_reasons == []


def test_price_rules_percentiles_are_sparks(spark):
    """The price rules run in pandas (``price_judge``): their percentiles are Spark's."""
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 14000.0, 13999.5]
    quartiles = F.percentile("v", F.array(*[F.lit(q) for q in (0.25, 0.5, 0.75, 0.9)]))
    (expected,) = spark.createDataFrame([(v,) for v in values], "v double").agg(quartiles).first()
    ordered = np.sort(values)
    assert [percentile(ordered, q) for q in (0.25, 0.5, 0.75, 0.9)] == expected


def test_single_flag_is_kept_and_short_history_abstains(spark):
    rules = quality_rules()
    history = _series(spark, "IP-001", 20, 14000.0)
    for other in ("IP-003", "IP-004"):  # the region's other markets are much cheaper
        history = history.unionByName(_series(spark, other, 21, 9000.0))
    candidates = spark.createDataFrame(
        [("steady", "IP-001", "beras", "DKI Jakarta", T0 + timedelta(days=20), 14000.0)],
        history.schema,
    )
    (row,) = price_statistics(candidates, history, rules, "Asia/Jakarta").collect()
    assert row.stat_flags == ["cross_market"] and row.stat_reasons == []

    history = _series(spark, "IP-001", 3, 14000.0)  # fewer than min_history
    candidates = spark.createDataFrame(
        [("new", "IP-001", "beras", "DKI Jakarta", T0 + timedelta(days=3), 20000.0)],
        history.schema,
    )
    (row,) = price_statistics(candidates, history, rules, "Asia/Jakarta").collect()
    assert row.stat_flags == [] and row.stat_reasons == []
    assert row.details == {"history_n": 2.0}


def test_sensor_rules(spark, ref):
    rules = quality_rules()
    at = lambda minutes: (T0 + timedelta(minutes=minutes)).isoformat()  # noqa: E731
    events = [
        sensor("hot", value=75.0, observed_at=at(1)),
        sensor("zero", metric="humidity_pct", value=0.0, observed_at=at(2)),
        sensor("crowd-zero", metric="crowd_count", value=0.0, observed_at=at(3)),
        sensor("unknown", market_id="ZZ-404", observed_at=at(4)),
    ]
    out = validate_sensors(_parsed(spark, events, "market.sensors"), ref, rules, NOW)
    reasons = spark.createDataFrame(
        [("hot", ["sensor_out_of_range"]), ("zero", ["sensor_zero"]), ("crowd-zero", []),
         ("unknown", ["unknown_market"])],
        "event_id string, hard_reasons array<string>",
    )  # fmt: skip
    assert_df_equality(
        out.select("event_id", "hard_reasons"), reasons, ignore_row_order=True, ignore_nullable=True
    )

    history = spark.createDataFrame(
        [(f"h{i}", "d1", "temperature_c", T0 + timedelta(minutes=i), 28.0) for i in range(4)],
        "event_id string, device_id string, metric string, observed_at timestamp, value double",
    )
    candidates = spark.createDataFrame(
        [("stuck", "d1", "temperature_c", T0 + timedelta(minutes=4), 28.0),
         ("jump", "d1", "temperature_c", T0 + timedelta(minutes=5), 45.0),
         ("back", "d1", "temperature_c", T0 + timedelta(minutes=6), 28.5)],
        history.schema,
    )  # fmt: skip
    stats = spark.createDataFrame(
        [("stuck", ["sensor_stuck"], []), ("jump", [], ["sensor_jump"]),
         ("back", [], [])],
        "event_id string, stat_flags array<string>, stat_reasons array<string>",
    )  # fmt: skip
    assert_df_equality(
        sensor_statistics(candidates, history, rules).select(*stats.columns),
        stats,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_gold_price_daily_and_region(spark):
    rows = [
        ("IP-001", "beras", "DKI Jakarta", datetime(2025, 3, 1, 1), 100.0, 0),
        ("IP-001", "beras", "DKI Jakarta", datetime(2025, 3, 1, 5), 130.0, 1),
        ("IP-001", "beras", "DKI Jakarta", datetime(2025, 3, 1, 3), 90.0, 2),
        ("IP-003", "beras", "DKI Jakarta", datetime(2025, 3, 1, 2), 120.0, 3),
    ]
    prices = spark.createDataFrame(
        rows,
        "market_id string, commodity string, region string, observed_at timestamp, "
        "price double, offset long",
    ).withColumns({"topic": F.lit("market.prices"), "partition": F.lit(0)})
    daily = gold.price_daily(prices, "Asia/Jakarta")
    expected = spark.createDataFrame(
        [("IP-001", "beras", "DKI Jakarta", datetime(2025, 3, 1).date(), 100.0, 130.0, 90.0,
          130.0, 320.0 / 3, 3),
         ("IP-003", "beras", "DKI Jakarta", datetime(2025, 3, 1).date(), 120.0, 120.0, 120.0,
          120.0, 120.0, 1)],
        "market_id string, commodity string, region string, date date, open double, "
        "high double, low double, close double, mean double, count long",
    )  # fmt: skip
    assert_df_equality(
        daily.drop("last_observed_at"), expected, ignore_nullable=True, ignore_row_order=True
    )
    region = spark.createDataFrame(
        [("DKI Jakarta", "beras", datetime(2025, 3, 1).date(), 125.0, 120.0, 130.0, 10.0, 2)],
        "region string, commodity string, date date, median double, min double, max double, "
        "spread double, markets long",
    )
    assert_df_equality(
        gold.region_daily(daily).select(*region.columns), region, ignore_nullable=True
    )


def test_quality_daily_merges_reasons(spark):
    batches = spark.createDataFrame(
        [(datetime(2025, 3, 1).date(), "feed", "", 10, 7, 2, 1, 0, {"iqr": 1, "late": 1}, 1, 0),
         (datetime(2025, 3, 1).date(), "feed", "", 5, 4, 1, 0, 1, {"late": 1}, 0, 1)],
        "date date, source string, device_id string, received long, accepted long, "
        "quarantined long, duplicates long, late long, quarantined_by_reason map<string,bigint>, "
        "released long, rejected long",
    )  # fmt: skip
    (row,) = gold.quality_daily(batches).collect()
    counts = (row.received, row.accepted, row.quarantined, row.duplicates, row.late)
    assert counts == (15, 11, 3, 1, 1)
    assert (row.released, row.rejected) == (1, 1)
    assert row.quarantined_by_reason == {"iqr": 1, "late": 2}
