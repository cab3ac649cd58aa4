"""Silver rules on small frames (chispa for Spark's, pandas for the statistical judges): each
rule, exact flags and quarantine reasons."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.catalog.tables import GOLD_DATA_QUALITY_DAILY, GOLD_PRICE_DAILY
from lakehouse.domain.validation import price_judge
from lakehouse.domain.validation.price_judge import percentile, row_percentiles
from lakehouse.domain.validation.series_state import (
    PRICE_SERIES,
    Window,
    newest_points,
    series_anchors,
    series_codes,
)
from lakehouse.domain.validation.verdicts import DETAILS, STAT_RULES, detail_column
from lakehouse.io.delta_io import SparkLake
from streaming_jobs import gold, sensor_judge
from streaming_jobs.bronze import first_copies, sender
from streaming_jobs.quality import batch_quality
from streaming_jobs.silver import parse_events, validate_events
from tests.conftest import isolated
from tests.shipped import SHIPPED
from tests.silver_samples import NOW, T0, TOPICS, bronze, price, sensor


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
    out = parse_events(bronze(spark, records), TOPICS, "market.deadletter", SHIPPED)
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
    firsts = first_copies(records, horizon_hours=1)
    assert sorted(r.offset for r in firsts.collect() if "a" in r.value[:20]) in ([0], [1])
    assert firsts.count() == 4  # a once, b, and each unparseable record (its own identity)

    parsed = parse_events(firsts, TOPICS, "market.deadletter", SHIPPED).select("*", *sender("raw"))
    judged = parsed.select(
        "*",
        F.lit("event").alias("kind"),
        F.when(F.col("parse_error").isNotNull(), F.array("parse_error"))
        .otherwise(F.array().cast("array<string>"))
        .alias("reasons"),
        F.lit(None).cast("string").alias("decision"),
        F.lit(NOW).alias("batch_time"),
    )
    every = records.select(F.lit("record").alias("kind"), "*", *sender())
    batch = every.unionByName(judged, allowMissingColumns=True)
    quality = batch_quality(batch, "market.reviews", batch_id=7).select(
        "source", "received", "accepted", "quarantined", "duplicates"
    )
    expected = spark.createDataFrame(
        [("test", 2, 1, 0, 1), ("feed-b", 1, 1, 0, 0), ("market.prices", 2, 0, 2, 0)],
        quality.schema,
    )
    assert_df_equality(quality, expected, ignore_row_order=True, ignore_nullable=True)


def _points(rows: list[tuple[str, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["market_id", "_sec", "event_id", "price"]).assign(
        commodity="beras"
    )


def test_series_state_keeps_the_newest_points_and_a_backfills_past():
    day = 86400
    points = _points([("IP-001", d * day, f"e{d}", 100.0 + d) for d in range(10)])
    series = series_codes(points, PRICE_SERIES)
    newest = series_anchors(series, points["_sec"].to_numpy())

    def kept(*windows: Window, frame: pd.DataFrame = points) -> list[str]:
        codes = series_codes(frame, PRICE_SERIES)
        return list(newest_points(frame, codes, list(windows))["event_id"])

    assert kept(Window(newest, 3, 30 * day)) == ["e7", "e8", "e9"]  # the newest three, in order
    assert kept(Window(newest, 10, 1.5 * day)) == ["e8", "e9"]  # none older than the horizon
    # a backfill's batch ends at day 4: its own recent past is kept beside the live one
    backfill = series_anchors(series[:5], points["_sec"].to_numpy()[:5])
    assert kept(Window(newest, 2, 30 * day), Window(backfill, 2, 30 * day)) == [
        "e3", "e4", "e8", "e9",
    ]  # fmt: skip
    twice = pd.concat([points, points.tail(1)], ignore_index=True)  # a point seen twice: once
    assert kept(Window(newest, 5, 30 * day), frame=twice) == ["e5", "e6", "e7", "e8", "e9"]


def _parsed(spark, events: list[dict], topic: str = "market.prices"):
    records = [(topic, json.dumps(e)) for e in events]
    return parse_events(bronze(spark, records), TOPICS, "market.deadletter", SHIPPED)


def test_hard_price_rules(spark):
    retention = timedelta(days=SHIPPED.quality.hard.retention_days)
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
    out = validate_events(_parsed(spark, events), SHIPPED.quality, SHIPPED, NOW)
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


def _series(market: str, days: int, level: float, start: datetime = T0) -> list[tuple]:
    return [
        (f"{market}-{d}", market, start + timedelta(days=d), level * (1 + 0.001 * ((d % 3) - 1)))
        for d in range(days)
    ]


def _judge(history: list[tuple], candidates: list[tuple]) -> dict[str, dict]:
    """The price judge on a pool of (event_id, market_id, observed_at, price) rows: per
    candidate, its flags, reasons and details as silver names them."""
    rows = [(*r, False) for r in history] + [(*r, True) for r in candidates]
    pool = pd.DataFrame(rows, columns=["event_id", "market_id", "at", "price", "_candidate"])
    pool["commodity"], pool["_group"] = "beras", "DKI Jakarta|beras"
    local = pd.to_datetime(pool["at"], utc=True).dt.tz_convert("Asia/Jakarta")
    pool["_sec"] = pd.to_datetime(pool["at"], utc=True).astype("int64") // 10**9
    pool["_day"] = (local.dt.tz_localize(None).dt.normalize() - pd.Timestamp(0)).dt.days
    out = price_judge.judge(pool[list(price_judge.POOL_COLUMNS)], SHIPPED.quality.prices)
    return {r["event_id"]: _verdict(r) for r in out.to_dict("records")}


def _verdict(row: dict) -> dict:
    rules = lambda mask: [r for i, r in enumerate(STAT_RULES) if int(mask) >> i & 1]  # noqa: E731
    details = {d: row[detail_column(d)] for d in DETAILS if not np.isnan(row[detail_column(d)])}
    return {"flags": rules(row["stat_flags"]), "reasons": rules(row["stat_reasons"]), **details}


def test_price_statistics_flags_a_spike_and_not_a_calm_price():
    history = _series("IP-001", 20, 14000.0)
    for other, level in (("IP-003", 14200.0), ("IP-004", 13900.0), ("IP-005", 14100.0)):
        history += _series(other, 21, level)
    day = T0 + timedelta(days=20)
    out = _judge(
        history,
        [("spike", "IP-001", day, 31000.0), ("calm", "IP-001", day + timedelta(hours=1), 14010.0)],
    )
    spike, calm = out["spike"], out["calm"]
    assert spike["flags"] == ["zscore", "iqr", "median_deviation", "cross_market"]
    assert spike["reasons"] == spike["flags"]
    assert spike["rolling_median"] == pytest.approx(14000.0, rel=0.01)
    assert spike["cross_market_median"] == pytest.approx(14100.0, rel=0.01)
    # the spike itself is in the history of the calm price; its median baseline shrugs it off
    assert calm["flags"] == [] and calm["reasons"] == []


def test_price_rules_percentiles_are_sparks(spark):
    """The price rules run in numpy (``price_judge``): their percentiles are Spark's."""
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 14000.0, 13999.5]
    quartiles = F.percentile("v", F.array(*[F.lit(q) for q in (0.25, 0.5, 0.75, 0.9)]))
    (expected,) = spark.createDataFrame([(v,) for v in values], "v double").agg(quartiles).first()
    ordered = np.sort(values)
    assert [percentile(ordered, q) for q in (0.25, 0.5, 0.75, 0.9)] == expected
    rows = np.array([[*ordered], [*ordered[:3], *[np.nan] * 5]])  # a full row, one of three
    for q in (0.25, 0.5, 0.75, 0.9):
        assert list(row_percentiles(rows, np.array([8, 3]), q)) == [
            percentile(ordered, q),
            percentile(ordered[:3], q),
        ]


