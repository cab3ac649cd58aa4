"""Live alerts: one background poller per application watches ``gold.alerts`` (through the gold
cache: a file check every ``api.alerts_poll_seconds``) and fans new and changed rows out to the
WebSocket subscribers whose filters match."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from serving_api.cache import GoldCache
from serving_api.metrics import ApiMetrics
from serving_api.views import ALERTS

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000  # a client this far behind is disconnected rather than slowing the others


@dataclass(frozen=True)
class AlertFilter:
    """What a subscriber wants; None matches everything. Severities compare case-insensitively."""

    severities: frozenset[str] | None = None
    province: str | None = None
    commodity: str | None = None

    def matches(self, alert: dict[str, Any]) -> bool:
        return (
            (self.severities is None or str(alert.get("severity", "")).lower() in self.severities)
            and (self.province is None or alert.get("region") == self.province)
            and (self.commodity is None or alert.get("commodity") == self.commodity)
        )


@dataclass(eq=False)
class Subscriber:
    filter: AlertFilter
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )


def _signature(alert: dict[str, Any]) -> tuple[Any, ...]:
    return (alert.get("status"), alert.get("updated_at"), alert.get("resolved_at"))


def changes(before: dict[str, tuple[Any, ...]], alerts: list[dict[str, Any]]) -> list[dict]:
    """Rows of ``alerts`` that are new or changed since ``before`` (alert id → signature),
    oldest update first."""
    fresh = [a for a in alerts if before.get(a["alert_id"]) != _signature(a)]
    return sorted(fresh, key=lambda a: (a.get("updated_at") is None, a.get("updated_at")))


class AlertHub:
    """Subscribers and the poller that feeds them."""

    def __init__(self, cache: GoldCache, metrics: ApiMetrics, poll_seconds: float) -> None:
        self.cache = cache
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, wanted: AlertFilter) -> Subscriber:
        subscriber = Subscriber(wanted)
        self.subscribers.add(subscriber)
        self.metrics.ws_clients.set(len(self.subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.metrics.ws_clients.set(len(self.subscribers))

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        for subscriber in list(self.subscribers):
            for alert in alerts:
                if not subscriber.filter.matches(alert):
                    continue
                try:
                    subscriber.queue.put_nowait(alert)
                    self.metrics.alerts_pushed.inc()
                except asyncio.QueueFull:
                    log.warning("alert subscriber too slow, disconnecting")
                    self.unsubscribe(subscriber)
                    with contextlib.suppress(asyncio.QueueFull):
                        subscriber.queue.get_nowait()
                        subscriber.queue.put_nowait(None)  # tells the connection to close
                    break

    async def _poll(self) -> None:
        seen: dict[str, tuple[Any, ...]] | None = None
        while True:
            try:
                alerts = await self.cache.get(ALERTS)
                if seen is not None and (fresh := changes(seen, alerts)):
                    self.publish(fresh)
                seen = {a["alert_id"]: _signature(a) for a in alerts}
            except Exception:
                log.exception("alert poll failed")
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
