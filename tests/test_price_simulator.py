"""The ``prices`` service: the shipped real price history as every reference market's past
(published once, back-dated) and today (rounds of intraday reports), through Kafka into the
pipeline's validation."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from lakehouse.config.settings import PROJECT_ROOT, PROVINCE_PANEL, Settings, load_settings
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.status import read_status
from producers.price_simulator import (
    PriceSimulator,
    day_index,
    history,
    publish_history,
    publish_round,
    seed_plan,
)
from producers.state import read_state
from scripts.services.supervisor import services
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


def test_a_first_start_seeds_the_days_before_today_and_a_restart_only_what_is_missing():
    today = date(2026, 11, 27)
    first = seed_plan(today, None, 60)
    assert len(first) == 60 and first[0] == date(2026, 9, 28) and first[-1] == date(2026, 11, 26)
    assert seed_plan(today, date(2026, 11, 26), 60) == []  # seeded (or running) yesterday
    assert seed_plan(today, date(2026, 11, 23), 60) == [
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]  # three days down
    assert seed_plan(today, date(2025, 1, 1), 60) == first  # long down: never more than 60
    assert seed_plan(today, None, 0) == []


def test_a_round_is_a_turn_of_markets_and_passes_the_catalogue(conf_settings):
    sim = PriceSimulator(conf_settings)
    at = datetime.now(conf_settings.tz).replace(microsecond=0)
    events = sim.events(at)
    assert len({e.market_id for e in events}) <= conf_settings.price_simulator.markets_per_round
    assert len(events) == len({e.market_id for e in events}) * 3
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
    # the markets take turns: every one reports once in `turns` rounds
    rounds = [sim.events(at + timedelta(seconds=sim.interval * r)) for r in range(sim.turns)]
    reported = [e.market_id for r in rounds for e in r if e.commodity == "cabai_merah"]
    assert sorted(reported) == PHYSICAL


def _relative(sim: PriceSimulator, events: list, day: date) -> dict[tuple[str, str], float]:
    """Each report over its market's level of the files' price of ``day``, minus 1."""
    level = {m.market_id: m.level for m in sim.markets}
    real = {p.commodity: p.price for p in sim.day_of(day)}
    return {
        (e.market_id, e.commodity): e.price / (real[e.commodity] * level[e.market_id]) - 1
        for e in events
    }


def test_reports_move_by_the_real_day_to_day_change_with_bounded_noise(conf_settings):
    sim = PriceSimulator(conf_settings)
    noise = conf_settings.price_simulator.noise_pct / 100
    tz = conf_settings.tz
    day = date(2026, 11, 27)
    # consecutive calendar days are consecutive days of the files (no jump of many days)
    position = {id(d): i for i, d in enumerate(sim.days)}
    indices = [position[id(sim.day_of(day + timedelta(days=n)))] for n in range(800)]
    assert all(abs(b - a) == 1 for a, b in itertools.pairwise(indices))
    for hour in (8, 12, 16):
        at = datetime(2026, 11, 27, hour, tzinfo=tz)
        rounds = [sim.events(at + timedelta(seconds=sim.interval * r)) for r in range(sim.turns)]
        off = _relative(sim, [e for r in rounds for e in r], day)
        assert len(off) == len(PHYSICAL) * 3
        assert all(abs(v) <= noise + 1e-4 for v in off.values())  # rounded to the rupiah
        assert max(off.values()) - min(off.values()) > noise  # noise, not a constant
    # a market's price from one morning to the next: the real change, within twice the noise
    before = sim.past_day(day - timedelta(days=1))
    after = sim.past_day(day)
    real = {p.commodity: p.price for p in sim.day_of(day)}
    real_before = {p.commodity: p.price for p in sim.day_of(day - timedelta(days=1))}
    yesterday = {(e.market_id, e.commodity): e.price for e in before}
    for e in after:
        change = e.price / yesterday[(e.market_id, e.commodity)]
        assert abs(change / (real[e.commodity] / real_before[e.commodity]) - 1) <= 2.1 * noise


def test_a_past_day_is_every_market_once_in_the_morning(conf_settings):
    sim = PriceSimulator(conf_settings)
    day = date(2026, 10, 1)
    events = sim.past_day(day)
    assert sorted({e.market_id for e in events}) == PHYSICAL
    assert len(events) == len(PHYSICAL) * 3
    local = [e.observed_at.astimezone(conf_settings.tz) for e in events]
    assert all(t.date() == day and 7 <= t.hour < 11 for t in local)
    assert local == sorted(local)  # in time order
    assert [e.event_id for e in sim.past_day(day)] == [e.event_id for e in events]


def test_every_province_publishes_its_real_average_once_a_day(conf_settings):
    sim = PriceSimulator(conf_settings)
    assert len({s.market_id for s in sim.panel.series}) == 34  # the provinces of the file
    assert not np.isnan(sim.panel.prices[1:]).any()  # every series from its first day on
    day = date(2026, 11, 27)
    events = sim.province_day(day)
    assert len(events) == len(SHIPPED.provinces) * 10  # every province, the 10 foods
    by_market = {(e.market_id, e.commodity): e for e in events}
    for p in SHIPPED.provinces.values():
        rice = by_market[(f"PROV-{p.code}", "beras")]
        assert rice.region == p.name and SHIPPED.markets[rice.market_id].kind == "aggregate"
        assert rice.observed_at == datetime(2026, 11, 27, tzinfo=conf_settings.tz)
    file = f"simulator:{PROVINCE_PANEL.name}"
    papua, highlands = by_market[("PROV-91", "beras")], by_market[("PROV-95", "beras")]
    assert (papua.source, highlands.source) == (file, f"{file}#Papua")  # split from Papua, 2022
    assert highlands.price == papua.price
    assert by_market[("PROV-96", "beras")].source == f"{file}#Papua Barat"
    assert [e.event_id for e in sim.province_day(day)] == [e.event_id for e in events]
    assert not {e.event_id for e in sim.province_day(day + timedelta(days=1))} & {
        e.event_id for e in events
    }
    # the file's prices as they are: the day it plays is a day of the file
    played = sim.panel.prices[day_index(day.toordinal(), len(sim.panel.prices))]
    column = {(s.market_id, s.commodity): n for n, s in enumerate(sim.panel.series)}
    assert all(
        e.price == played[column[(e.market_id, e.commodity)]] for e in events if "#" not in e.source
    )


def test_the_province_file_is_read_as_province_averages(conf_settings, province_panel: Path):
    report = open_report(province_panel, SHIPPED)
    assert report.chosen == "format pihps_province (detected from the header)"
    first = next(parse_rows(report, conf_settings.tz)).event
    assert (first.market_id, first.region, first.commodity) == ("PROV-11", "Aceh", "bawang_merah")
    assert (first.price, first.unit, first.source) == (32000.0, "kg", "pihps-province")


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
    producer = EventProducer(own)
    producer.send_all(sim.past_day(at.date() - timedelta(days=60)))  # the oldest seeded day
    sent = len(PHYSICAL) * 3 + publish_round(sim, producer, at)

    records = consume(own, topic, expected=sent)
    assert len(records) == sent
    assert all(key == f"{v['market_id']}:{v['commodity']}" for key, v in records)
    parsed = parse_events(
        bronze(spark, [(topic, json.dumps(v)) for _, v in records]),
        {topic: "price"},
        own.kafka.topics.deadletter,
        SHIPPED,
    )
    checked = validate_events(parsed, SHIPPED.quality, SHIPPED, at + timedelta(seconds=1))
    assert checked.where("parse_error is null and size(hard_reasons) = 0").count() == sent


def _seeding(settings: Settings, data_dir: Path, days: int) -> Settings:
    sim = settings.price_simulator.model_copy(
        update={"markets": 4, "seed_days": days, "province_files": []}
    )
    paths = settings.paths.model_copy(update={"data_dir": data_dir})
    return settings.model_copy(update={"price_simulator": sim, "paths": paths})


def test_the_history_is_published_once_across_restarts(kafka, settings, tmp_path):
    own = _seeding(isolated(settings, tmp_path), tmp_path / "data", 5)
    ensure_topics(own)
    today = datetime.now(own.tz).date()
    sim = PriceSimulator(own)
    assert publish_history(sim, EventProducer(own), own, today) == 5 * 4 * 3
    assert read_state(own, "prices") == {"through": str(today - timedelta(days=1))}
    assert publish_history(PriceSimulator(own), EventProducer(own), own, today) == 0  # restart
    later = today + timedelta(days=1)  # a start tomorrow, none today: today is added
    assert publish_history(sim, EventProducer(own), own, later) == 4 * 3

    records = consume(own, own.kafka.topics.prices, expected=6 * 4 * 3)
    assert len(records) == 6 * 4 * 3 == len({v["event_id"] for _, v in records})
    days = sorted({v["observed_at"][:10] for _, v in records})
    assert days == [str(today - timedelta(days=n)) for n in range(5, -1, -1)]


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
        "SMARTMARKET_PRICE_SIMULATOR__PROVINCE_FILES": "[]",
        "SMARTMARKET_PRICE_SIMULATOR__SEED_DAYS": "2",
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
        reports = 4 * 3  # a round's, and a seeded day's: 4 markets × 3 commodities
        while (status := read_status(status_settings, "prices")) is None or status.get(
            "published", 0
        ) < 2 * reports + 2 * reports:  # the two seeded days, then two rounds
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
    today = str(datetime.now(own.tz).date())
    rounds = {v["observed_at"] for _, v in records if v["observed_at"].startswith(today)}
    assert len(rounds) >= 2  # two rounds, two times
    assert status["history"] == 2 * 4 * 3  # the two days before today came first
    assert read_state(status_settings, "prices") == {"through": today}  # a restart: no history


def test_the_stack_lists_the_service_with_its_pace(conf_settings):
    (service,) = [s for s in services(conf_settings) if s.name == "prices"]
    assert service.endpoint() == "every market in turns, 4 every 15s -> market.prices"
