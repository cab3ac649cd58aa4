"""Live push over WebSocket: one background poller per feed and application fans new items out to
the subscribers whose filters match, each item encoded once whoever gets it.

- alerts: new and changed rows of ``gold.alerts`` (through the gold cache);
- prices: every row a commit adds to ``silver.prices`` — read from the commit files alone,
  through the reader the live view shares (``GoldCache.commits``: each commit read once), and
  only while someone is subscribed — with the changes against the previous close and the
  7-day median of the live view.

Nothing here reads a file or walks a whole table on the event loop: worker threads do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import WebSocket, status
from prometheus_client import Counter

from lakehouse.catalog.tables import SILVER_PRICES
from serving_api.cache import GoldCache
from serving_api.metrics import ApiMetrics
from serving_api.views import ALERTS, LIVE, LiveView, encode

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000  # a client this far behind is disconnected rather than slowing the others
Item = dict[str, Any]
Message = Callable[[Item], Awaitable[Item]]  # an item → the JSON message that pushes it


@dataclass(frozen=True)
class Filter:
    """What a subscriber wants: item field → accepted values (None: anything). Values compare
    as text, case-insensitively."""

    wanted: tuple[tuple[str, frozenset[str] | None], ...] = ()

    @classmethod
    def of(cls, **fields: str | Iterable[str] | None) -> Filter:
        def values(v: str | Iterable[str] | None) -> frozenset[str] | None:
            if v is None:
                return None
            return frozenset(x.lower() for x in ([v] if isinstance(v, str) else v))

        return cls(tuple((name, values(v)) for name, v in fields.items()))

    def mask(self, rows: pa.Table) -> pa.ChunkedArray | bool:
        """Which of ``rows`` (with the fields as columns) match, by Arrow's compute kernels."""
        mask: pa.ChunkedArray | bool = True
        for name, accepted in self.wanted:
            if accepted is not None:
                text = pc.utf8_lower(pc.cast(rows[name], pa.string()))
                matching = pc.fill_null(pc.is_in(text, pa.array(sorted(accepted))), False)
                mask = matching if mask is True else pc.and_(mask, matching)
        return mask

    def matches(self, item: Item) -> bool:
        return all(
            accepted is None or str(item.get(name, "")).lower() in accepted
            for name, accepted in self.wanted
        )


@dataclass(eq=False)
class Subscriber:
    filter: Filter
    #: the language items are shown in (a hub with ``localize``), e.g. ``id``
    language: str | None = None
    #: the encoded messages to send; None: disconnect
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


Poll = Callable[[list[Filter]], Awaitable[list[Item]]]
Localize = Callable[[Item, str], Item]  # an item, a language → the item in that language


