"""End to end with the real Kafka, Spark and Delta: 10 000 events, 500 of them faulty, through
bronze → silver → gold; and the same with the Spark application killed mid-replay."""

from __future__ import annotations

import math
import os
import signal
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.events import SensorEvent
from lakehouse.kafka_io import EventProducer, ensure_topics
from lakehouse.settings import Settings
from lakehouse.tables import (
    BRONZE_EVENTS,
    GOLD_DATA_QUALITY,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    SILVER_HOLD_DECISIONS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
    Table,
)
from producers.replay import replay
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import drain, isolated
from tests.medallion_data import Dataset, make_dataset, produce
from tests.processes import start_pipeline, wait_for

EXPECTED_REASON = {
    "unknown_market": "unknown_market",
    "non_positive_price": "non_positive_price",
    "price_out_of_range": "price_out_of_range",
    "late": "late",
    "spike": "median_deviation",
}


def table(settings: Settings, t: Table) -> pd.DataFrame:
    return DeltaTable(str(t.path(settings))).to_pandas()


def released(settings: Settings) -> int:
    """Held prices released into silver (they stay in quarantine too: its rows are history)."""
    path = str(SILVER_HOLD_DECISIONS.path(settings))
    if not DeltaTable.is_deltatable(path):
        return 0
    decisions = DeltaTable(path).to_pandas()
    return int((decisions["decision"] == "released").sum())


def check_outcome(settings: Settings, data: Dataset) -> None:
    """Every event accounted for once; every faulty one quarantined for the right reason;
    gold equal to an independent pandas computation on the accepted rows."""
    bronze = table(settings, BRONZE_EVENTS)
    prices = table(settings, SILVER_PRICES)
    sensors = table(settings, SILVER_SENSORS)
    quarantine = table(settings, SILVER_QUARANTINE)
    quality = table(settings, GOLD_DATA_QUALITY)
    duplicates = int(quality["duplicates"].sum())

    assert len(bronze) == data.total
    assert len(prices) + len(sensors) + len(quarantine) - released(settings) + duplicates == (
        data.total
    )
    assert int(quality["received"].sum()) == data.total
    assert duplicates == len(data.faulty["duplicate"])
    assert prices["event_id"].is_unique and sensors["event_id"].is_unique
    assert set(prices["event_id"]) | set(sensors["event_id"]) == data.clean

    reasons = {r.event_id: list(r.reasons) for r in quarantine.itertuples() if r.event_id}
    for kind, rule in EXPECTED_REASON.items():
        for event_id in data.faulty[kind]:
            assert rule in reasons.get(event_id, []), (kind, event_id, reasons.get(event_id))
    malformed = quarantine[quarantine["raw"].isin(data.faulty["malformed_json"])]
    assert len(malformed) == len(data.faulty["malformed_json"])
    assert all(list(r) == ["malformed_json"] for r in malformed["reasons"])

    prices["date"] = (
        pd.to_datetime(prices["observed_at"], utc=True).dt.tz_convert(settings.timezone).dt.date
    )
    prices = prices.sort_values(["observed_at", "topic", "partition", "offset"])
    expected = (
        prices.groupby(["market_id", "commodity", "region", "date"])["price"]
        .agg(open="first", high="max", low="min", close="last", mean="mean", count="count")
        .reset_index()
        .sort_values(["market_id", "commodity", "date"], ignore_index=True)
    )
    daily = table(settings, GOLD_PRICE_DAILY).sort_values(
        ["market_id", "commodity", "date"], ignore_index=True
    )
    pd.testing.assert_frame_equal(
        daily[expected.columns], expected, check_dtype=False, check_exact=False
    )
    latest = table(settings, GOLD_PRICE_LATEST).set_index(["market_id", "commodity"]).sort_index()
    last = prices.groupby(["market_id", "commodity"]).last().sort_index()
    assert (latest["price"] == last["price"]).all()
    region = table(settings, GOLD_REGION_DAILY).set_index(["region", "commodity", "date"])
    median = expected.groupby(["region", "commodity", "date"])["close"].median()
    assert (region.loc[median.index, "median"] - median).abs().max() < 1e-6