def test_single_flag_is_kept_and_short_history_abstains():
    history = _series("IP-001", 20, 14000.0)
    for other in ("IP-003", "IP-004"):  # the region's other markets are much cheaper
        history += _series(other, 21, 9000.0)
    steady = ("steady", "IP-001", T0 + timedelta(days=20), 14000.0)
    row = _judge(history, [steady])["steady"]
    assert row["flags"] == ["cross_market"] and row["reasons"] == []

    history = _series("IP-001", 3, 14000.0)  # fewer than min_history
    row = _judge(history, [("new", "IP-001", T0 + timedelta(days=3), 20000.0)])["new"]
    assert row == {"flags": [], "reasons": [], "history_n": 2.0}


def test_a_window_holds_the_newest_history_points():
    """A price is compared with at most ``history_points`` of its series' newest prices before
    it, however many the batch brings: its verdict does not depend on how batches were cut."""
    many = _series("IP-001", 28, 14000.0, start=T0)
    hourly = [(f"h{i}", "IP-001", T0 + timedelta(days=27, minutes=i), 14000.0) for i in range(80)]
    at = T0 + timedelta(days=28)
    alone = _judge(many + hourly, [("p", "IP-001", at, 14000.0)])["p"]
    together = _judge(many, [*hourly, ("p", "IP-001", at, 14000.0)])["p"]
    assert alone == together and alone["history_n"] == SHIPPED.quality.prices.history_points


