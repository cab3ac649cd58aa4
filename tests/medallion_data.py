"""A replay of 5 500 events for the end-to-end medallion tests: clean prices and sensor
readings, and 500 faulty events of every kind, in two phases (the second brings backfill-free
late rows — older than the retention — and spikes against the first's history); and the check of
what the pipeline made of them (``check_outcome``)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from lakehouse.catalog.events import PriceEvent, SensorEvent
from lakehouse.catalog.tables import (
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
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.lake import Lakehouse
from tests.shipped import SHIPPED

START = datetime(2025, 1, 1, 1, 0, tzinfo=UTC)  # 08:00 in Jakarta
MARKETS = sorted(m for m in SHIPPED.markets if m.startswith("IP-"))[:10]
COMMODITIES = ["beras", "gula_pasir", "bawang_merah", "cabai_merah", "telur_ayam"]
DAYS_PER_PHASE = 45  # the spikes of the second phase fall within its first 37 days
FAULTS_PER_KIND = 70
PHASE_TWO_FAULTS = 75  # late and spikes
SENSORS_PER_PHASE = 250


@dataclass
class Dataset:
    phases: list[list[tuple[str, bytes, str]]] = field(default_factory=lambda: [[], []])
    faulty: dict[str, set[str]] = field(default_factory=dict)  # kind → event ids (or raw)
    clean: set[str] = field(default_factory=set)
    #: the event ids of another test's stream replayed with the dataset (``extend``): each in
    #: silver or quarantine once, their verdicts that test's to check
    others: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.phases)

    def extend(self, phase: int, records: list[tuple[str, bytes, str]]) -> None:
        """Replay ``records`` (events of another test) in ``phase`` too."""
        self.phases[phase].extend(records)
        self.others.update(_identity(raw) for _, raw, _ in records)

    def faults(self) -> list[tuple[str, bytes, str]]:
        """The first phase's faulty records alone (with the originals of its duplicates): a
        few hundred, where the phase holds thousands of clean prices too."""
        ids = set().union(*self.faulty.values())
        return [r for r in self.phases[0] if _identity(r[1]) in ids]


def _base(commodity: str) -> float:
    c = SHIPPED.commodities[commodity]
    return (c.min_price + c.max_price) / 3


def _price(market: str, commodity: str, day: int) -> PriceEvent:
    level = 1 + 0.05 * math.sin(MARKETS.index(market))
    trend = 1 + 0.1 * math.sin(math.pi * day / DAYS_PER_PHASE)  # one cycle over both phases
    return PriceEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{market}/{commodity}/{day}"),
        market_id=market,
        commodity=commodity,
        price=round(_base(commodity) * level * trend, 2),
        unit=SHIPPED.commodities[commodity].unit,
        observed_at=START + timedelta(days=day),
        source="replay-test",
    )


def _sensor(device: int, metric: str, i: int, phase: int) -> SensorEvent:
    market = MARKETS[device]
    at = START + timedelta(days=phase * DAYS_PER_PHASE, minutes=10 * i)
    value = {"temperature_c": 27 + 0.01 * i, "humidity_pct": 70 + 0.02 * i, "crowd_count": 100 + i}
    return SensorEvent(
        event_id=SensorEvent.reading_id(f"{market}-d1", metric, at),
        market_id=market,
        device_id=f"{market}-d1",
        metric=metric,
        value=value[metric],
        observed_at=at,
        source="sensor-test",
    )


def spike(normal: PriceEvent, name: str, hours: int) -> PriceEvent:
    """``normal`` at 1.9 × its price, ``hours`` later, with an id of its own (``name``)."""
    return normal.model_copy(
        update={
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, name),
            "price": round(normal.price * 1.9, 2),
            "observed_at": normal.observed_at + timedelta(hours=hours),
        }
    )


def _identity(raw: bytes) -> str:
    """How ``Dataset.faulty`` names a record: its event id, or its bytes when they are no JSON."""
    try:
        return json.loads(raw)["event_id"]
    except ValueError:
        return raw.decode()


def _fault_id(kind: str, i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{i}"))


def as_records(
    settings: Settings, events: Sequence[PriceEvent | SensorEvent]
) -> list[tuple[str, bytes, str]]:
    """``events`` as the Kafka records (topic, value, key) their producers send."""
    topics = settings.kafka.topics
    return [
        (topics.prices if isinstance(e, PriceEvent) else topics.sensors, e.to_json(), e.key)
        for e in events
    ]


def make_dataset(settings: Settings) -> Dataset:
    topics = settings.kafka.topics
    data = Dataset()

    def add(phase: int, event: PriceEvent | SensorEvent) -> None:
        data.phases[phase].extend(as_records(settings, [event]))

    def faulty(kind: str, phase: int, event: PriceEvent, **change: object) -> None:
        body = {**json.loads(event.to_json()), **change}
        data.phases[phase].append((topics.prices, json.dumps(body).encode(), event.key))
        data.faulty.setdefault(kind, set()).add(body["event_id"])

    for phase in (0, 1):
        for day in range(phase * DAYS_PER_PHASE, (phase + 1) * DAYS_PER_PHASE):
            for market in MARKETS:
                for commodity in COMMODITIES:
                    event = _price(market, commodity, day)
                    add(phase, event)
                    data.clean.add(str(event.event_id))
        readings = [
            _sensor(device, metric, i, phase)
            for i in range(42)
            for device in (0, 1)
            for metric in ("temperature_c", "humidity_pct", "crowd_count")
        ][:SENSORS_PER_PHASE]
        for event in readings:
            add(phase, event)
            data.clean.add(str(event.event_id))

    first = data.phases[0][:FAULTS_PER_KIND]
    for topic, raw, key in first:  # the same bytes again: duplicates
        data.phases[0].append((topic, raw, key))
        data.faulty.setdefault("duplicate", set()).add(json.loads(raw)["event_id"])
    for i in range(FAULTS_PER_KIND):
        template = _price(MARKETS[i % 10], COMMODITIES[i % 5], i % DAYS_PER_PHASE)
        faulty("unknown_market", 0, template, event_id=_fault_id("um", i), market_id="ZZ-404")
        faulty("non_positive_price", 0, template, event_id=_fault_id("neg", i), price=-1000.0)
        faulty("price_out_of_range", 0, template, event_id=_fault_id("abs", i), price=9_999_999.0)
        raw = f'{{"event_id": "{_fault_id("bad", i)}", "price": 1'.encode()
        data.phases[0].append((topics.prices, raw, "broken"))
        data.faulty.setdefault("malformed_json", set()).add(raw.decode())
    for i in range(PHASE_TWO_FAULTS):
        market, commodity = MARKETS[i % 10], COMMODITIES[(i // 10) % 5]
        late = _price(market, commodity, 10)
        too_old = datetime.now(UTC) - timedelta(days=SHIPPED.quality.hard.retention_days + 1 + i)
        faulty("late", 1, late, event_id=_fault_id("late", i), observed_at=too_old.isoformat())
        day = DAYS_PER_PHASE + 10 + (i // 50) * 20 + i % 7
        normal = _price(market, commodity, day)
        faulty(
            "spike",
            1,
            normal,
            event_id=_fault_id("spike", i),
            price=round(normal.price * 2.2, 2),
            observed_at=(normal.observed_at + timedelta(hours=6)).isoformat(),
        )
    return data


def produce(settings: Settings, records: list[tuple[str, bytes, str]]) -> None:
    producer = EventProducer(settings)
    for topic, raw, key in records:
        producer.produce(topic, raw, key=key)
    producer.flush()


EXPECTED_REASON = {
    "unknown_market": "unknown_market",
    "non_positive_price": "non_positive_price",
    "price_out_of_range": "price_out_of_range",
    "late": "late",
    "spike": "median_deviation",
}


def table(settings: Settings, t: Table) -> pd.DataFrame:
    """The rows of ``t`` wherever the lakehouse of ``settings`` is (a folder or a store)."""
    return Lakehouse(settings)[t].open().to_pandas()


def released(settings: Settings) -> int:
    """Held prices released into silver (they stay in quarantine too: its rows are history)."""
    try:
        decisions = table(settings, SILVER_HOLD_DECISIONS)
    except TableMissing:
        return 0
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
    accepted = set(prices["event_id"]) | set(sensors["event_id"])
    assert accepted - data.others == data.clean
    assert data.others <= accepted | set(quarantine["event_id"])

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


def received(settings: Settings) -> int:
    """Records the silver batches have counted so far (0 before the first)."""
    try:
        quality = table(settings, GOLD_DATA_QUALITY)
    except TableMissing:  # not created yet
        return 0
    return int(quality["received"].sum())


def mixed_records(settings: Settings, days: int = 30) -> list[tuple[str, bytes, str]]:
    """A few hundred records of every kind the silver rules tell apart, for a test that runs
    two paths over the same input: clean prices of three markets of one province × two
    commodities, sensor readings with a jump, exact copies, records that are no JSON, prices
    that break a hard rule or are older than the retention, spikes held — one confirmed by two
    later reports at its level, so released."""
    topics = settings.kafka.topics
    prices = [
        _price(market, commodity, day)
        for day in range(days)
        for market in MARKETS[:3]
        for commodity in COMMODITIES[:2]
    ]
    readings = [_sensor(0, "temperature_c", i, 0) for i in range(12)]
    last = readings[-1]
    jump = last.observed_at + timedelta(minutes=10)
    readings.append(
        last.model_copy(
            update={
                "event_id": SensorEvent.reading_id(last.device_id, last.metric, jump),
                "observed_at": jump,
                "value": 60.0,
            }
        )
    )
    records = [(topics.prices, e.to_json(), e.key) for e in prices]
    records += [(topics.sensors, e.to_json(), e.key) for e in readings]
    records += records[:8]  # duplicates
    too_old = datetime.now(UTC) - timedelta(days=SHIPPED.quality.hard.retention_days + 5)
    for i, change in enumerate(
        [
            {"market_id": "ZZ-404"},
            {"price": -1000.0},
            {"price": 9_999_999.0},
            {"observed_at": too_old.isoformat()},
        ]
    ):
        for j in range(2):
            body = {**json.loads(prices[i * 2 + j].to_json()), **change}
            body["event_id"] = _fault_id(f"mixed-{i}", j)
            records.append((topics.prices, json.dumps(body).encode(), prices[i * 2 + j].key))
    records += [
        (topics.prices, f'{{"event_id": "broken-{i}", "price"'.encode(), "x") for i in (1, 2)
    ]
    for market, hours in ((MARKETS[0], (6,)), (MARKETS[1], (3, 9, 15))):
        normal = _price(market, COMMODITIES[0], days - 1)
        for h in hours:
            held = spike(normal, f"mixed-spike/{market}/{h}", h)
            records.append((topics.prices, held.to_json(), held.key))
    return records
