"""The feed collector (the ``news_feeds`` service): polls the RSS/Atom feeds of ``news.feeds``
every ``news.feed_poll_seconds`` and publishes each new item once to the news topic.

"Once" across restarts: the ids of the items published are remembered in
``<data_dir>/news_feeds.seen.json`` (the newest ``news.seen_items``), written after Kafka
confirmed them — an item whose confirmation a crash lost is sent again with the same event id,
which silver keeps once. An item without a usable title or date, or a feed that cannot be read,
is logged and skipped (the feed is tried again at the next poll); nothing stops the loop.
"""

from __future__ import annotations

import calendar
import json
import logging
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

from lakehouse.catalog.events import NewsEvent
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import NewsFeed, Settings, load_settings
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import stop_event, write_status

log = logging.getLogger(__name__)

NAME = "news_feeds"
USER_AGENT = "SmartMarketLakehouse-news-feeds/1.0"


def seen_path(settings: Settings) -> Path:
    return settings.paths.data_dir / f"{NAME}.seen.json"


@dataclass
class PollResult:
    feed: str
    items: int = 0
    published: int = 0
    skipped: int = 0
    error: str | None = None


def _time(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


def feed_events(parsed: Any, feed: NewsFeed) -> tuple[list[NewsEvent], int]:
    """The news events of a parsed feed, and how many items could not be one."""
    publisher = feed.source or parsed.feed.get("title") or feed.url
    events, skipped = [], 0
    for entry in parsed.entries:
        title = " ".join((entry.get("title") or "").split())
        published = _time(entry)
        if not title or published is None:
            skipped += 1
            continue
        url = entry.get("link") or None
        source = (entry.get("source") or {}).get("title") or publisher
        summary = entry.get("summary") or None
        try:
            events.append(
                NewsEvent(
                    event_id=NewsEvent.headline_id(title, source, url),
                    published_at=published,
                    title=title[:1000],
                    source=source[:200],
                    url=url,
                    text=summary[:20000] if summary else None,
                    collected_from=f"feed:{feed.url}"[:2048],
                )
            )
        except ValueError as exc:
            log.warning("feed item skipped", extra={"feed": feed.url, "reason": str(exc)})
            skipped += 1
    return events, skipped


class FeedCollector:
    """Polls the feeds and publishes what is new; remembers what it published."""

    def __init__(self, settings: Settings, producer: EventProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.path = seen_path(settings)
        try:
            self.seen: list[str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.seen = []
        self._seen = set(self.seen)

    def _remember(self, ids: list[str]) -> None:
        self.seen = (self.seen + ids)[-self.settings.news.seen_items :]
        self._seen = set(self.seen)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.seen))
        tmp.replace(self.path)

    def poll(self, feed: NewsFeed) -> PollResult:
        result = PollResult(feed.url)
        try:
            parsed = feedparser.parse(self._fetch(feed.url))
        except OSError as exc:  # unreachable, refused, timed out, HTTP error
            result.error = str(exc)
            log.warning("feed unreachable", extra={"feed": feed.url, "reason": result.error})
            return result
        if parsed.get("bozo") and not parsed.entries:
            result.error = str(parsed.get("bozo_exception") or "not a feed")
            log.warning("feed unreadable", extra={"feed": feed.url, "reason": result.error})
            return result
        events, result.skipped = feed_events(parsed, feed)
        result.items = len(events) + result.skipped
        new = [e for e in events if str(e.event_id) not in self._seen]
        for event in new:
            self.producer.send(event)
        self.producer.flush(self.settings.news.feed_timeout_seconds)
        self._remember(list(dict.fromkeys(str(e.event_id) for e in new)))
        result.published = len(new)
        log.info("feed polled", extra=vars(result))
        return result

    def _fetch(self, url: str) -> bytes:
        """The feed's bytes: over HTTP(S) with the poll timeout, else a local file."""
        if not url.startswith(("http://", "https://")):
            return Path(url).read_bytes()
        request = urllib.request.Request(
            url,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/rss+xml, application/atom+xml, application/xml, */*",
            },
        )
        with urllib.request.urlopen(request, timeout=self.settings.news.feed_timeout_seconds) as r:
            return r.read()

    def poll_all(self) -> list[PollResult]:
        return [self.poll(feed) for feed in self.settings.news.feeds]

    def run(self, stop: threading.Event) -> None:
        published = 0
        while not stop.is_set():
            results = self.poll_all()
            published += sum(r.published for r in results)
            failing = [r.feed for r in results if r.error]
            write_status(
                self.settings,
                NAME,
                "running",
                detail=f"{len(results)} feeds, {published} items published",
                published=published,
                failing=failing,
                polled_at=time.time(),
            )
            stop.wait(self.settings.news.feed_poll_seconds)


def main() -> int:
    configure_logging()
    settings = load_settings()
    stop = stop_event()
    write_status(settings, NAME, "starting")
    FeedCollector(settings, EventProducer(settings)).run(stop)
    write_status(settings, NAME, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
