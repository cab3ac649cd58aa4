"""Issue 35's "done when": a simulated week of stock and shipments through real Kafka, Spark and
Delta — days of cover against pandas, one alert per late shipment, every bad record in
quarantine with its reason, exactly once across a replayed run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.catalog.events import ShipmentEvent, StockEvent
from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_ALERTS,
    GOLD_SHIPMENTS,
    GOLD_STOCK_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_QUARANTINE,
    SILVER_SHIPMENTS,
    SILVER_SUPPLY_STOCK,
)
from lakehouse.config.settings import Settings
from lakehouse.domain.supply_chain.supply_registry import open_supply_registry
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.lake import Lakehouse
from producers.csv_ingest import ingest_file
from producers.supply_csv import read_supply_csv
from producers.supply_sim import simulate
from streaming_jobs.supply_query import supply_query
from tests.conftest import drain, isolated
from tests.shipped import SHIPPED

pytestmark = pytest.mark.timeout(1800)  # a Spark streaming test on a shared two-core machine
START = datetime(2025, 3, 17, tzinfo=UTC)
AT = START + timedelta(days=2, hours=3)


def _bad_records() -> dict[str, bytes]:
    """One record per quarantine reason (the expected reason → the record)."""
    stock = {"commodity": "beras", "quantity": 1000.0, "observed_at": AT, "source": "bad"}
    ship = {
        "shipment_id": "BAD-1",
        "commodity": "beras",
        "quantity": 5000.0,
        "origin_id": "FG-3215-KRWG",
        "destination_id": "DS-3273-BDG",
        "departed_at": AT,
        "expected_at": AT + timedelta(hours=5),
        "observed_at": AT,
        "source": "bad",
    }
    return {
        "unknown_entity": StockEvent(entity_id="WH-NOWHERE", **stock).to_json(),
        "unknown_commodity": StockEvent(
            entity_id="WH-3212-BULOG", **{**stock, "commodity": "durian"}
        ).to_json(),
        "negative_quantity": StockEvent(
            entity_id="WH-3212-BULOG", **{**stock, "quantity": -5.0}
        ).to_json(),
        "implausible_quantity": StockEvent(
            entity_id="MK-3171-SNEN", **{**stock, "quantity": 9e9}
        ).to_json(),
        "arrival_before_departure": ShipmentEvent(
            **{**ship, "shipment_id": "BAD-2", "arrived_at": AT - timedelta(hours=1)}
        ).to_json(),
        "same_origin_destination": ShipmentEvent(
            **{**ship, "shipment_id": "BAD-3", "destination_id": "FG-3215-KRWG"}
        ).to_json(),
        "malformed_json": b"{not json",
        "missing_field": json.dumps({"event_type": "stock", "source": "bad"}).encode(),
    }


def _expected_cover(stock: pd.DataFrame, shipments: pd.DataFrame, window: int) -> pd.DataFrame:
    """gold.stock_daily's days of cover, the pandas way."""
    stock = stock.assign(
        date=stock["observed_at"].dt.tz_convert("Asia/Jakarta").dt.date
    ).sort_values("observed_at")
    daily = stock.groupby(["entity_id", "commodity", "date"])["quantity"].last().rename("stock")
    arrived = shipments[shipments["arrived_at"].notna()].assign(
        date=lambda d: d["arrived_at"].dt.tz_convert("Asia/Jakarta").dt.date
    )
    inflow = arrived.groupby(["destination_id", "commodity", "date"])["quantity"].sum()
    inflow.index.names = ["entity_id", "commodity", "date"]
    frame = daily.to_frame().join(inflow.rename("inflow")).fillna({"inflow": 0.0}).reset_index()
    rows = []
    for _, series in frame.groupby(["entity_id", "commodity"]):
        series = series.sort_values("date").reset_index(drop=True)
        series["outflow"] = (series["inflow"] - series["stock"].diff()).clip(lower=0)
        for i, row in series.iterrows():
            recent = series[
                (series["date"] > row["date"] - timedelta(days=window)) & (series.index <= i)
            ]["outflow"].dropna()
            mean = recent.mean() if len(recent) else float("nan")
            cover = row["stock"] / mean if mean > 0 else float("nan")
            rows.append((row["entity_id"], row["commodity"], row["date"], cover))
    return pd.DataFrame(rows, columns=["entity_id", "commodity", "date", "expected"])


def _frame(table, settings) -> pd.DataFrame:
    return Lakehouse(settings)[table].open().to_pandas()


def _own(settings: Settings, root: Path) -> Settings:
    """``settings`` with a lakehouse, checkpoints, topics (created) and a data folder (the
    supply registry's) of their own under ``root``."""
    own = isolated(settings, root)
    own = own.model_copy(update={"paths": own.paths.model_copy(update={"data_dir": root})})
    ensure_topics(own)
    return own


