"""The feed collector (producers.news_feeds) against a local HTTP server serving the shipped
real-headline RSS file, and the real Kafka: each item published once, across restarts."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest

from lakehouse.config.settings import PROJECT_ROOT, NewsFeed, Settings
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from producers.news_feeds import FeedCollector, feed_events
from scripts.services import services
from tests.conftest import isolated
from tests.kafka_helpers import consume, end_offsets

FEED = PROJECT_ROOT / "datasets" / "news_feed.xml"


def with_feeds(settings: Settings, data_dir: Path, *urls: str) -> Settings:
    return settings.model_copy(
        update={
            "news": settings.news.model_copy(update={"feeds": [NewsFeed(url=u) for u in urls]}),
            "paths": settings.paths.model_copy(update={"data_dir": data_dir}),
        }
    )


def test_the_shipped_feed_reads_as_news_events() -> None:
    parsed = feedparser.parse(FEED.read_bytes())
    events, skipped = feed_events(parsed, NewsFeed(url="file"))
    assert (len(events), skipped) == (25, 0)
    assert all(e.url and e.url.startswith("http") and e.source for e in events)
    assert events[0].published_at.isoformat() == "2026-11-20T01:00:00+00:00"
    assert events[0].source == "gatra.com"  # the item's <source>, not the feed's title


def test_the_service_runs_only_with_feeds(conf_settings: Settings, tmp_path: Path) -> None:
    names = lambda s: [x.name for x in services(s)]  # noqa: E731
    assert "news_feeds" not in names(conf_settings)
    assert "news_feeds" in names(with_feeds(conf_settings, tmp_path, "http://127.0.0.1:1/x"))


@pytest.fixture
def feed_server() -> Iterator[str]:
    """http://127.0.0.1:<port>/ serving datasets/ (the shipped feed file)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(FEED.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_each_item_is_published_once_across_restarts(
    kafka, settings: Settings, tmp_path: Path, feed_server: str
) -> None:
    own = with_feeds(
        isolated(settings, tmp_path),
        tmp_path / "data",
        feed_server + FEED.name,
        feed_server + "missing.xml",
        "http://127.0.0.1:9/refused.xml",
    )
    ensure_topics(own)
    topic = own.kafka.topics.news
    since = end_offsets(own, topic)

    good, missing, refused = FeedCollector(own, EventProducer(own)).poll_all()
    assert (good.items, good.published, good.error) == (25, 25, None)
    assert missing.error and refused.error and missing.published == refused.published == 0
    restarted = FeedCollector(own, EventProducer(own))  # a new process: the seen ids on disk
    assert restarted.poll_all()[0].published == 0

    records = consume(own, topic, expected=25, since=since)
    assert len(records) == 25 == len({v["event_id"] for _, v in records})
    assert {v["collected_from"] for _, v in records} == {f"feed:{feed_server}{FEED.name}"}
