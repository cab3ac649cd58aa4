"""Alert notifications: new alert states of ``gold.alerts`` pushed to webhooks, Telegram,
WhatsApp and e-mail, outside the pipeline — to every broadcast channel, and to each user whose
subscription (``lakehouse.domain.accounts.subscriptions``) wants the alert, at once or in a daily
digest.

Runs as its own process (the ``notifier`` service, ``python -m streaming_jobs.alerts.notifier``) and
reads the Delta table without Spark, so a slow or dead receiver never holds up a micro-batch.
Each alert *state* (``status:severity`` — opened, escalated, resolved) is sent once per channel.
A failed attempt is retried with exponential backoff without blocking the other deliveries;
when the attempts are exhausted the state is recorded as undelivered. Every finished delivery
is a row of ``gold.alert_deliveries`` (a subscriber's: ``gold.subscription_deliveries``;
delivered or not, attempts, last error): the notifier skips what is there after a restart,
and ``lakehouse.io.lake.delivery_counts`` gives the totals for metrics.
Delivery is at least once: a crash between a successful POST and its record re-sends it, with
the same ``Idempotency-Key`` header (``<alert_id>:<state>``; an e-mail the same
``Message-ID``) so receivers can drop the copy.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from lakehouse.catalog.alert_rules import Message
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import (
    GOLD_ALERT_DELIVERIES,
    GOLD_ALERTS,
    GOLD_SUBSCRIPTION_DELIVERIES,
    Table,
    arrow_schema,
)
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import AlertSettings, NotifierChannel, Settings, load_settings
from lakehouse.domain.accounts.registry import open_registry
from lakehouse.domain.accounts.subscriptions import (
    SEVERITY_RANK,
    Subscription,
    SubscriptionStore,
    matches,
)
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse
from lakehouse.io.status import stop_event, write_status
from streaming_jobs.alerts import mail

log = logging.getLogger(__name__)

STATUS_NAME = "notifier"
RETRYABLE_STATUS = {408, 425, 429}  # and every 5xx


def state_of(alert: dict[str, Any]) -> str:
    """What a notification announces: ``open:warning``, ``open:critical``, ``resolved:…``."""
    return f"{alert['status']}:{alert['severity']}"


#: the status line's words: a resolved alert, else its severity
STATE_WORDS = {
    "resolved": Message(id="SELESAI", en="RESOLVED"),
    "critical": Message(id="KRITIS", en="CRITICAL"),
    "warning": Message(id="WASPADA", en="WARNING"),
}


def text_of(alert: dict[str, Any], language: str, titles: dict[str, Message]) -> str:
    """The human message in people's words: a status line (state and what the rule is called,
    ``titles`` of the alert rules), then the Indonesian and/or English text. The ids (rule,
    market, commodity) travel in the webhook's JSON, not in the text."""
    state = "resolved" if alert["status"] == "resolved" else alert["severity"]
    words = STATE_WORDS.get(state, Message(id=state.upper(), en=state.upper()))
    rule = alert["rule"]
    title = titles.get(rule, Message(id=rule, en=rule))
    languages = {"id": ["id"], "en": ["en"]}.get(language, ["id", "en"])
    head = " / ".join(getattr(words, lang) for lang in languages)
    name = " / ".join(getattr(title, lang) for lang in languages)
    lines = [f"[{head}] {name}"]
    lines += [alert["message_id"] if lang == "id" else alert["message_en"] for lang in languages]
    return "\n".join(lines)


def digest_text(alerts: list[dict[str, Any]], language: str, titles: dict[str, Message]) -> str:
    """A daily digest: a status line counting the alerts, then each alert's text."""
    languages = {"id": ["id"], "en": ["en"]}.get(language, ["id", "en"])
    n = len(alerts)
    head = " / ".join(
        f"RINGKASAN HARIAN] {n} peringatan" if lang == "id" else f"DAILY DIGEST] {n} alerts"
        for lang in languages
    )
    return "\n\n".join(["[" + head, *(text_of(a, language, titles) for a in alerts)])


def digest_due(at: datetime, hour: int, tz: tzinfo) -> datetime:
    """When the digest holding an alert state of ``at`` goes: the first ``hour`` o'clock (local
    time) after it — the same after a restart, so a digest that was due goes at once."""
    local = at.astimezone(tz)
    due = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return (due if due > local else due + timedelta(days=1)).astimezone(UTC)


def _json_safe(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if pd.isna(v) else v.isoformat() if isinstance(v, datetime) else v)
        for k, v in alert.items()
    }


