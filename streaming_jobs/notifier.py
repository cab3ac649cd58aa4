"""Alert notifications: new alert states of ``gold.alerts`` pushed to webhooks, Telegram and
WhatsApp, outside the pipeline.

Runs as its own process (the ``notifier`` service, ``python -m streaming_jobs.notifier``) and
reads the Delta table without Spark, so a slow or dead receiver never holds up a micro-batch.
Each alert *state* (``status:severity`` — opened, escalated, resolved) is sent once per channel.
A failed attempt is retried with exponential backoff without blocking the other deliveries;
when the attempts are exhausted the state is recorded as undelivered. Every finished delivery
is a row of ``gold.alert_deliveries`` (delivered or not, attempts, last error): the notifier
skips what is there after a restart, and ``lakehouse.io.fast_read.delivery_counts`` gives the
totals for metrics.
Delivery is at least once: a crash between a successful POST and its record re-sends it, with
the same ``Idempotency-Key`` header (``<alert_id>:<state>``) so receivers can drop the copy.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from lakehouse.catalog.alert_rules import Message
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import GOLD_ALERT_DELIVERIES, GOLD_ALERTS, arrow_schema
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import AlertSettings, NotifierChannel, Settings, load_settings
from lakehouse.io import table_writes
from lakehouse.io.fast_read import TableMissing, open_table, read_rows, table_version
from lakehouse.io.status import stop_event, write_status

log = logging.getLogger(__name__)

STATUS_NAME = "notifier"
SEVERITY_RANK = {"warning": 1, "critical": 2}
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


def _json_safe(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if pd.isna(v) else v.isoformat() if isinstance(v, datetime) else v)
        for k, v in alert.items()
    }


def request_for(
    channel: NotifierChannel, alert: dict[str, Any], language: str, titles: dict[str, Message]
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(url, JSON body, headers) of one notification in the channel's shape."""
    text = text_of(alert, language, titles)
    headers = {"Idempotency-Key": f"{alert['alert_id']}:{state_of(alert)}"}
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
    body = {"event": f"alert.{alert['status']}", "state": state_of(alert), "text": text}
    return channel.url, {**body, "alert": _json_safe(alert)}, headers


@dataclass
class Delivery:
    """One alert state on its way to one channel."""

    alert: dict[str, Any]
    channel: NotifierChannel
    first_attempt_at: datetime | None = None
    attempts: int = 0
    next_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_error: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.alert["alert_id"], self.channel.name, state_of(self.alert))


class Notifier:
    """Polls ``gold.alerts`` for new states and delivers them to the configured channels."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.conf: AlertSettings = settings.alerts
        self.titles = conf_of(settings).alerts.titles  # what each rule is called
        self.client = client or httpx.Client(timeout=self.conf.timeout_seconds)
        self.seen_version: int | None = None
        self.pending: dict[tuple[str, str, str], Delivery] = {}
        self.done = self._finished()
        self.counts = {"delivered": 0, "undelivered": 0, "attempts": 0}

    def _finished(self) -> set[tuple[str, str, str]]:
        try:
            rows = read_rows(GOLD_ALERT_DELIVERIES, self.settings, ["alert_id", "channel", "state"])
        except TableMissing:
            return set()
        return set(zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True))

    # ---- what to send ------------------------------------------------------------------
    def poll(self, now: datetime) -> None:
        """Queue the alert states not delivered yet (if ``gold.alerts`` has a new version)."""
        version = table_version(GOLD_ALERTS, self.settings)
        if version is None or version == self.seen_version:
            return
        alerts = open_table(GOLD_ALERTS, self.settings).to_pandas()
        self.seen_version = version
        last_event = alerts[["last_firing_at", "resolved_at"]].max(axis=1)
        recent = alerts[last_event >= pd.Timestamp(now - timedelta(hours=self.conf.max_age_hours))]
        for alert in recent.to_dict("records"):
            for channel in self.conf.channels:
                if SEVERITY_RANK[alert["severity"]] < SEVERITY_RANK[channel.min_severity]:
                    continue
                delivery = Delivery(alert, channel, next_at=now)
                if delivery.key not in self.done and delivery.key not in self.pending:
                    self.pending[delivery.key] = delivery

    # ---- sending -----------------------------------------------------------------------
    def _send(self, delivery: Delivery) -> tuple[bool, bool, str]:
        """One attempt: (delivered, worth retrying, error)."""
        url, body, headers = request_for(
            delivery.channel,
            delivery.alert,
            delivery.channel.language or self.conf.language,
            self.titles,
        )
        try:
            response = self.client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return True, False, ""
        code = response.status_code
        return False, code >= 500 or code in RETRYABLE_STATUS, f"HTTP {code}"

    def attempt_due(self, now: datetime) -> list[dict[str, Any]]:
        """Try every delivery whose time has come; returns the rows of those that finished."""
        finished = []
        for key, d in list(self.pending.items()):
            if d.next_at > now:
                continue
            d.first_attempt_at = d.first_attempt_at or now
            d.attempts += 1
            self.counts["attempts"] += 1
            ok, retry, d.last_error = self._send(d)
            if not ok and retry and d.attempts < self.conf.max_attempts:
                backoff = self.conf.backoff_seconds * 2 ** (d.attempts - 1)
                d.next_at = now + timedelta(seconds=min(backoff, self.conf.backoff_max_seconds))
                continue
            del self.pending[key]
            self.done.add(key)
            self.counts["delivered" if ok else "undelivered"] += 1
            if not ok:
                log.warning(
                    "alert undelivered",
                    extra={"alert_id": key[0], "channel": key[1], "error": d.last_error},
                )
            finished.append(
                {
                    "alert_id": key[0],
                    "channel": key[1],
                    "state": key[2],
                    "rule": d.alert["rule"],
                    "severity": d.alert["severity"],
                    "delivered": ok,
                    "attempts": d.attempts,
                    "last_error": d.last_error or None,
                    "first_attempt_at": d.first_attempt_at,
                    "finished_at": datetime.now(UTC),
                }
            )
        return finished

    def _record(self, rows: list[dict[str, Any]]) -> None:
        schema = arrow_schema(GOLD_ALERT_DELIVERIES)
        table_writes.append(
            GOLD_ALERT_DELIVERIES, self.settings, pa.Table.from_pylist(rows, schema=schema)
        )

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
