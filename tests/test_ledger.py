"""The tamper-evident price ledger on real Delta tables (written and edited with delta-rs):
incremental and exactly-once chaining, edits found at exactly the edited entry, the API."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import GOLD_PRICE_LEDGER, SILVER_PRICES
from lakehouse.config.settings import Settings
from lakehouse.domain import ledger
from lakehouse.io.lake import Lakehouse
from serving_api.app import create_app
from serving_api.auth import mint_key
from tests.conftest import secured

API = "/api/v1"
DAY = datetime(2025, 6, 1, 3, tzinfo=UTC)  # 10:00 in Jakarta


def prices(batch: int, day: int, ids: range) -> list[dict]:
    """Silver price rows of one micro-batch: two markets × two commodities."""
    rows = []
    for i in ids:
        at = DAY + timedelta(days=day, minutes=i)
        rows.append(
            {
                "event_id": f"e{i:04d}",
                "market_id": ("IP-001", "IP-003")[i % 2],
                "commodity": ("bawang_merah", "cabai_merah")[(i // 2) % 2],
                "observed_at": at,
                "price": 40000.0 + 37 * i,
                "unit": "kg",
                "source": "test",
                "silver_batch_id": batch,
                "observed_date": (at + timedelta(hours=7)).date(),
            }
        )
    return rows


def write_silver(settings: Settings, rows: list[dict]) -> None:
    write_deltalake(
        str(SILVER_PRICES.path(settings)),
        pa.Table.from_pylist(rows),
        mode="append",
        partition_by=["observed_date"],
    )


@pytest.fixture
def own(settings: Settings, tmp_path: Path) -> Settings:
    own = secured(settings, tmp_path)
    write_silver(own, prices(0, 0, range(0, 20)))
    write_silver(own, prices(1, 1, range(20, 40)))
    return own


def entries(settings: Settings) -> list[dict]:
    return Lakehouse(settings)[GOLD_PRICE_LEDGER].open().to_pyarrow_table().to_pylist()


def test_chains_are_built_incrementally_and_exactly_once(own: Settings) -> None:
    assert ledger.verify(own) == ledger.Verdict(True, 0, 0, 0, [])  # nothing chained yet
    assert ledger.build(own) == 40
    assert ledger.build(own) == 0  # nothing new: nothing appended
    # a replayed batch carries copies of chained events beside new ones
    write_silver(own, prices(2, 2, range(38, 44)))
    assert ledger.build(own) == 4
    chained = entries(own)
    assert len({e["event_id"] for e in chained}) == len(chained) == 44
    chains: dict[str, list[dict]] = {}
    for e in sorted(chained, key=lambda e: e["seq"]):
        chains.setdefault(e["chain"], []).append(e)
    assert len(chains) == 4
    for chain in chains.values():
        assert [e["seq"] for e in chain] == list(range(len(chain)))
        assert chain[0]["prev_hash"] == ledger.GENESIS
        for prev, entry in itertools.pairwise(chain):
            assert entry["prev_hash"] == prev["entry_hash"]
    verdict = ledger.verify(own)
    assert verdict.ok and verdict.entries == 44 and verdict.broken == []


def test_an_edited_silver_price_breaks_exactly_its_entry(own: Settings) -> None:
    ledger.build(own)
    DeltaTable(str(SILVER_PRICES.path(own))).update(
        updates={"price": "1.0"}, predicate="event_id = 'e0025'"
    )
    verdict = ledger.verify(own)
    assert not verdict.ok
    assert [(b.event_id, b.reason) for b in verdict.broken] == [
        ("e0025", "silver.prices was edited after it was chained: price")
    ]
    assert ledger.verify(own, on=date(2025, 6, 1)).ok  # the untouched day verifies clean
    assert not ledger.verify(own, on=date(2025, 6, 2)).ok


def test_an_edited_ledger_entry_is_named(own: Settings) -> None:
    ledger.build(own)
    DeltaTable(str(GOLD_PRICE_LEDGER.path(own))).update(
        updates={"price": "99.0"}, predicate="event_id = 'e0007'"
    )
    broken = ledger.verify(own).broken
    assert [b.event_id for b in broken] == ["e0007"]
    assert "ledger entry was edited" in broken[0].reason


def test_integrity_and_proof_over_the_api(own: Settings) -> None:
    ledger.build(own)
    central_key, central = mint_key("auditor", "central")
    reader_key, reader = mint_key("dash", "reader")
    closed = own.model_copy(update={"api": own.api.model_copy(update={"keys": [central, reader]})})
    with TestClient(create_app(closed)) as c:
        auditor = {"X-API-Key": central_key}
        assert c.get(f"{API}/integrity", headers={"X-API-Key": reader_key}).status_code == 403
        assert c.get(f"{API}/integrity").status_code == 401
        clean = c.get(f"{API}/integrity", headers=auditor).json()
        assert (clean["ok"], clean["entries"], clean["first_broken"]) == (True, 40, None)

        proof = c.get(f"{API}/prices/e0003/proof", headers=auditor).json()
        entry = proof["entry"]
        content_hash = hashlib.sha256(proof["content"].encode()).hexdigest()
        assert content_hash == entry["content_hash"]
        assert (
            hashlib.sha256((entry["prev_hash"] + content_hash).encode()).hexdigest()
            == (entry["entry_hash"])
        )
        assert c.get(f"{API}/prices/nope/proof", headers=auditor).status_code == 404

        DeltaTable(str(SILVER_PRICES.path(own))).update(
            updates={"source": "'forged'"}, predicate="event_id = 'e0003'"
        )
        report = c.get(f"{API}/ledger/verify", headers=auditor).json()
        assert report["ok"] is False
        assert report["first_broken"]["event_id"] == "e0003"
        assert report["first_broken"]["reason"].endswith(": source")
        day = c.get(f"{API}/integrity", params={"date": "2025-06-02"}, headers=auditor).json()
        assert day["ok"] is True and day["checked"] == 20


def test_ledger_over_silver_written_by_the_pipeline(settings, kafka, spark, tmp_path) -> None:
    """Prices through the real Kafka → bronze → silver, then chained, verified and tampered."""
    from lakehouse.catalog.events import PriceEvent
    from lakehouse.io.kafka_io import EventProducer, ensure_topics
    from streaming_jobs.medallion import silver_query
    from tests.conftest import drain, isolated

    own = isolated(settings, tmp_path)
    ensure_topics(own)
    producer = EventProducer(own)
    for day in range(10):
        for i, market_id in enumerate(("IP-001", "IP-003", "IP-004")):
            producer.send(
                PriceEvent(
                    market_id=market_id,
                    commodity="beras",
                    price=14000 + 20 * day + 5 * i,
                    unit="kg",
                    observed_at=DAY + timedelta(days=day),
                    source="ledger-test",
                )
            )
    producer.flush()
    drain(spark, own, silver_query)  # the ledger chains silver alone
    accepted = Lakehouse(own)[SILVER_PRICES].open().to_pyarrow_table().num_rows
    assert accepted == 30
    assert ledger.build(own) == 30
    assert ledger.build(own) == 0
    assert ledger.verify(own).ok
    victim = entries(own)[0]["event_id"]
    DeltaTable(str(SILVER_PRICES.path(own))).update(
        updates={"price": "1.0"}, predicate=f"event_id = '{victim}'"
    )
    assert [b.event_id for b in ledger.verify(own).broken] == [victim]
