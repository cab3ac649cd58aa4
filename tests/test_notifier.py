"""Notifier against a local HTTP receiver (never the internet): payload shapes, one
notification per alert state, retries with backoff, undelivered after the last attempt, and a
dead receiver never holding anything up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from deltalake import DeltaTable

from lakehouse.catalog.tables import GOLD_ALERT_DELIVERIES
from lakehouse.config.settings import AlertSettings, NotifierChannel, Settings
from lakehouse.io.lake import Lakehouse, delivery_counts
from scripts.isolated_stack import free_ports
from streaming_jobs.alerts.notifier import Notifier
from tests.conftest import isolated
from tests.notifier_samples import NOW, alert, write_alerts


class Receiver:
    """A webhook receiver on a free loopback port: records each request and answers with the
    next scripted status (200 when the script is empty)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(receiver.script.pop(0) if receiver.script else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def configured(settings: Settings, tmp_path, *channels: NotifierChannel, **knobs) -> Settings:
    base = isolated(settings, tmp_path)
    conf = AlertSettings(channels=list(channels), backoff_seconds=0.05, **knobs)
    return base.model_copy(update={"alerts": conf})


def deliveries(settings: Settings) -> list[dict]:
    rows = DeltaTable(str(GOLD_ALERT_DELIVERIES.path(settings))).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (r["alert_id"], r["channel"], r["state"]))


def test_each_state_is_sent_once_in_each_channel_shape(settings, tmp_path, receiver):
    settings = configured(
        settings,
        tmp_path,
        NotifierChannel(name="hook", url=f"{receiver.url}/hook", token="s3cret"),
        NotifierChannel(
            name="tg", kind="telegram", url=receiver.url, token="123:ABC", chat_id="-100",
            language="both",
        ),
        NotifierChannel(
            name="wa", kind="whatsapp", url=f"{receiver.url}/v20.0/555/messages", token="wa",
            to="62811", min_severity="critical",
        ),
    )  # fmt: skip
    write_alerts(settings, [alert("a1"), alert("old", last_firing_at=NOW - timedelta(days=9))])
    notifier = Notifier(settings)
    notifier.step(NOW)
    notifier.step(NOW)  # nothing new: nothing sent again
    by_path = {r["path"]: r for r in receiver.requests}
    assert sorted(by_path) == ["/bot123:ABC/sendMessage", "/hook"]  # warning: not to WhatsApp
    hook = by_path["/hook"]
    assert hook["headers"]["Authorization"] == "Bearer s3cret"
    assert hook["headers"]["Idempotency-Key"] == "a1:open:warning"
    assert hook["json"]["event"] == "alert.open"
    assert hook["json"]["alert"]["alert_id"] == "a1"
    assert hook["json"]["alert"]["resolved_at"] is None
    telegram = by_path["/bot123:ABC/sendMessage"]["json"]
    assert telegram == {
        "chat_id": "-100",
        "text": "[WASPADA / WARNING] Lonjakan harga / Price spike\n"
        "Harga Beras Medium di Pasar Induk Kramat Jati, DKI Jakarta naik 21.4%\n"
        "Medium rice price at Pasar Induk Kramat Jati, DKI Jakarta up 21.4%",
    }
    # Indonesian only, by default
    assert hook["json"]["text"] == (
        "[WASPADA] Lonjakan harga\n"
        "Harga Beras Medium di Pasar Induk Kramat Jati, DKI Jakarta naik 21.4%"
    )
    # the ids travel in the webhook's JSON
    assert (hook["json"]["alert"]["market_id"], hook["json"]["alert"]["commodity"]) == (
        "IP-001",
        "beras",
    )

    receiver.requests.clear()
    write_alerts(settings, [alert("a1", severity="critical")])  # escalated
    notifier.step(NOW)
    write_alerts(settings, [alert("a1", status="resolved", severity="critical")])
    Notifier(settings).step(NOW)  # a restarted notifier sends only what is new
    sent = [(r["path"], r["headers"]["Idempotency-Key"]) for r in receiver.requests]
    assert sorted(sent) == sorted(
        (path, f"a1:{state}")
        for state in ("open:critical", "resolved:critical")
        for path in ("/hook", "/bot123:ABC/sendMessage", "/v20.0/555/messages")
    )
    whatsapp = next(r for r in receiver.requests if r["path"].endswith("/messages"))
    assert whatsapp["headers"]["Authorization"] == "Bearer wa"
    assert whatsapp["json"]["messaging_product"] == "whatsapp"
    assert whatsapp["json"]["to"] == "62811"
    assert whatsapp["json"]["text"]["body"].startswith("[KRITIS] Lonjakan harga\nHarga Beras")
    assert all(d["delivered"] and d["attempts"] == 1 for d in deliveries(settings))
    assert delivery_counts(Lakehouse(settings)) == {"delivered": 8, "undelivered": 0}


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(settings, tmp_path, receiver):
    settings = configured(settings, tmp_path, NotifierChannel(name="hook", url=receiver.url))
    receiver.script = [503, 500]
    write_alerts(settings, [alert("a1")])
    notifier = Notifier(settings)
    t = NOW
    notifier.step(t)  # 503
    notifier.step(t + timedelta(seconds=0.01))  # backoff 0.05 s not over: no attempt
    assert len(receiver.requests) == 1
    notifier.step(t + timedelta(seconds=0.06))  # 500; next backoff 0.1 s
    notifier.step(t + timedelta(seconds=0.1))
    assert len(receiver.requests) == 2
    notifier.step(t + timedelta(seconds=0.2))  # 200
    assert len(receiver.requests) == 3
    [row] = deliveries(settings)
    assert (row["delivered"], row["attempts"], row["last_error"]) == (True, 3, None)


def test_receiver_down_means_undelivered_after_the_last_attempt_and_nothing_waits(
    settings, tmp_path
):
    (port,) = free_ports(1)  # nothing listens there
    settings = configured(
        settings,
        tmp_path,
        NotifierChannel(name="down", url=f"http://127.0.0.1:{port}/hook"),
        max_attempts=3,
        poll_seconds=0.05,
    )
    write_alerts(settings, [alert("a1")])
    notifier = Notifier(settings)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # the pipeline keeps writing alerts while deliveries fail: none of its writes wait, and
        # new alerts are attempted while the first one is still being retried
        for i in range(2, 5):
            write_alerts(settings, [alert(f"a{j}") for j in range(1, i + 1)])
        deadline = time.monotonic() + 60
        while delivery_counts(Lakehouse(settings))["undelivered"] < 4:
            assert time.monotonic() < deadline, notifier.counts
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    rows = deliveries(settings)
    assert [r["alert_id"] for r in rows] == ["a1", "a2", "a3", "a4"]
    assert all(not r["delivered"] and r["attempts"] == 3 for r in rows)
    assert all(r["last_error"].startswith("ConnectError") for r in rows)
    assert notifier.counts == {"delivered": 0, "undelivered": 4, "attempts": 12}


def test_a_rejected_notification_is_not_retried(settings, tmp_path, receiver):
    settings = configured(settings, tmp_path, NotifierChannel(name="hook", url=receiver.url))
    receiver.script = [401]
    write_alerts(settings, [alert("a1")])
    Notifier(settings).step(NOW)
    [row] = deliveries(settings)
    assert (row["delivered"], row["attempts"], row["last_error"]) == (False, 1, "HTTP 401")
