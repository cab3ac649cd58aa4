"""The news endpoints over news tables written without Spark (delta-rs): filters, the signal,
empty tables, bad parameters. The real pipeline writing them: tests/test_news_pipeline.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import GOLD_NEWS_SIGNAL, SILVER_NEWS, arrow_schema
from lakehouse.config.settings import Settings
from serving_api.app import create_app
from tests.api_samples import API, with_api


def headline(event_id: str, title: str, at: datetime, province: str | None, mentions: list) -> dict:
    return {
        "event_id": event_id,
        "published_at": at,
        "title": title,
        "source": "test",
        "url": f"https://example.org/{event_id}",
        "text": None,
        "collected_from": "test",
        "mentions": [{"commodity": c, "direction": d} for c, d in mentions],
        "province": province,
        "regency": None,
        "topic": "price",
        "partition": 0,
        "offset": int(event_id),
        "kafka_timestamp": at,
        "ingest_time": at,
        "news_batch_id": 0,
    }


def write(settings: Settings, table, rows: list[dict]) -> None:
    write_deltalake(table.path(settings), pa.Table.from_pylist(rows, arrow_schema(table)))


def test_news_and_signal_answer_from_the_tables(conf_settings: Settings, tmp_path: Path) -> None:
    own = with_api(conf_settings, tmp_path / "lakehouse")
    with TestClient(create_app(own)) as c:  # nothing written yet: empty lists
        assert c.get(f"{API}/news").json() == [] and c.get(f"{API}/news/signal").json() == []
    write(
        own,
        SILVER_NEWS,
        [
            headline(
                "1",
                "Harga Cabai Rawit di Bantul Naik",
                datetime(2026, 11, 24, 2, tzinfo=UTC),
                "DI Yogyakarta",
                [("cabai_rawit", "up")],
            ),
            headline(
                "2",
                "Harga Beras Stabil",
                datetime(2026, 11, 24, 5, tzinfo=UTC),
                None,
                [("beras", "stable")],
            ),
            headline(
                "3", "Satgas Sidak Pasar", datetime(2026, 11, 25, 1, tzinfo=UTC), "Jawa Timur", []
            ),
        ],
    )
    write(
        own,
        GOLD_NEWS_SIGNAL,
        [
            {
                "date": date(2026, 11, 24),
                "commodity": "cabai_rawit",
                "province": "DI Yogyakarta",
                "headlines": 1,
                "up": 1,
                "down": 0,
                "stable": 0,
                "net_direction": 1.0,
                "intensity": 0.69,
                "updated_at": datetime.now(UTC),
            },
            {
                "date": date(2026, 11, 24),
                "commodity": "beras",
                "province": "Indonesia",
                "headlines": 1,
                "up": 0,
                "down": 0,
                "stable": 1,
                "net_direction": 0.0,
                "intensity": 0.69,
                "updated_at": datetime.now(UTC),
            },
        ],
    )
    with TestClient(create_app(own)) as c:
        items = c.get(f"{API}/news").json()
        assert [i["event_id"] for i in items] == ["3", "2", "1"]  # newest first
        assert items[0]["mentions"] == [] and items[1]["province"] is None
        chili = c.get(f"{API}/news", params={"commodity": "Cabai Rawit", "region": "DIY"}).json()
        assert [i["title"] for i in chili] == ["Harga Cabai Rawit di Bantul Naik"]
        assert chili[0]["mentions"] == [{"commodity": "cabai_rawit", "direction": "up"}]
        assert [
            i["event_id"] for i in c.get(f"{API}/news", params={"since": "2026-11-24T14:00"}).json()
        ] == ["3"]
        assert len(c.get(f"{API}/news", params={"limit": 1}).json()) == 1
        national = c.get(f"{API}/news/signal", params={"region": "Indonesia"}).json()
        assert national == [
            {
                "date": "2026-11-24",
                "commodity": "beras",
                "province": "Indonesia",
                "headlines": 1,
                "up": 0,
                "down": 0,
                "stable": 1,
                "net_direction": 0.0,
                "intensity": 0.69,
            }
        ]
        assert c.get(f"{API}/news", params={"region": "Atlantis"}).status_code == 404
        assert c.get(f"{API}/news", params={"limit": 501}).status_code == 422
        assert c.get(f"{API}/news/signal", params={"commodity": "durian"}).status_code == 404
        assert c.post(f"{API}/news", json=[]).status_code == 401  # writes need an ingest key
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/api/v1/news", "/api/v1/news/signal"} <= set(paths)
