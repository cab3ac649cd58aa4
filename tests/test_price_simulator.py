"""The ``prices`` service: the shipped real price history as today's prices, at every reference
market, through Kafka into the pipeline's validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

from lakehouse.config.settings import PROJECT_ROOT, load_settings
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.status import read_status
from producers.price_simulator import PriceSimulator, day_index, history, publish_round
from scripts.services import services
from streaming_jobs.silver import parse_events, validate_events
from tests.conftest import isolated
from tests.kafka_helpers import consume, end_offsets
from tests.shipped import SHIPPED
from tests.silver_samples import bronze

PHYSICAL = sorted(m.market_id for m in SHIPPED.markets.values() if m.kind == "pasar")


def test_days_go_forward_then_back_without_a_jump():
    assert [day_index(r, 4) for r in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert [day_index(r, 1) for r in range(3)] == [0, 0, 0]


def test_the_shipped_file_gives_every_day_one_price_per_commodity(conf_settings, sample_prices):
    days = history([sample_prices], conf_settings)
    assert len(days) == 443  # 2024-01-01 … 2025-03-22, every day with a price
    assert {p.commodity for p in days[0]} == {"bawang_merah", "bawang_putih", "cabai_merah"}
    assert days[0][0].price == 42054.0  # the file's first row


def test_a_round_is_today_at_every_market_and_passes_the_catalogue(conf_settings):
    sim = PriceSimulator(conf_settings)
    at = datetime.now(conf_settings.tz).replace(microsecond=0)
    events = sim.events(at)
    assert sorted({e.market_id for e in events}) == PHYSICAL
    assert len(events) == len(PHYSICAL) * 3
    assert len({e.event_id for e in events}) == len(events)
    catalogue = SHIPPED.commodities
    for e in events:
        assert e.observed_at == at
        assert e.region == SHIPPED.markets[e.market_id].province
        assert e.unit == catalogue[e.commodity].unit
        assert catalogue[e.commodity].min_price <= e.price <= catalogue[e.commodity].max_price
        assert e.source == "simulator:prices_pihps_daily_2024_2025.csv"
    assert [e.event_id for e in sim.events(at)] == [e.event_id for e in events]  # same round
    later = sim.events(at + timedelta(seconds=sim.interval))
    assert not {e.event_id for e in later} & {e.event_id for e in events}


def test_on_by_default_off_with_one_setting(clean_env, monkeypatch):
    assert "prices" in [s.name for s in services(load_settings())]
    monkeypatch.setenv("SMARTMARKET_PRICE_SIMULATOR__ENABLED", "false")
    assert "prices" not in [s.name for s in services(load_settings())]


def test_simulated_prices_reach_kafka_and_pass_silver_validation(kafka, spark, settings, tmp_path):
    own = isolated(settings, tmp_path)
    ensure_topics(own)
    topic = own.kafka.topics.prices
    sim = PriceSimulator(own)
    at = datetime.now(own.tz).replace(microsecond=0)
    sent = publish_round(sim, EventProducer(own), at)

    records = consume(own, topic, expected=sent)
    assert len(records) == sent == len(PHYSICAL) * 3
    assert all(key == f"{v['market_id']}:{v['commodity']}" for key, v in records)
    parsed = parse_events(
        bronze(spark, [(topic, json.dumps(v)) for _, v in records]),
        {topic: "price"},
        own.kafka.topics.deadletter,
        SHIPPED,
    )
    checked = validate_events(parsed, SHIPPED.quality, SHIPPED, at + timedelta(seconds=1))
    assert checked.where("parse_error is null and size(hard_reasons) = 0").count() == sent


def test_the_service_publishes_rounds_until_stopped(kafka, settings, tmp_path):
    own = isolated(settings, tmp_path)
    ensure_topics(own)
    topic = own.kafka.topics.prices
    before = end_offsets(own, topic)
    env = {
        **os.environ,
        "SMARTMARKET_KAFKA__TOPICS__PRICES": topic,
        "SMARTMARKET_PATHS__DATA_DIR": str(tmp_path),
        "SMARTMARKET_PRICE_SIMULATOR__MARKETS": "4",
        "SMARTMARKET_PRICE_SIMULATOR__INTERVAL_SECONDS": "1",
    }
    status_settings = own.model_copy(
        update={"paths": own.paths.model_copy(update={"data_dir": tmp_path})}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "producers.price_simulator"], env=env, cwd=PROJECT_ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while (status := read_status(status_settings, "prices")) is None or status.get(
            "published", 0
        ) < 2 * 4 * 3:
            assert proc.poll() is None, "the price simulator exited"
            assert time.monotonic() < deadline, f"no two rounds published: {status}"
            time.sleep(0.2)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert read_status(status_settings, "prices")["state"] == "stopped"
    records = consume(own, topic, since=before)
    assert len(records) >= 2 * 4 * 3
    assert len({v["market_id"] for _, v in records}) == 4
    assert len({v["observed_at"] for _, v in records}) >= 2  # two rounds, two times


def test_the_stack_lists_the_service_with_its_pace(conf_settings):
    (service,) = [s for s in services(conf_settings) if s.name == "prices"]
    assert service.endpoint() == "every market every 15s -> market.prices"