def test_sensor_rules(spark):
    rules = SHIPPED.quality
    at = lambda minutes: (T0 + timedelta(minutes=minutes)).isoformat()  # noqa: E731
    events = [
        sensor("hot", value=75.0, observed_at=at(1)),
        sensor("zero", metric="humidity_pct", value=0.0, observed_at=at(2)),
        sensor("crowd-zero", metric="crowd_count", value=0.0, observed_at=at(3)),
        sensor("unknown", market_id="ZZ-404", observed_at=at(4)),
    ]
    out = validate_events(_parsed(spark, events, "market.sensors"), rules, SHIPPED, NOW)
    reasons = spark.createDataFrame(
        [("hot", ["sensor_out_of_range"]), ("zero", ["sensor_zero"]), ("crowd-zero", []),
         ("unknown", ["unknown_market"])],
        "event_id string, hard_reasons array<string>",
    )  # fmt: skip
    assert_df_equality(
        out.select("event_id", "hard_reasons"), reasons, ignore_row_order=True, ignore_nullable=True
    )

    minute = 60
    history = [
        (f"h{i}", "IP-001", "d1", "temperature_c", i * minute, 28.0, False) for i in range(4)
    ]
    candidates = [
        ("stuck", "IP-001", "d1", "temperature_c", 4 * minute, 28.0, True),
        ("jump", "IP-001", "d1", "temperature_c", 5 * minute, 45.0, True),
        ("back", "IP-001", "d1", "temperature_c", 6 * minute, 28.5, True),
    ]
    pool = pd.DataFrame(history + candidates, columns=list(sensor_judge.POOL_COLUMNS))
    verdicts = {
        r["event_id"]: (_verdict(r)["flags"], _verdict(r)["reasons"])
        for r in sensor_judge.judge(pool, rules.sensors).to_dict("records")
    }
    assert verdicts == {
        "stuck": (["sensor_stuck"], []),
        "jump": ([], ["sensor_jump"]),
        "back": ([], []),
    }


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
    daily = gold.price_daily(prices, "Asia/Jakarta", 0)
    expected = spark.createDataFrame(
        [("IP-001", "beras", "DKI Jakarta", datetime(2025, 3, 1).date(), 100.0, 130.0, 90.0,
          130.0, 320.0 / 3, 3),
         ("IP-003", "beras", "DKI Jakarta", datetime(2025, 3, 1).date(), 120.0, 120.0, 120.0,
          120.0, 120.0, 1)],
        "market_id string, commodity string, region string, date date, open double, "
        "high double, low double, close double, mean double, count long",
    )  # fmt: skip
    assert_df_equality(
        daily.select(*expected.columns), expected, ignore_nullable=True, ignore_row_order=True
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
    (row,) = gold.quality_daily(batches, 0).collect()
    counts = (row.received, row.accepted, row.quarantined, row.duplicates, row.late)
    assert counts == (15, 11, 3, 1, 1)
    assert (row.released, row.rejected) == (1, 1)
    assert row.quarantined_by_reason == {"iqr": 1, "late": 2}


def test_gold_rows_combine_each_batch_once(spark, settings, tmp_path):
    """Gold merges the aggregate of each silver batch into its rows: batch by batch (a late
    price opening the day in the second; the second merged twice, as a replayed gold batch
    does) gives the rows of one aggregate over all of them."""
    settings = isolated(settings, tmp_path)
    rows = [  # market, hour, price, Kafka offset, silver batch
        ("IP-001", 1, 100.0, 0, 1), ("IP-001", 5, 130.0, 1, 2), ("IP-001", 3, 90.0, 2, 2),
        ("IP-001", 0, 95.0, 3, 2), ("IP-003", 2, 120.0, 4, 1), ("IP-003", 9, 80.0, 5, 2),
    ]  # fmt: skip
    prices = spark.createDataFrame(
        [(m, "beras", "DKI Jakarta", datetime(2025, 3, 1, h), p, o, b) for m, h, p, o, b in rows],
        "market_id string, commodity string, region string, observed_at timestamp, "
        "price double, offset long, silver_batch_id long",
    ).withColumns({"topic": F.lit("market.prices"), "partition": F.lit(0)})
    quality = spark.createDataFrame(
        [(datetime(2025, 3, 1).date(), "feed", "", 10, 7, 2, 1, 0, {"iqr": 1}, 0, 0, 1),
         (datetime(2025, 3, 1).date(), "feed", "", 5, 4, 1, 0, 1, {"late": 1}, 0, 1, 2)],
        "date date, source string, device_id string, received long, accepted long, "
        "quarantined long, duplicates long, late long, quarantined_by_reason map<string,bigint>, "
        "released long, rejected long, silver_batch_id long",
    )  # fmt: skip
    one_day = "t.date BETWEEN DATE '2025-03-01' AND DATE '2025-03-01'"
    for batch in (1, 2, 2):
        of_batch = F.col("silver_batch_id") == batch
        for table, rows, matched in (
            (GOLD_PRICE_DAILY, gold.price_daily(prices.where(of_batch), "UTC", batch),
             gold.OHLC_COMBINED),
            (GOLD_DATA_QUALITY_DAILY, gold.quality_daily(quality.where(of_batch), batch),
             gold.quality_combined()),
        ):  # fmt: skip
            SparkLake(spark, settings)[table].upsert(
                rows, gold.NEW_BATCHES, matched, within=one_day
            )
    for table, whole in (
        (GOLD_PRICE_DAILY, gold.price_daily(prices, "UTC", 2)),
        (GOLD_DATA_QUALITY_DAILY, gold.quality_daily(quality, 2)),
    ):
        merged = SparkLake(spark, settings)[table].read()
        assert _by_key(merged, table.keys) == _by_key(whole, table.keys)


def _by_key(frame, keys: tuple[str, ...]) -> dict[tuple, dict]:
    return {tuple(r[k] for k in keys): r.asDict() for r in frame.collect()}
