"""The feed collector (the ``news_feeds`` service): polls the RSS/Atom feeds of ``news.feeds``
every ``news.feed_poll_seconds`` and publishes each new item once to the news topic.

Beside the feeds, a dated replay of the shipped real headlines (``news.replay_file``: their
titles, publishers and links, the "related" rows left out): one every ``news.replay_hours``,
the first ones dated in the ``news.replay_days`` before the stack's first day
(``producers.state.first_day``), so the news tab and the news signal have a past from the first
minute, and the rest published as their time comes — also on a machine without internet, where
the feeds are unreachable: that is one line in the log and the status, not one per poll.

"Once" across restarts: the ids of the items published are remembered in
``<data_dir>/news_feeds.seen.json`` (the newest ``news.seen_items``), written after Kafka
confirmed them — an item whose confirmation a crash lost is sent again with the same event id,
which silver keeps once. An item without a usable title or date, or a feed that cannot be read,
is logged and skipped (the feed is tried again at the next poll); nothing stops the loop.
"""

from __future__ import annotations

import calendar
import csv
import json
import logging
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser

from lakehouse.catalog.events import NewsEvent
from lakehouse.config.errors import InputError
from lakehouse.config.settings import NewsFeed, Settings
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import run_rounds, serve
from producers.state import first_day

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


def replay_headlines(path: Path) -> list[tuple[str, str, str]]:
    """The (title, publisher, link) of the headlines of a labelled headline file
    (``datasets/news_headlines_labelled.csv``) in file order, without the "related" rows (a
    headline quoted on another article's page, whose link is that page)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"news.replay_file: cannot read {path}: {exc}") from None
    return [(r["title"], r["publisher"], r["url"]) for r in rows if r["title_from"] != "related"]


def replay_events(
    headlines: list[tuple[str, str, str]], settings: Settings, first: date, now: datetime
) -> list[NewsEvent]:
    """The replayed headlines published by ``now``: headline ``i`` at ``(i + 1) ×
    news.replay_hours`` after local midnight ``news.replay_days`` before ``first``."""
    news = settings.news
    start_day = first - timedelta(days=news.replay_days)
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=settings.tz)
    source = f"replay:{news.replay_file.name if news.replay_file else ''}"
    events = []
    for i, (title, publisher, url) in enumerate(headlines):
        published = start + timedelta(hours=(i + 1) * news.replay_hours)
        if published > now:
            break
        events.append(
            NewsEvent(
                event_id=NewsEvent.headline_id(title, publisher, url),
                published_at=published,
                title=title,
                source=publisher,
                url=url or None,
                collected_from=source,
            )
        )
    return events


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

    def publish_new(self, events: list[NewsEvent]) -> int:
        """Publish the events not published before, wait for Kafka, remember them; how many."""
        new = [e for e in events if str(e.event_id) not in self._seen]
        for event in new:
            self.producer.send(event)
        self.producer.flush(self.settings.news.feed_timeout_seconds)
        self._remember(list(dict.fromkeys(str(e.event_id) for e in new)))
        return len(new)

    def poll(self, feed: NewsFeed) -> PollResult:
        """Read one feed and publish its new items; an unreachable or unreadable feed is an
        ``error`` of the result (``run`` logs a change of the failing feeds, once)."""
        result = PollResult(feed.url)
        try:
            parsed = feedparser.parse(self._fetch(feed.url))
        except OSError as exc:  # unreachable, refused, timed out, HTTP error
            result.error = str(exc)
            return result
        if parsed.get("bozo") and not parsed.entries:
            result.error = str(parsed.get("bozo_exception") or "not a feed")
            return result
        events, result.skipped = feed_events(parsed, feed)
        result.items = len(events) + result.skipped
        result.published = self.publish_new(events)
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
        """Replay the headlines now due and poll the feeds every ``news.feed_poll_seconds``
        until stopped; the status kept fresh by ``run_rounds``."""
        news = self.settings.news
        headlines = replay_headlines(news.replay_file) if news.replay_file else []
        first = first_day(self.settings, datetime.now(self.settings.tz).date())
        published = replayed = 0
        failing: list[PollResult] = []

        def round_() -> tuple[float, dict[str, Any]]:
            nonlocal published, replayed, failing
            now = datetime.now(UTC)
            new = self.publish_new(replay_events(headlines, self.settings, first, now))
            replayed += new
            results = self.poll_all()
            published += new + sum(r.published for r in results)
            was, failing = failing, [r for r in results if r.error]
            if [r.feed for r in failing] != [r.feed for r in was]:
                _log_failing(failing, len(results))
            return time.time() + news.feed_poll_seconds, {
                "detail": f"{published} items published ({replayed} replayed)"
                + _feeds_state(failing, len(news.feeds)),
                "published": published,
                "failing": [r.feed for r in failing],
            }

        run_rounds(self.settings, NAME, stop, round_)


def _feeds_state(failing: list[PollResult], feeds: int) -> str:
    """The feeds' part of the status line."""
    if not feeds:
        return ""
    if len(failing) == feeds:
        return f"; feeds unreachable: offline ({failing[0].error})"
    if failing:
        return f"; {feeds} feeds, failing: {', '.join(r.feed for r in failing)}"
    return f"; {feeds} feeds"


def _log_failing(failing: list[PollResult], feeds: int) -> None:
    """One line when the failing feeds change (not one per poll)."""
    if not failing:
        log.info("feeds reachable", extra={"feeds": feeds})
    elif len(failing) == feeds:
        log.warning("feeds unreachable: offline", extra={"reason": failing[0].error})
    else:
        for r in failing:
            log.warning("feed unreachable", extra={"feed": r.feed, "reason": r.error})


if __name__ == "__main__":
    sys.exit(
        serve(
            NAME, lambda settings, stop: FeedCollector(settings, EventProducer(settings)).run(stop)
        )
    )
