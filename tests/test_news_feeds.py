"""The feed collector (producers.news_feeds) against a local HTTP server serving the shipped
real-headline RSS file, and the real Kafka: each item published once, across restarts; the
dated replay of the shipped headlines; unreachable feeds (offline) as one line."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest

from lakehouse.config.settings import PROJECT_ROOT, NewsFeed, Settings
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.status import read_status
from producers.news_feeds import FeedCollector, feed_events, replay_events, replay_headlines
from scripts.services.supervisor import services
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


def test_the_service_runs_by_default_and_only_with_feeds_or_a_replay(
    conf_settings: Settings, tmp_path: Path
) -> None:
    names = lambda s: [x.name for x in services(s)]  # noqa: E731
    assert "news_feeds" in names(conf_settings)  # Indonesian outlets' feeds and the replay
    assert conf_settings.news.feeds and conf_settings.news.replay_file
    no_replay = conf_settings.model_copy(
        update={"news": conf_settings.news.model_copy(update={"replay_file": None})}
    )
    assert "news_feeds" in names(no_replay)
    assert "news_feeds" not in names(with_feeds(no_replay, tmp_path))


def test_the_replay_dates_the_shipped_headlines_before_and_after_the_first_day(
    conf_settings: Settings,
) -> None:
    headlines = replay_headlines(conf_settings.news.replay_file)
    assert len(headlines) == 148  # the 180 labelled headlines but the "related" ones
    first = date(2026, 11, 27)
    tz = conf_settings.tz
    midnight = datetime(2026, 11, 27, tzinfo=tz)
    before = replay_events(headlines, conf_settings, first, midnight)
    assert len(before) == 14 * 24 // 6  # replay_days × one every replay_hours
    assert before[0].published_at == midnight - timedelta(days=14) + timedelta(hours=6)
    assert before[-1].published_at == midnight
    assert before[0].title == headlines[0][0] and before[0].source == headlines[0][1]
    assert {e.collected_from for e in before} == {"replay:news_headlines_labelled.csv"}
    later = replay_events(headlines, conf_settings, first, midnight + timedelta(hours=13))
    assert later[: len(before)] == before and len(later) == len(before) + 2
    assert len(replay_events(headlines, conf_settings, first, midnight + timedelta(days=99))) == 148


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


def test_offline_feeds_are_one_line_and_the_replay_goes_on(
    kafka, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = with_feeds(
        isolated(settings, tmp_path),
        tmp_path / "data",
        "http://127.0.0.1:9/refused.xml",
        "http://127.0.0.1:9/other.xml",
    )
    own = own.model_copy(update={"news": own.news.model_copy(update={"feed_poll_seconds": 0.1})})
    ensure_topics(own)
    since = end_offsets(own, own.kafka.topics.news)
    stop = threading.Event()
    collector = FeedCollector(own, EventProducer(own))
    thread = threading.Thread(target=collector.run, args=(stop,))
    with caplog.at_level("INFO", logger="producers.news_feeds"):
        thread.start()
        deadline = time.monotonic() + 30
        while (status := read_status(own, "news_feeds")) is None:
            assert time.monotonic() < deadline, "no status written"
            time.sleep(0.1)
        time.sleep(1.0)  # ten more polls of the unreachable feeds
        stop.set()
        thread.join(30)
    assert [r.getMessage() for r in caplog.records] == ["feeds unreachable: offline"]
    replayed = status["published"]  # 56 dated before today, one per 6 hours of today
    assert 56 <= replayed <= 60
    assert status["detail"].startswith(f"{replayed} items published ({replayed} replayed); ")
    assert "; feeds unreachable: offline (" in status["detail"]
    records = consume(own, own.kafka.topics.news, expected=replayed, since=since)
    assert len(records) == replayed == len({v["event_id"] for _, v in records})
