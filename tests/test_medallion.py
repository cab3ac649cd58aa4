"""End to end with the real Kafka, Spark and Delta: a backfill behind live devices. (The fault
dataset of ``tests/medallion_data.py`` through a pipeline killed mid-replay:
``tests/test_alerts_pipeline.py``.)"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from lakehouse.catalog.events import SensorEvent
from lakehouse.catalog.tables import (
    GOLD_PRICE_DAILY,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
)
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from producers.replay import replay
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import drain, isolated
from tests.medallion_data import released, table


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