def test_replay_with_faults_end_to_end(spark, kafka, settings, tmp_path):
    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    data = make_dataset(settings)
    for phase in data.phases:
        produce(settings, phase)
        drain(spark, settings, silver_query, gold_query)
    check_outcome(settings, data)


def _readings(device: str, start: datetime, count: int, step: timedelta) -> list[SensorEvent]:
    market = device.rsplit("-", 1)[0]
    return [
        SensorEvent(
            event_id=SensorEvent.reading_id(device, "temperature_c", start + i * step),
            market_id=market,
            device_id=device,
            metric="temperature_c",
            value=27 + 3 * math.sin(i / 5),
            observed_at=start + i * step,
            source="sensor-test",
        )
        for i in range(count)
    ]


def test_backfill_behind_live_devices_lands_in_silver_and_gold(
    spark, kafka, settings, tmp_path, sample_prices
):
    """The real file (2024–2025) replayed while a device streams current readings: its real
    moves are kept, its wild days quarantined, and nothing is refused as late; a year of the
    device's own past readings lands in silver too."""
    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    producer = EventProducer(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    producer.send_all(
        _readings("IP-001-d1", now - timedelta(minutes=30), 60, timedelta(seconds=30))
    )
    producer.flush()
    drain(spark, settings, silver_query, gold_query)  # the live stream is ahead of everything

    summary = replay(sample_prices, settings, producer, speed=None)
    past = _readings("IP-001-d1", datetime(2024, 1, 1, tzinfo=UTC), 365 * 4, timedelta(hours=6))
    producer.send_all(past)
    producer.flush()
    drain(spark, settings, silver_query, gold_query)
    quarantine = table(settings, SILVER_QUARANTINE)
    accepted = table(settings, SILVER_PRICES)
    assert len(accepted) + len(quarantine) - released(settings) == summary.published
    # nothing refused for its age: what is held, is held by the statistical rules (27 rows, 2 %,
    # the real file's wild days — the same verdicts as before backfills were accepted)
    reasons = Counter(r for rs in quarantine["reasons"] for r in rs)
    assert set(reasons) <= {"zscore", "iqr", "median_deviation", "cross_market"}, reasons
    assert len(accepted) >= 0.97 * summary.published, reasons
    daily = table(settings, GOLD_PRICE_DAILY)
    days = accepted.groupby(["market_id", "commodity", "observed_date"]).ngroups
    assert len(daily) == days
    sensors = table(settings, SILVER_SENSORS)
    assert {str(e.event_id) for e in past} <= set(sensors["event_id"])
    wild = quarantine[quarantine["raw"].str.contains('"price":75080.0')]
    assert len(wild) == 1  # 2025-03-21 shallots: +27 % in a day, back the next
    assert {"zscore", "iqr"} <= set(wild["reasons"].iloc[0])
    assert not accepted[accepted["observed_date"] == date(2025, 3, 22)].empty


def _received(settings: Settings) -> int:
    try:
        quality = DeltaTable(str(GOLD_DATA_QUALITY.path(settings))).to_pandas()
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return int(quality["received"].sum())


@pytest.mark.timeout(900)
def test_kill_minus_nine_mid_replay_loses_and_duplicates_nothing(spark, kafka, settings, tmp_path):
    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    data = make_dataset(settings)
    produce(settings, data.phases[0])

    first = start_pipeline(settings)
    try:
        wait_for(settings, lambda: _received(settings) > 0, 300, "a first silver batch")
        assert _received(settings) < data.total
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    produce(settings, data.phases[1])
    second = start_pipeline(settings)
    try:
        wait_for(settings, lambda: _received(settings) >= data.total, 600, "the whole replay")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=120)
    # silver is complete; gold follows it in its own query, which the stop may have caught
    # mid-batch: a third start catches up from the checkpoints
    drain(spark, settings)
    check_outcome(settings, data)
