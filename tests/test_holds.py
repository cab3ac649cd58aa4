"""Held prices end to end with the real Kafka, Spark, Delta and the API: a +80 % report is held
and raises an "unconfirmed" alert; two more at the new level release all three into silver and
gold; a lone spike that comes back stays held, "not confirmed"; an operator's release through
the API lands in gold, once, even when the batch that applies it dies half-way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lakehouse.catalog.events import PriceEvent
from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_DATA_QUALITY,
    GOLD_PRICE_DAILY,
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    Table,
)
from lakehouse.config.settings import Settings
from lakehouse.io.delta_io import SparkTable
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from serving_api.app import create_app
from serving_api.auth import mint_key
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import drain, isolated

API = "/api/v1"
COMMODITY = "cabai_merah"
# three markets of three provinces, so that each held move is an alert of its own (the markets
# of one province moving together are one alert: tests/test_alerts.py)
CONFIRMED, LONE, REVIEWED = "IP-001", "IP-059", "IP-065"  # DKI Jakarta, Jawa Barat, Banten
CALM = 50_000.0
START = datetime(2026, 3, 1, 1, tzinfo=UTC)  # 08:00 in Jakarta


def report(market: str, day: int, price: float, hour: int = 0) -> PriceEvent:
    return PriceEvent(
        market_id=market,
        commodity=COMMODITY,
        price=price,
        unit="kg",
        observed_at=START + timedelta(days=day, hours=hour),
        source="test-holds",
    )


def send(settings: Settings, events: list[PriceEvent]) -> None:
    producer = EventProducer(settings)
    producer.send_all(events)
    producer.flush()


def table(settings: Settings, t: Table) -> pd.DataFrame:
    return DeltaTable(str(t.path(settings))).to_pandas()


def alert_of(settings: Settings, event: PriceEvent) -> pd.Series:
    alerts = table(settings, GOLD_ALERTS)
    mine = alerts[alerts["details"].str.contains(str(event.event_id), regex=False)]
    assert len(mine) == 1, mine
    return mine.iloc[0]


class Crash(RuntimeError):
    """A batch dying between its silver writes and its holds MERGE (the process killed)."""


@pytest.mark.timeout(1800)
def test_hold_confirm_review(spark, kafka, settings, tmp_path, monkeypatch):
    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    calm = [
        report(market, day, CALM * (1 + 0.01 * ((day * 7 + i) % 5 - 2)))
        for day in range(14)
        for i, market in enumerate((CONFIRMED, LONE, REVIEWED))
    ]
    send(settings, calm)
    drain(spark, settings, silver_query)  # gold takes the calm days with the spikes' batch

    # day 14: +80 % at each market — held, with an "unconfirmed" alert each
    spikes = {m: report(m, 14, CALM * 1.8) for m in (CONFIRMED, LONE, REVIEWED)}
    send(settings, list(spikes.values()))
    drain(spark, settings, silver_query, gold_query)
    quarantine = table(settings, SILVER_QUARANTINE)
    held = quarantine[quarantine["event_id"].isin([str(e.event_id) for e in spikes.values()])]
    assert len(held) == 3
    for reasons in held["reasons"]:
        assert set(reasons) <= {"zscore", "iqr", "median_deviation", "cross_market"}, reasons
    for event in spikes.values():
        alert = alert_of(settings, event)
        assert (alert["rule"], alert["status"], alert["severity"]) == (
            "price_unconfirmed",
            "open",
            "critical",
        )
        # against the median of the 7 days before (about 50.000), each language its own way
        english = r"Unconfirmed .* \(held\): Rp 90\.000, \+[78]\d\.\d% from the 7-day median"
        assert re.search(rf"{english} Rp [45]\d\.\d{{3}}$", alert["message_en"])
        indonesian = r"belum terkonfirmasi \(ditahan\): Rp 90\.000, \+[78]\d,\d % dari median"
        assert re.search(rf"{indonesian} 7 hari Rp [45]\d\.\d{{3}}$", alert["message_id"])

    # two more reports at the new level confirm it; the lone spike comes back the next day
    confirming = [report(CONFIRMED, 15, CALM * 1.8), report(CONFIRMED, 16, CALM * 1.82)]
    back = report(LONE, 15, CALM)
    send(settings, [*confirming, back])
    drain(spark, settings, silver_query, gold_query)
    prices = table(settings, SILVER_PRICES)
    confirmed_ids = {str(e.event_id) for e in (spikes[CONFIRMED], *confirming)}
    assert confirmed_ids <= set(prices["event_id"])
    assert str(spikes[LONE].event_id) not in set(prices["event_id"])
    assert prices["event_id"].is_unique
    alert = alert_of(settings, spikes[CONFIRMED])
    assert (alert["rule"], alert["status"], alert["severity"]) == (
        "price_confirmed",
        "open",
        "critical",
    )
    alert = alert_of(settings, spikes[LONE])
    assert (alert["rule"], alert["status"]) == ("price_unconfirmed", "resolved")
    assert "(not confirmed)" in alert["message_en"]
    assert "(tidak terkonfirmasi)" in alert["message_id"]
    daily = table(settings, GOLD_PRICE_DAILY).set_index(["market_id", "date"])
    day14 = (START + timedelta(days=14)).date()
    assert daily.loc[(CONFIRMED, day14), "close"] == pytest.approx(CALM * 1.8)
    assert (LONE, day14) not in daily.index

    # an operator releases one hold and rejects another through the API
    key, entry = mint_key("ops-desk", "operator")
    closed = settings.model_copy(
        update={"api": settings.api.model_copy(update={"open_reads": False, "keys": [entry]})}
    )
    operator = {"X-API-Key": key}
    with TestClient(create_app(closed)) as c:
        listed = c.get(f"{API}/quarantine/held", params={"status": "open"}, headers=operator)
        assert listed.status_code == 200, listed.text
        assert {i["event_id"] for i in listed.json()["items"]} == {
            str(spikes[LONE].event_id),
            str(spikes[REVIEWED].event_id),
        }
        note = {"note": "checked by phone with the market office"}
        url = f"{API}/quarantine/{spikes[REVIEWED].event_id}/release"
        assert c.post(url, json=note).status_code == 401
        answer = c.post(url, json=note, headers=operator)
        assert answer.status_code == 202, answer.text
        url = f"{API}/quarantine/{spikes[LONE].event_id}/reject"
        assert c.post(url, json={"note": "typo"}, headers=operator).status_code == 202
        url = f"{API}/quarantine/{calm[0].event_id}/release"  # accepted, never held
        assert c.post(url, json=note, headers=operator).status_code == 404

    # the batch applying the decisions dies after its silver writes, before the holds MERGE
    upsert = SparkTable.upsert

    def dying(bound: SparkTable, *args, **kwargs):
        if bound.table == SILVER_HOLDS:
            raise Crash("killed")
        return upsert(bound, *args, **kwargs)

    monkeypatch.setattr(SparkTable, "upsert", dying)
    with pytest.raises(Exception, match="killed"):
        drain(spark, settings, silver_query)
    monkeypatch.setattr(SparkTable, "upsert", upsert)
    drain(spark, settings, silver_query, gold_query)  # the restart replays the batch

    prices = table(settings, SILVER_PRICES)
    assert prices["event_id"].is_unique
    assert str(spikes[REVIEWED].event_id) in set(prices["event_id"])
    assert str(spikes[LONE].event_id) not in set(prices["event_id"])
    decisions = table(settings, SILVER_HOLD_DECISIONS)
    assert not decisions.duplicated(["event_id", "decision"]).any()
    reviewed = decisions[decisions["event_id"] == str(spikes[REVIEWED].event_id)]
    assert list(reviewed["decision"]) == ["released"]
    assert list(reviewed["decided_by"]) == ["operator:ops-desk"]
    assert list(reviewed["note"]) == [note["note"]]
    lone = decisions[decisions["event_id"] == str(spikes[LONE].event_id)]
    assert sorted(lone["decision"]) == ["not_confirmed", "rejected"]
    status = table(settings, SILVER_HOLDS).set_index("event_id")["status"]
    assert status[str(spikes[REVIEWED].event_id)] == "released"
    assert status[str(spikes[LONE].event_id)] == "rejected"
    daily = table(settings, GOLD_PRICE_DAILY).set_index(["market_id", "date"])
    assert daily.loc[(REVIEWED, day14), "close"] == pytest.approx(CALM * 1.8)
    assert alert_of(settings, spikes[REVIEWED])["rule"] == "price_confirmed"
    assert alert_of(settings, spikes[LONE])["status"] == "resolved"

    # accounting: every report once in silver or held; releases and rejections counted
    quality = table(settings, GOLD_DATA_QUALITY)
    released = decisions[decisions["decision"] == "released"]
    assert {str(spikes[CONFIRMED].event_id), str(spikes[REVIEWED].event_id)} <= set(
        released["event_id"]
    )
    assert set(released["event_id"]) <= confirmed_ids | {str(spikes[REVIEWED].event_id)}
    assert int(quality["released"].sum()) == len(released)
    assert int(quality["rejected"].sum()) == 1
    sent = len(calm) + len(spikes) + len(confirming) + 1
    quarantine = table(settings, SILVER_QUARANTINE)
    assert len(prices) + len(quarantine) - len(released) == sent
