"""The price check agrees with the pipeline: a mixed set of prices — usual moves, spikes, drops,
a cross-market outlier day, prices in grams, unknown markets and commodities, impossible
prices, wrong units, future times — checked through ``POST /api/v1/validation/price/check``,
then sent through the real Kafka and silver query (the JVM judge, the default): every price
gets the same verdict, the same reasons and flags, and a held one the baseline its hold
records."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lakehouse.catalog.events import PriceEvent
from lakehouse.catalog.tables import SILVER_HOLDS, SILVER_PRICES, SILVER_QUARANTINE, Table
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from serving_api.app import create_app
from serving_api.auth import mint_key
from streaming_jobs.medallion import silver_query
from tests.api_samples import API
from tests.conftest import drain, isolated

MARKETS = ("IP-001", "IP-003", "IP-004", "IP-005", "IP-006")  # DKI Jakarta
LEVELS = {"beras": 14_000.0, "cabai_merah": 50_000.0, "bawang_merah": 38_000.0}
START = (datetime.now(UTC) - timedelta(days=40)).replace(hour=1, minute=0, second=0, microsecond=0)


def report(rng: random.Random, market: str, commodity: str, day: int, factor: float) -> PriceEvent:
    return PriceEvent(
        market_id=market,
        commodity=commodity,
        price=round(LEVELS[commodity] * factor),
        unit="kg",
        observed_at=START + timedelta(days=day, minutes=rng.randrange(0, 600)),
        source="test-price-check",
    )


def mixed(rng: random.Random) -> list[PriceEvent]:
    """Eight days of reports of every series, of every kind."""
    events = []
    for day in range(21, 29):
        for market in MARKETS:
            for commodity in LEVELS:
                for _ in range(rng.randrange(2, 6)):
                    kind = rng.random()
                    if kind < 0.62:
                        factor = 1 + rng.uniform(-0.03, 0.03)
                    elif kind < 0.72:
                        factor = rng.uniform(1.5, 2.4)  # a spike
                    elif kind < 0.78:
                        factor = rng.uniform(0.4, 0.6)  # a drop
                    elif kind < 0.86:
                        factor = 1 + rng.choice((-1, 1)) * rng.uniform(0.1, 0.3)
                    else:
                        events.append(odd(rng, market, commodity, day))
                        continue
                    events.append(report(rng, market, commodity, day, factor))
    # one market far from the others for a day: the cross-market rule alone
    events += [report(rng, "IP-006", "beras", 29, 1.9), report(rng, "IP-001", "beras", 29, 1.0)]
    events += [report(rng, m, "beras", 29, 1.0) for m in ("IP-003", "IP-004", "IP-005")]
    return events


def odd(rng: random.Random, market: str, commodity: str, day: int) -> PriceEvent:
    """A price a hard rule quarantines, or one in another unit that converts."""
    usual = report(rng, rng.choice(MARKETS), commodity, day, 1.0)
    change = rng.choice(
        [
            {"market_id": "XX-404"},
            {"commodity": "kopi_luwak"},
            {"price": 1.0},
            {"unit": "liter"},
            {"unit": "g", "price": round(LEVELS[commodity] / 1000, 1)},
            {"observed_at": datetime.now(UTC) + timedelta(days=2)},
        ]
    )
    return usual.model_copy(update=change)


def rows(settings: Settings, table: Table) -> pd.DataFrame:
    return DeltaTable(str(table.path(settings))).to_pandas()


@pytest.mark.timeout(1800)
def test_the_check_gives_the_pipeline_s_verdict(spark, kafka, settings, tmp_path):
    settings = isolated(settings, tmp_path)
    key, entry = mint_key("partner", "ingest")
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"keys": [entry]})}
    )
    ensure_topics(settings)
    rng = random.Random(56)
    calm = [
        report(rng, market, commodity, day, 1 + rng.uniform(-0.02, 0.02))
        for day in range(21)
        for market in MARKETS
        for commodity in LEVELS
    ]
    producer = EventProducer(settings)
    producer.send_all(calm)
    producer.flush()
    drain(spark, settings, silver_query)

    events = mixed(rng)
    assert 300 <= len(events) <= settings.api.max_events_per_request
    body = [e.model_dump(mode="json") for e in events]
    with TestClient(create_app(settings)) as c:
        answer = c.post(f"{API}/validation/price/check", json=body, headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    checked = {v["event_id"]: v for v in answer.json()["verdicts"]}

    producer.send_all(events)
    producer.flush()
    drain(spark, settings, silver_query)
    ids = {str(e.event_id) for e in events}
    prices = rows(settings, SILVER_PRICES).set_index("event_id")
    quarantine = rows(settings, SILVER_QUARANTINE).set_index("event_id")
    held = rows(settings, SILVER_HOLDS).set_index("event_id")
    pipeline = {}
    for event_id in ids:
        if event_id in held.index:
            verdict = ("held", sorted(quarantine.loc[event_id, "reasons"]))
        elif event_id in quarantine.index:
            verdict = ("quarantined", sorted(quarantine.loc[event_id, "reasons"]))
        else:
            verdict = ("accepted", sorted(prices.loc[event_id, "flags"]))
        pipeline[event_id] = verdict
    mine = {
        i: (v["verdict"], sorted(v["reasons"] if v["verdict"] != "accepted" else v["flags"]))
        for i, v in checked.items()
    }
    assert mine == pipeline
    outcomes = pd.Series([v for v, _ in pipeline.values()]).value_counts()
    assert outcomes.get("held", 0) >= 10 and outcomes.get("quarantined", 0) >= 10, outcomes
    for event_id in held.index.intersection(list(ids)):
        assert checked[event_id]["baseline"] == pytest.approx(held.loc[event_id, "baseline"])
