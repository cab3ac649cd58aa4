"""MQTT clients of the tests: connect with some credentials (or none) and see whether the broker
admits them."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt

from lakehouse.config.settings import Settings
from producers.mqtt_io import make_client

WAIT = 30.0  # seconds a broker has to answer a connect


def try_connect(
    settings: Settings, credentials: tuple[str, str] | None, wait: float = WAIT
) -> mqtt.Client | None:
    """A connected client, or None when the broker refuses the credentials."""
    answer: queue.Queue = queue.Queue()
    client = make_client(settings, credentials=credentials)
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.put(reason)
    client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    client.loop_start()
    try:
        reason = answer.get(timeout=wait)
    except queue.Empty:
        reason = None
    if reason is None or reason.is_failure:
        client.loop_stop()
        client.disconnect()
        return None
    return client


def close(*clients: mqtt.Client | None) -> None:
    for client in clients:
        if client is not None:
            client.loop_stop()
            client.disconnect()