class Hub:
    """Subscribers of one feed, and the poller that feeds them: ``poll`` returns the items that
    are new since its previous call, every ``poll_seconds``; it gets the subscribers' filters,
    and may leave out what none of them wants. Each item someone wants is sent as the JSON of
    ``message(item)`` — with ``localize``, of the item in the subscriber's language —, made and
    encoded once for all its subscribers (of a language)."""

    def __init__(
        self,
        name: str,
        poll: Poll,
        poll_seconds: float,
        metrics: ApiMetrics,
        pushed: Counter,
        message: Message,
        localize: Localize | None = None,
    ) -> None:
        self.name = name
        self.localize = localize
        self.poll = poll
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self.pushed = pushed
        self.message = message
        self.subscribers: set[Subscriber] = set()
        self.polls = 0  # completed polls: after the first, the feed knows where it starts
        self._task: asyncio.Task[None] | None = None

    def _count(self) -> None:
        self.metrics.ws_clients.labels(self.name).set(len(self.subscribers))

    def subscribe(self, wanted: Filter, language: str | None = None) -> Subscriber:
        subscriber = Subscriber(wanted, language)
        self.subscribers.add(subscriber)
        self._count()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._count()

    async def publish(self, items: list[Item]) -> None:
        for item in items:
            wanting = [s for s in self.subscribers if s.filter.matches(item)]
            texts: dict[str | None, str] = {}
            for subscriber in wanting:
                language = subscriber.language if self.localize else None
                if language not in texts:
                    shown = item if language is None else self.localize(item, language)
                    texts[language] = encode(await self.message(shown)).decode()
                text = texts[language]
                if subscriber not in self.subscribers:  # too slow, or left meanwhile
                    continue
                try:
                    subscriber.queue.put_nowait(text)
                    self.pushed.inc()
                except asyncio.QueueFull:
                    log.warning("subscriber too slow, disconnecting", extra={"feed": self.name})
                    self.unsubscribe(subscriber)
                    with contextlib.suppress(asyncio.QueueFull):
                        subscriber.queue.get_nowait()
                        subscriber.queue.put_nowait(None)  # tells the connection to close

    async def _run(self) -> None:
        while True:
            try:
                if items := await self.poll([s.filter for s in self.subscribers]):
                    await self.publish(items)
            except Exception:
                log.exception("poll failed", extra={"feed": self.name})
            self.polls += 1
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def serve(
        self, websocket: WebSocket, wanted: Filter, language: str | None = None
    ) -> None:
        """Push this feed's items that ``wanted`` matches to an accepted ``websocket``, as JSON
        text frames (in ``language``, with ``localize``), until it disconnects."""
        await websocket.accept()
        subscriber = self.subscribe(wanted, language)

        async def pump() -> None:
            while (text := await subscriber.queue.get()) is not None:
                await websocket.send_text(text)
            await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="too slow")

        async def until_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

        tasks = [asyncio.create_task(pump()), asyncio.create_task(until_disconnect())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.unsubscribe(subscriber)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _signature(alert: Item) -> tuple[Any, ...]:
    return (alert.get("status"), alert.get("updated_at"), alert.get("resolved_at"))


def changes(before: dict[str, tuple[Any, ...]], alerts: list[Item]) -> list[Item]:
    """Rows of ``alerts`` that are new or changed since ``before`` (alert id → signature),
    oldest update first."""
    fresh = [a for a in alerts if before.get(a["alert_id"]) != _signature(a)]
    return sorted(fresh, key=lambda a: (a.get("updated_at") is None, a.get("updated_at")))


def alert_feed(cache: GoldCache) -> Poll:
    """The alerts poll: new and changed alerts since the previous call (none on the first),
    compared in a worker thread, and only when the alerts view changed."""
    seen: dict[str, tuple[Any, ...]] | None = None
    compared: list[Item] | None = None

    def compare(alerts: list[Item]) -> list[Item]:
        nonlocal seen
        fresh = changes(seen, alerts) if seen is not None else []
        seen = {a["alert_id"]: _signature(a) for a in alerts}
        return fresh

    async def poll(_wanted: list[Filter]) -> list[Item]:
        nonlocal compared
        alerts = await cache.get(ALERTS)
        if alerts is compared:
            return []
        compared = alerts
        return await asyncio.to_thread(compare, alerts)

    return poll


def alert_message(attach: Callable[[Item], Item]) -> Message:
    """An alert's message, with the price-impact explanation ``attach`` adds (in a thread)."""

    async def message(alert: Item) -> Item:
        return {"type": "alert", "alert": await asyncio.to_thread(attach, alert)}

    return message


async def price_message(price: Item) -> Item:
    return {"type": "price", "price": price}


def wanted_prices(live: LiveView, rows: pa.Table, wanted: list[Filter]) -> list[Item]:
    """The ``rows`` of ``silver.prices`` that one of the ``wanted`` filters matches, oldest
    first, as the live view describes them: the rows nobody wants never become Python objects
    (at thousands of prices a second, they would hold the event loop for seconds)."""
    masks = [f.mask(rows) for f in wanted]
    if not any(m is True for m in masks):
        rows = rows.filter(reduce(pc.or_, masks))
    ordered = rows.sort_by("observed_at").to_pylist() if rows.num_rows else []
    return [live.describe(r) for r in ordered]


def price_feed(cache: GoldCache) -> Poll:
    """The prices poll: every row added to ``silver.prices`` since the previous call (from the
    version current at the first call, or from the start when the table appears later) that a
    subscriber wants, as the live view describes it. Without subscribers it only follows the
    table's versions (commit files, no data)."""
    commits = cache.commits(LIVE, SILVER_PRICES)  # what the live view reads of it
    version: int | None = None
    started = False

    async def poll(wanted: list[Filter]) -> list[Item]:
        nonlocal version, started
        if not started:
            started = True
            version = await asyncio.to_thread(commits.table.version)
            return []
        if version is None:
            if not await asyncio.to_thread(commits.table.exists):
                return []
            version = -1
        if not wanted:
            version = await asyncio.to_thread(commits.newest, version)
            return []
        version, rows = await asyncio.to_thread(commits.added_since, version)
        if not rows.num_rows:
            return []
        return await asyncio.to_thread(wanted_prices, await cache.get(LIVE), rows, wanted)

    return poll
