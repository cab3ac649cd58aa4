"""Each price metric has one definition (lakehouse.domain.metrics): the daily close, the region's
day
and the reference median — and gold (Spark), the API and the alerts follow it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from lakehouse.domain.metrics import (
    DAILY_COLUMNS,
    REFERENCE_DAYS,
    daily_closes,
    median_close_before,
    region_daily,
)
from streaming_jobs import gold
from tests.shipped import SHIPPED

DAY = date(2025, 3, 1)
# market, observed at (UTC hour), price — in arrival order; 05:00 twice: the later arrival wins
PRICES = [
    ("IP-001", 1, 100.0),
    ("IP-001", 5, 130.0),
    ("IP-001", 3, 90.0),
    ("IP-001", 5, 135.0),
    ("IP-003", 2, 120.0),
    ("IP-007", 4, 150.0),
]


def price_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            (
                pd.Timestamp(DAY),
                datetime(2025, 3, 1, hour, tzinfo=UTC),
                m,
                "DKI Jakarta",
                "beras",
                p,
            )
            for m, hour, p in PRICES
        ],
        columns=["date", "observed_at", "market_id", "region", "commodity", "price"],
    )


def test_the_daily_close_is_the_last_price_of_the_day() -> None:
    closes = daily_closes(price_frame())
    assert tuple(closes.columns) == DAILY_COLUMNS
    assert dict(zip(closes["market_id"], closes["close"], strict=True)) == {
        "IP-001": 135.0,
        "IP-003": 120.0,
        "IP-007": 150.0,
    }


def test_a_region_day_summarises_its_markets_closes() -> None:
    (row,) = region_daily(daily_closes(price_frame())).to_dict("records")
    assert row == {
        "region": "DKI Jakarta",
        "commodity": "beras",
        "date": pd.Timestamp(DAY),
        "median": 135.0,
        "min": 120.0,
        "max": 150.0,
        "spread": 30.0,
        "markets": 3,
    }


def test_the_reference_median_takes_the_days_before_only() -> None:
    closes = {date(2025, 3, d): float(d) for d in range(1, 12)}  # 1st .. 11th
    # the 7 days before the 11th: the 4th .. 10th
    assert median_close_before(closes, date(2025, 3, 11)) == 7.0
    assert median_close_before(closes, date(2025, 3, 1)) is None
    assert median_close_before(closes, date(2025, 3, 3), days=1) == 2.0


def test_the_price_alerts_use_the_same_reference_days() -> None:
    assert SHIPPED.alerts.price_move.reference_days == REFERENCE_DAYS


def test_gold_follows_the_definitions(spark) -> None:
    frame = price_frame().drop(columns="date")
    prices = spark.createDataFrame(
        frame.assign(topic="market.prices", partition=0, offset=range(len(frame)))
    )
    daily = gold.price_daily(prices, "UTC", 0)
    spark_closes = {r.market_id: r.close for r in daily.collect()}
    expected = daily_closes(price_frame())
    assert spark_closes == dict(zip(expected["market_id"], expected["close"], strict=True))

    (spark_region,) = gold.region_daily(daily).collect()
    (region,) = region_daily(expected).to_dict("records")
    assert {k: v for k, v in spark_region.asDict().items() if k != "date"} == {
        k: v for k, v in region.items() if k != "date"
    }