def request_for(
    channel: NotifierChannel, alerts: list[dict[str, Any]], text: str, key: str
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(url, JSON body, headers) of one notification — one alert state, or a digest of several —
    in the channel's shape; ``key`` is its ``Idempotency-Key``."""
    headers = {"Idempotency-Key": key}
    if channel.kind == "telegram":
        url = f"{channel.url.rstrip('/')}/bot{channel.token}/sendMessage"
        return url, {"chat_id": channel.chat_id, "text": text}, headers
    if channel.token:
        headers["Authorization"] = f"Bearer {channel.token}"
    if channel.kind == "whatsapp":
        body = {
            "messaging_product": "whatsapp",
            "to": channel.to,
            "type": "text",
            "text": {"body": text},
        }
        return channel.url, body, headers
    if len(alerts) > 1:
        body = {"event": "alert.digest", "text": text}
        return channel.url, {**body, "alerts": [_json_safe(a) for a in alerts]}, headers
    (alert,) = alerts
    body = {"event": f"alert.{alert['status']}", "state": state_of(alert), "text": text}
    return channel.url, {**body, "alert": _json_safe(alert)}, headers


@dataclass
class Delivery:
    """One alert state on its way to a channel's recipient: a broadcast channel's own, or a
    subscription's (``channel`` is then the configured channel of its kind addressed to the
    subscription's recipient; None when no channel of that kind is configured)."""

    alert: dict[str, Any]
    channel: NotifierChannel | None
    subscription: Subscription | None = None
    first_attempt_at: datetime | None = None
    attempts: int = 0
    next_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_error: str = ""
    delivered: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """What is delivered once: the key of its row in ``gold.alert_deliveries`` (broadcast)
        or ``gold.subscription_deliveries``."""
        alert_id, state = self.alert["alert_id"], state_of(self.alert)
        if (sub := self.subscription) is None:
            assert self.channel is not None
            return (alert_id, self.channel.name, state)
        return (alert_id, state, sub.username, sub.channel, sub.recipient)

    @property
    def batch(self) -> tuple[str, ...]:
        """What goes out as one message: the delivery alone, or its recipient's digest."""
        if (sub := self.subscription) is not None and sub.digest:
            return ("digest", sub.username, sub.channel, sub.recipient)
        return self.key

    @property
    def language(self) -> str | None:
        return self.subscription.language if self.subscription else None

    def row(self) -> dict[str, Any]:
        """The finished delivery as a row of its table."""
        common = {
            "rule": self.alert["rule"],
            "severity": self.alert["severity"],
            "delivered": self.delivered,
            "attempts": self.attempts,
            "last_error": self.last_error or None,
            "first_attempt_at": self.first_attempt_at,
            "finished_at": datetime.now(UTC),
        }
        if (sub := self.subscription) is None:
            return dict(zip(("alert_id", "channel", "state"), self.key, strict=True)) | common
        names = ("alert_id", "state", "subscriber", "channel", "recipient")
        own = {"subscription_id": sub.subscription_id, "digest": sub.digest}
        return dict(zip(names, self.key, strict=True)) | own | common


class Notifier:
    """Polls ``gold.alerts`` for new states and delivers them to the broadcast channels and to
    the subscribers that want them."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        subscriptions: SubscriptionStore | None = None,
    ) -> None:
        self.settings = settings
        self.lake = Lakehouse(settings)
        self.conf: AlertSettings = settings.alerts
        self.rules = conf_of(settings)
        self.titles = self.rules.alerts.titles  # what each rule is called
        self.client = client or httpx.Client(timeout=self.conf.timeout_seconds)
        self.subscriptions = subscriptions or SubscriptionStore(
            open_registry(settings).engine, self.rules
        )
        self.seen: tuple[int, list[Subscription]] | None = None
        self.pending: dict[tuple[str, ...], Delivery] = {}
        self.done = self._finished(GOLD_ALERT_DELIVERIES) | self._finished(
            GOLD_SUBSCRIPTION_DELIVERIES
        )
        self.counts = {"delivered": 0, "undelivered": 0, "attempts": 0}

    def _finished(self, table: Table) -> set[tuple[str, ...]]:
        try:
            rows = self.lake[table].read(list(table.keys))
        except TableMissing:
            return set()
        return set(zip(*(rows.column(c).to_pylist() for c in table.keys), strict=True))

    def _carrier(self, sub: Subscription) -> NotifierChannel | None:
        """The channel a subscription's deliveries go through, addressed to its recipient: its
        own webhook, else the first configured channel of its kind."""
        if sub.channel == "webhook":
            return NotifierChannel(name=f"subscription:{sub.subscription_id}", url=sub.recipient)
        address = {"telegram": "chat_id", "whatsapp": "to", "email": "to"}[sub.channel]
        for channel in self.conf.channels:
            if channel.kind == sub.channel:
                return channel.model_copy(update={address: sub.recipient})
        return None

    # ---- what to send ------------------------------------------------------------------
    def poll(self, now: datetime) -> None:
        """Queue the alert states not delivered yet (if ``gold.alerts`` has a new version or
        the subscriptions changed)."""
        version = self.lake[GOLD_ALERTS].version()
        if version is None:
            return
        subscriptions = self.subscriptions.subscriptions()
        if self.seen == (version, subscriptions):
            return
        alerts = self.lake[GOLD_ALERTS].read().to_pandas()
        self.seen = (version, subscriptions)
        last_event = alerts[["last_firing_at", "resolved_at"]].max(axis=1)
        recent = alerts[last_event >= pd.Timestamp(now - timedelta(hours=self.conf.max_age_hours))]
        for alert in recent.to_dict("records"):
            for channel in self.conf.channels:
                if (
                    channel.broadcast
                    and SEVERITY_RANK[alert["severity"]] >= SEVERITY_RANK[channel.min_severity]
                ):
                    self._queue(Delivery(alert, channel, next_at=now))
            for sub in subscriptions:
                # a subscription gets the alert states that appear after it was made
                if alert["updated_at"] < sub.created_at or not matches(sub, alert, self.rules):
                    continue
                due = (
                    digest_due(alert["updated_at"], self.conf.digest_hour, self.settings.tz)
                    if sub.digest
                    else now
                )
                self._queue(Delivery(alert, self._carrier(sub), sub, next_at=due))

    def _queue(self, delivery: Delivery) -> None:
        if delivery.key not in self.done and delivery.key not in self.pending:
            self.pending[delivery.key] = delivery

    # ---- sending -----------------------------------------------------------------------
    def _send(self, batch: list[Delivery]) -> tuple[bool, bool, str]:
        """One attempt at one message (one delivery, or a digest): (delivered, worth
        retrying, error)."""
        head = batch[0]
        channel = head.channel
        if channel is None:
            assert head.subscription is not None
            kind = head.subscription.channel
            return False, False, f"no {kind} channel in alerts.channels carries subscriptions"
        alerts = [d.alert for d in batch]
        language = head.language or channel.language or self.conf.language
        if head.batch == head.key:
            text = text_of(head.alert, language, self.titles)
            key = f"{head.alert['alert_id']}:{state_of(head.alert)}"
        else:
            text = digest_text(alerts, language, self.titles)
            digest = "|".join(sorted("|".join(d.key) for d in batch))
            key = f"digest:{hashlib.sha256(digest.encode()).hexdigest()[:24]}"
        if channel.kind == "email":
            subject = text.partition("\n")[0]
            to = channel.to
            return mail.send(
                channel,
                mail.message(channel, to, subject, text, f"{key}:{to}"),
                self.conf.timeout_seconds,
            )
        url, body, headers = request_for(channel, alerts, text, key)
        try:
            response = self.client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return True, False, ""
        code = response.status_code
        return False, code >= 500 or code in RETRYABLE_STATUS, f"HTTP {code}"

    def attempt_due(self, now: datetime) -> list[Delivery]:
        """Try every message whose time has come; returns the deliveries that finished."""
        batches: dict[tuple[str, ...], list[Delivery]] = {}
        for d in self.pending.values():
            if d.next_at <= now:
                batches.setdefault(d.batch, []).append(d)
        finished = []
        for batch in batches.values():
            self.counts["attempts"] += 1
            ok, retry, error = self._send(batch)
            for d in batch:
                d.first_attempt_at = d.first_attempt_at or now
                d.attempts += 1
                d.last_error, d.delivered = error, ok
                if not ok and retry and d.attempts < self.conf.max_attempts:
                    backoff = self.conf.backoff_seconds * 2 ** (d.attempts - 1)
                    d.next_at = now + timedelta(seconds=min(backoff, self.conf.backoff_max_seconds))
                    continue
                del self.pending[d.key]
                self.done.add(d.key)
                self.counts["delivered" if ok else "undelivered"] += 1
                if not ok:
                    log.warning(
                        "alert undelivered",
                        extra={"delivery": "|".join(d.key), "error": d.last_error},
                    )
                finished.append(d)
        return finished

    def _record(self, finished: list[Delivery]) -> None:
        """The finished deliveries as rows of their tables (broadcast, subscriptions)."""
        for table, own in (
            (GOLD_ALERT_DELIVERIES, [d for d in finished if d.subscription is None]),
            (GOLD_SUBSCRIPTION_DELIVERIES, [d for d in finished if d.subscription is not None]),
        ):
            if own:
                rows = [d.row() for d in own]
                schema = arrow_schema(table)
                self.lake[table].append(pa.Table.from_pylist(rows, schema=schema))

    def step(self, now: datetime | None = None) -> None:
        """One round: look for new alert states, attempt what is due, record what finished."""
        now = now or datetime.now(UTC)
        self.poll(now)
        finished = self.attempt_due(now)
        if finished:
            self._record(finished)

    def run(self, stop: threading.Event) -> None:
        log.info("notifier running", extra={"channels": [c.name for c in self.conf.channels]})
        while True:
            self.step()
            write_status(
                self.settings, STATUS_NAME, "running", retrying=len(self.pending), **self.counts
            )
            if stop.wait(self.conf.poll_seconds):
                break
        write_status(self.settings, STATUS_NAME, "stopped", **self.counts)


def main() -> int:
    configure_logging()
    Notifier(load_settings()).run(stop_event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