@pytest.fixture(scope="module")
def supplied(settings, kafka, spark, tmp_path_factory):
    """A simulated week, a re-sent copy of some of it and the bad records, drained by the
    supply query twice (the second run finds nothing new)."""
    root = tmp_path_factory.mktemp("supply")
    supply_settings = _own(settings, root)
    entities = open_supply_registry(supply_settings).entities()
    events = list(simulate(entities, supply_settings, START, days=7))
    producer = EventProducer(supply_settings)
    for event in events:
        producer.send_supply(event)
    for event in events[:5]:  # re-sent copies: duplicates
        producer.send_supply(event)
    bad = _bad_records()
    for text in bad.values():
        producer.produce(supply_settings.kafka.topics.supply, text, key="bad")
    producer.flush()
    report = root / "stock.csv"  # the CSV producer: one stock row and one it dead-letters
    report.write_text(
        "entity_id,commodity,quantity,observed_at\n"
        "MK-3171-SNEN,Beras Medium,2500,2025-03-20 07:00\n"
        "MK-3171-SNEN,beras,lots,2025-03-20 08:00\n"
    )
    summary = ingest_file(report, supply_settings, producer)
    assert (summary.published, summary.dead_lettered) == (1, 1)
    events += read_supply_csv(report, supply_settings.tz, SHIPPED).events
    drain(spark, supply_settings, supply_query)
    drain(spark, supply_settings, supply_query)
    return supply_settings, events, bad


def test_every_record_is_accounted_for_once(supplied):
    settings, events, bad = supplied
    bronze = _frame(BRONZE_EVENTS, settings)
    assert len(bronze) == len(events) + 5 + len(bad)
    quarantine = _frame(SILVER_QUARANTINE, settings)
    reasons = quarantine["reasons"].map(list)
    assert sorted(r[0] for r in reasons if r[0] != "duplicate") == sorted(bad)
    assert sum(r == ["duplicate"] for r in reasons) == 5
    stock = _frame(SILVER_SUPPLY_STOCK, settings)
    assert len(stock) == sum(e.event_type == "stock" for e in events)
    assert stock["event_id"].is_unique
    shipments = _frame(SILVER_SHIPMENTS, settings)
    ids = {e.shipment_id for e in events if e.event_type == "shipment"}
    assert set(shipments["shipment_id"]) == ids and shipments["shipment_id"].is_unique
    arrived = {e.shipment_id for e in events if e.event_type == "shipment" and e.arrived_at}
    assert set(shipments.loc[shipments["arrived_at"].notna(), "shipment_id"]) == arrived


def test_days_of_cover_match_pandas(supplied):
    settings, _, _ = supplied
    expected = _expected_cover(
        _frame(SILVER_SUPPLY_STOCK, settings),
        _frame(SILVER_SHIPMENTS, settings),
        settings.supply.cover_window_days,
    )
    gold = _frame(GOLD_STOCK_DAILY, settings)
    merged = gold.merge(expected, on=["entity_id", "commodity", "date"], how="outer")
    assert len(merged) == len(gold) == len(expected)
    assert merged["days_of_cover"].notna().sum() > 0
    pd.testing.assert_series_equal(
        merged["days_of_cover"], merged["expected"], check_names=False, rtol=1e-9
    )
    region = _frame(GOLD_SUPPLY_REGION_DAILY, settings)
    assert list(region.columns) == [
        "date",
        "province",
        "commodity",
        "stock",
        "days_of_cover",
        "shipments_in_transit",
        "shipments_late",
    ]
    jakarta = region[(region["province"] == "DKI Jakarta") & (region["commodity"] == "beras")]
    day = gold[(gold["province"] == "DKI Jakarta") & (gold["commodity"] == "beras")]
    assert jakarta.set_index("date")["stock"].to_dict() == pytest.approx(
        day.groupby("date")["stock"].sum().to_dict()
    )


def test_each_late_shipment_raises_exactly_one_alert(supplied):
    settings, _, _ = supplied
    shipments = _frame(GOLD_SHIPMENTS, settings)
    late_hours = SHIPPED.alerts.supply.shipment_late.warning
    late = set(shipments.loc[shipments["delay_hours"] >= late_hours, "shipment_id"])
    assert late, "the simulated week has late shipments"
    alerts = _frame(GOLD_ALERTS, settings)
    shipment_alerts = alerts[alerts["rule"] == "shipment_late"]
    assert shipment_alerts["alert_key"].value_counts().max() == 1
    assert set(shipment_alerts["alert_key"]) == late
    arrived_late = set(shipments.loc[shipments["arrived_at"].notna(), "shipment_id"]) & late
    resolved = set(shipment_alerts.loc[shipment_alerts["status"] == "resolved", "alert_key"])
    assert resolved == arrived_late


def test_stock_reports_before_any_shipment(settings, kafka, spark, tmp_path):
    """A first batch of stock reports alone (a stack started with ``history_days: 0``): their
    cover reaches gold, and gold.shipments exists, empty, rather than failing the query."""
    own = _own(settings, tmp_path)
    entities = open_supply_registry(own).entities()
    stock = [e for e in simulate(entities, own, START, days=1) if isinstance(e, StockEvent)]
    producer = EventProducer(own)
    for event in stock:
        producer.send_supply(event)
    producer.flush()
    drain(spark, own, supply_query)
    assert len(_frame(SILVER_SUPPLY_STOCK, own)) == len(stock)
    assert not _frame(GOLD_STOCK_DAILY, own).empty
    assert not _frame(GOLD_SUPPLY_REGION_DAILY, own).empty
    assert _frame(GOLD_SHIPMENTS, own).empty
