"""The pipeline killed with ``kill -9`` mid-replay while it evaluates alerts, and restarted from
its checkpoints, with the real Kafka, Spark and Delta. Replayed at once: the medallion fault dataset
(5 500 events, 500 faulty: ``tests/medallion_data.py``) and a crafted alert stream (a heat episode
that re-fires within and after its cool-down, a crowd over capacity, a device sending half
garbage, a city-wide price spike). Every event is accounted for once, with the silver, quarantine
and gold a run without a kill gives (``check_outcome``: that run is not a test of its own), and no
alert is duplicated or missing: the streamed ``gold.alerts`` equals the rules evaluated once over
the final gold tables."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.catalog.events import PriceEvent, SensorEvent
from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_DATA_QUALITY,
    GOLD_PRICE_DAILY,
    GOLD_SENSOR_HOURLY,
    Table,
)
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import ensure_topics
from streaming_jobs.alerts.episodes import episodes
from streaming_jobs.alerts.held import HELD_RULES
from streaming_jobs.alerts.prices import price_changes, price_move_signals, region_move_signals
from streaming_jobs.alerts.sensors import quality_signals, sensor_signals
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import drain, isolated
from tests.medallion_data import as_records, check_outcome, make_dataset, produce
from tests.processes import start_pipeline
from tests.shipped import SHIPPED

RULES = SHIPPED.alerts
DAY0 = datetime(2025, 5, 1, 1, 0, tzinfo=UTC)  # 08:00 WIB
SENSOR_DAY = datetime(2025, 6, 1, 17, 0, tzinfo=UTC)  # 00:00 WIB, 2 June
PRICE_MARKETS = ["IP-001", "IP-003", "IP-004", "IP-005"]
SPIKE_DAYS = (10, 11)


def prices() -> list[PriceEvent]:
    """Beras in four Jakarta markets: ±6 % day to day (too little to alert), then a 25 % spike
    in all of them for two days."""
    out = []
    for m, market in enumerate(PRICE_MARKETS):
        for day in range(14):
            factor = 1.25 if day in SPIKE_DAYS else 1 + 0.06 * (-1) ** (day + m)
            out.append(
                PriceEvent(
                    market_id=market,
                    commodity="beras",
                    price=round(14000 * factor),
                    unit="kg",
                    observed_at=DAY0 + timedelta(days=day),
                    source="alert-test",
                )
            )
    return out


HEAT_CENTRES = ((11.0, 16.0), (11.0,))  # local hours of the heat peaks on day 1 and day 2


def temperature(i: int) -> float:
    """Half-hourly temperature of IP-003: peaks of 41 °C at 11:00 and 16:00 (the second within
    the cool-down after the first one resolved) and at 11:00 the next day (after it); 2 °C per
    half hour, so the readings stay within silver's jump rule."""
    hour, day = (i / 2) % 24, i // 48
    return max([28.0] + [41.0 - 4 * abs(hour - c) for c in HEAT_CENTRES[day]])


def sensors() -> list[SensorEvent]:
    out = []

    def reading(market: str, device: str, metric: str, value: float, at: datetime) -> None:
        out.append(
            SensorEvent(
                event_id=SensorEvent.reading_id(device, metric, at),
                market_id=market,
                device_id=device,
                metric=metric,
                value=value,
                observed_at=at,
                source="alert-test",
            )
        )

    for i in range(96):  # two days, every 30 minutes
        at = SENSOR_DAY + timedelta(minutes=30 * i)
        reading("IP-001", "IP-001-d1", "temperature_c", 28.0 + i % 3, at)
        reading("IP-003", "IP-003-d1", "temperature_c", temperature(i), at)
        reading("IP-003", "IP-003-d1", "crowd_count", 1100.0 if i == 14 else 300.0, at)
        if i < 40:  # a broken device: every other reading impossible
            reading("IP-004", "IP-004-d9", "humidity_pct", 150.0 if i % 2 else 70.0, at)
    return out


def read(settings: Settings, table: Table) -> pd.DataFrame:
    return DeltaTable(str(table.path(settings))).to_pandas()


def recomputed(spark, settings: Settings) -> pd.DataFrame:
    """The rules evaluated once over the final gold tables."""
    load = lambda t: spark.read.format("delta").load(str(t.path(settings)))  # noqa: E731
    tz = settings.timezone
    changes = price_changes(load(GOLD_PRICE_DAILY), RULES)
    signals = (
        price_move_signals(changes, RULES, tz)
        .unionByName(region_move_signals(changes, RULES, tz))
        .unionByName(sensor_signals(load(GOLD_SENSOR_HOURLY), RULES, tz))
        .unionByName(quality_signals(load(GOLD_DATA_QUALITY), RULES))
    )
    return episodes(signals, RULES.cooldown_hours()).toPandas()


COMPARED = ["alert_id", "rule", "alert_key", "severity", "status", "opened_at", "resolved_at"]


def normalised(df: pd.DataFrame) -> pd.DataFrame:
    out = df[COMPARED].copy()
    for c in ("opened_at", "resolved_at"):
        out[c] = pd.to_datetime(out[c], utc=True).astype("datetime64[us, UTC]")
    return out.sort_values("alert_id", ignore_index=True)


@pytest.mark.timeout(900)
def test_kill_minus_nine_while_alerting_loses_duplicates_and_misses_nothing(
    spark, kafka, settings, tmp_path
):
    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    data = make_dataset(settings)
    events = prices() + sensors()
    half = len(events) // 2
    data.extend(0, as_records(settings, events[:half]))
    data.extend(1, as_records(settings, events[half:]))
    produce(settings, data.phases[0])

    pipeline = start_pipeline(settings)
    try:
        # a gold batch writes the daily prices right before its alerts: kill -9 then
        daily = Path(GOLD_PRICE_DAILY.log(settings))
        deadline = time.monotonic() + 300
        while not any(daily.glob("*.json")):
            assert time.monotonic() < deadline, "no gold batch within 300 s"
            assert pipeline.poll() is None, "the pipeline exited"
            time.sleep(0.2)
        os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait()
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)

    produce(settings, data.phases[1])
    drain(spark, settings, silver_query, gold_query)  # the restart, from the checkpoints
    check_outcome(settings, data)

    alerts = read(settings, GOLD_ALERTS)
    assert alerts["alert_id"].is_unique
    assert (
        alerts.groupby(["rule", "alert_key"])["status"].apply(lambda s: (s == "open").sum()) <= 1
    ).all()
    # the medallion dataset's held spikes alert as held moves, a rule of silver's holds
    held = alerts["rule"].isin(HELD_RULES)
    assert held.any()
    pd.testing.assert_frame_equal(
        normalised(alerts[~held]), normalised(recomputed(spark, settings))
    )

    fired = alerts.groupby(["rule", "alert_key"]).size().to_dict()
    assert fired[("temperature", "IP-003|temperature_c")] == 2  # re-fire within cool-down: same
    assert fired[("crowding", "IP-003|crowd_count")] == 1
    assert fired[("data_quality", "alert-test|IP-004-d9")] == 1
    assert fired[("region_move", "DKI Jakarta|beras")] == 1
    assert {("price_spike", f"{m}|beras") for m in PRICE_MARKETS} <= set(fired)
    assert not any(rule == "temperature" and key.startswith("IP-001") for rule, key in fired)
    messages = alerts.set_index("rule").loc["region_move"]
    # people's words in the messages, the ids in the columns
    assert "DKI Jakarta" in messages["message_id"] and "Beras Medium" in messages["message_id"]
    assert "Medium rice" in messages["message_en"] and messages["commodity"] == "beras"
