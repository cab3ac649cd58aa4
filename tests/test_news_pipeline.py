"""The issue's "done when": real headlines in the ``Title,Media,Date,Link`` shape (and a few
sent to ``POST /api/v1/news``) through the real Kafka, the news streaming query on the real
Spark and Delta, read back from the API — with duplicates kept once, unreadable records in
quarantine with their reason, the daily signal in gold and a ``news_surge`` alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from lakehouse.catalog.tables import GOLD_ALERTS, GOLD_NEWS_SIGNAL, SILVER_NEWS, SILVER_QUARANTINE
from lakehouse.config.settings import PROJECT_ROOT, Settings
from lakehouse.domain.intake.news_text import lexicon, read_headline
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.lake import Lakehouse
from producers.csv_ingest import ingest_file
from serving_api.app import create_app
from serving_api.auth import mint_key
from streaming_jobs.news import news_query
from tests.api_samples import API, with_api
from tests.conftest import drain, isolated
from tests.shipped import SHIPPED

EXPORT = PROJECT_ROOT / "datasets" / "news_headlines_export.csv"
WIB = ZoneInfo("Asia/Jakarta")


def rows(table, settings: Settings) -> list[dict]:
    return Lakehouse(settings)[table].open().to_pyarrow_table().to_pylist()


def test_real_headlines_through_kafka_spark_and_delta_to_the_api(
    spark, kafka, settings: Settings, tmp_path: Path
) -> None:
    key, entry = mint_key("test-news-ingest", "ingest")
    own = with_api(isolated(settings, tmp_path), keys=[entry])
    ensure_topics(own)
    producer = EventProducer(own)
    now = datetime(2026, 11, 25, 14, 0, tzinfo=WIB)
    first = ingest_file(EXPORT, own, producer, now=now)
    assert (first.published, first.dead_lettered) == (40, 0)
    ingest_file(EXPORT, own, producer, now=now + timedelta(hours=3))  # the same headlines again
    topic = own.kafka.topics.news
    producer.produce(topic, b"Harga cabai naik", key="plain-text")
    producer.produce(topic, json.dumps({"event_type": "price", "price": 1}).encode(), key="p")
    producer.flush()
    recent = datetime.now(UTC) - timedelta(hours=1)
    surge = [
        {
            "title": title,
            "source": "test-desk",
            "published_at": (recent - timedelta(minutes=10 * i)).isoformat(),
        }
        for i, title in enumerate(
            [
                "Harga Cabai Rawit di Pasar Bantul Melonjak",
                "Jelang Natal, Harga Cabai Rawit Merah di Bantul Meroket",
                "Harga Cabe Rawit di Kabupaten Bantul Naik Lagi",
            ]
        )
    ]
    with TestClient(create_app(own)) as c:
        posted = c.post(f"{API}/news", json=surge, headers={"X-API-Key": key})
        assert posted.status_code == 202, posted.text
        again = c.post(f"{API}/news", json=surge[0], headers={"X-API-Key": key})
        assert again.json()["event_ids"] == posted.json()["event_ids"][:1]

    drain(spark, own, news_query)
    drain(spark, own, news_query)  # nothing new: nothing changes

    news = rows(SILVER_NEWS, own)
    assert len(news) == 43 == len({r["event_id"] for r in news})  # duplicates kept once
    for row in news:  # what silver holds is what the extractor reads
        reading = read_headline(lexicon(SHIPPED), row["title"], row["text"])
        assert [(m["commodity"], m["direction"]) for m in row["mentions"]] == [
            (m.commodity, m.direction) for m in reading.mentions
        ]
        assert (row["province"], row["topic"]) == (reading.province, reading.topic)
    assert sum(1 for r in news if not r["mentions"]) == 2  # no commodity: kept, no mentions
    quarantined = [r for r in rows(SILVER_QUARANTINE, own) if r["event_type"] == "news"]
    assert sorted(r["reasons"][0] for r in quarantined) == ["malformed_json", "schema_mismatch"]

    signal = rows(GOLD_NEWS_SIGNAL, own)
    bantul = [
        s for s in signal if (s["commodity"], s["province"]) == ("cabai_rawit", "DI Yogyakarta")
    ]
    assert sum(s["headlines"] for s in bantul) == sum(s["up"] for s in bantul) == 3
    assert all(s["net_direction"] == 1.0 for s in bantul)
    assert sum(s["headlines"] for s in signal) == sum(len(r["mentions"]) for r in news)
    (alert,) = [a for a in rows(GOLD_ALERTS, own) if a["rule"] == "news_surge"]
    assert (alert["region"], alert["commodity"], alert["severity"]) == (
        "DI Yogyakarta",
        "cabai_rawit",
        "critical",
    )
    assert "naik" in alert["message_id"] and "rising" in alert["message_en"]

    with TestClient(create_app(own)) as c:
        items = c.get(f"{API}/news", params={"limit": 500}).json()
        assert len(items) == 43
        by_title = {i["title"]: i for i in items}
        medan = by_title[
            "Harga Tepung Terigu di Pasar Medan Merangkak Naik, Per Kilogram Mencapai Rp10-11 Ribu"
        ]
        assert medan["source"] == "voi.id" and medan["url"].startswith("https://staging.voi.id/")
        assert medan["province"] == "Sumatera Utara"
        assert medan["mentions"] == [{"commodity": "tepung_terigu_curah", "direction": "up"}]
        assert medan["published_at"] == "2026-11-25T06:55:00Z"  # 5 menit yang lalu, from --now
        chili = c.get(f"{API}/news", params={"commodity": "Cabai Rawit", "region": "jogja"})
        assert chili.status_code == 404  # "jogja" is no province name
        chili = c.get(f"{API}/news", params={"commodity": "cabai_rawit", "region": "DIY"}).json()
        assert {i["title"] for i in chili} == {s["title"] for s in surge}
        assert all(
            i["mentions"] == [{"commodity": "cabai_rawit", "direction": "up"}] for i in chili
        )
        points = c.get(
            f"{API}/news/signal", params={"commodity": "cabai_rawit", "region": "DIY"}
        ).json()
        assert sum(p["up"] for p in points) == 3 and all(p["net_direction"] == 1 for p in points)
        assert c.get(f"{API}/news", params={"commodity": "durian"}).status_code == 404
