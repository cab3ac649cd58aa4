"""MQTT → Kafka bridge for the market sensor devices.

Subscribes with a persistent session (``clean_session=False``, QoS 1) and acknowledges an MQTT
message only once Kafka has confirmed the event made from it. A crash between the two therefore
loses nothing: the broker redelivers what was not acknowledged (at-least-once), and because a
sensor event's id is derived from device, metric and time, the copies are recognisable
duplicates that silver drops. Payloads that cannot become an event go to the dead-letter topic
with their raw bytes, MQTT topic and reason — and are acknowledged once that is confirmed.

The market of a reading comes from the device registry, never from the topic: readings of an
unknown or revoked device, of a device publishing under another market's topic or a metric it
is not registered for, go to the dead-letter topic with that reason.

On the same connection the bridge reads the broker's ``$SYS/broker/#`` numbers (QoS 0) and
serves them with its own counts to Prometheus (``producers.bridge_metrics``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.events import DeadLetter, SensorEvent
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.accounts.broker_auth import BROKER_SYS_TOPICS, bridge_credentials
from lakehouse.domain.accounts.registry import Device, open_registry
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import stop_event, write_status
from producers.bridge_metrics import BridgeMetrics, serve
from producers.mqtt_io import make_client

log = logging.getLogger(__name__)

STATUS_NAME = "bridge"
STATUS_INTERVAL_SECONDS = 2.0


class PayloadError(ValueError):
    """An MQTT message that cannot become a sensor event."""


Lookup = Callable[[str], Device | None]


def registered_device(lookup: Lookup, market_id: str, device_id: str, metric: str) -> Device:
    """The registry's entry of the device that published under this market and metric;
    PayloadError when it may not."""
    device = lookup(device_id)
    if device is None:
        raise PayloadError(f"unknown device {device_id!r}: it is not in the device registry")
    if not device.active:
        raise PayloadError(f"device {device_id!r} is revoked")
    if device.market_id != market_id:
        raise PayloadError(
            f"device {device_id!r} is registered for market {device.market_id!r} but published "
            f"under market {market_id!r}"
        )
    if metric not in device.metrics:
        raise PayloadError(f"metric {metric!r} is not registered for device {device_id!r}")
    return device


def to_sensor_event(topic: str, payload: bytes, root: str, lookup: Lookup) -> SensorEvent:
    """The sensor event of one MQTT message, its market taken from the registry (``lookup``:
    device id → entry); PayloadError says why there is none."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != root or parts[2] != "devices":
        raise PayloadError(f"topic {topic!r} is not {root}/<market>/devices/<device>/<metric>")
    _, topic_market, _, device_id, metric = parts
    market_id = registered_device(lookup, topic_market, device_id, metric).market_id
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict) or "value" not in body or "observed_at" not in body:
        raise PayloadError('payload must be a JSON object with "value" and "observed_at"')
    try:
        observed_at = datetime.fromisoformat(str(body["observed_at"]))
        return SensorEvent(
            event_id=SensorEvent.reading_id(device_id, metric, observed_at),
            market_id=market_id,
            device_id=device_id,
            metric=metric,
            value=body["value"],
            observed_at=observed_at,
            source=f"mqtt:{device_id}",
        )
    except ValueError as exc:  # includes pydantic's ValidationError
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise PayloadError(detail) from None


class DeviceDirectory:
    """The registry's devices as the bridge sees them: re-read every
    ``security.registry_refresh_seconds``, and at once (at most every MISS_RELOAD_SECONDS) when
    an id is missing — a device registered a moment ago is not dead-lettered."""

    MISS_RELOAD_SECONDS = 0.5

    def __init__(self, settings: Settings) -> None:
        self.registry = open_registry(settings)
        self.refresh = settings.security.registry_refresh_seconds
        self.devices: dict[str, Device] = {}
        self.loaded_at = float("-inf")

    def _reload(self) -> None:
        self.devices = {d.device_id: d for d in self.registry.devices()}
        self.loaded_at = time.monotonic()

    def __call__(self, device_id: str) -> Device | None:
        age = time.monotonic() - self.loaded_at
        if age > self.refresh or (device_id not in self.devices and age > self.MISS_RELOAD_SECONDS):
            self._reload()
        return self.devices.get(device_id)


class MqttBridge:
    def __init__(self, settings: Settings, client_id: str | None = None) -> None:
        self.settings = settings
        self.producer = EventProducer(settings)
        self.directory = DeviceDirectory(settings)
        self.forwarded = 0
        self.dead_lettered = 0
        self.connected = False
        self.metrics = BridgeMetrics(self._counts)
        self.client = make_client(
            settings,
            client_id or settings.producers.bridge_client_id,
            persistent=True,
            manual_ack=True,
            credentials=bridge_credentials(settings) if settings.security.mqtt_auth else None,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.message_callback_add(BROKER_SYS_TOPICS, self._on_broker_numbers)

    @property
    def subscription(self) -> str:
        return f"{self.settings.mqtt.topic_root}/+/devices/+/+"

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused", extra={"reason": str(reason)})
            return
        self.connected = True
        client.subscribe([(self.subscription, 1), (BROKER_SYS_TOPICS, 0)])
        log.info("bridge connected", extra={"subscription": self.subscription})

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected = False
        self.metrics.forget_broker()
        log.warning("bridge disconnected", extra={"reason": str(reason)})

    def _on_broker_numbers(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        self.metrics.broker_message(message.topic, message.payload)

    def _counts(self) -> dict[m.Metric, float]:
        return {
            m.BRIDGE_FORWARDED: self.forwarded,
            m.BRIDGE_DEAD_LETTERED: self.dead_lettered,
            m.BRIDGE_CONNECTED: float(self.connected),
        }

    def _ack(self, message: mqtt.MQTTMessage, forwarded: bool) -> None:
        self.client.ack(message.mid, message.qos)
        if forwarded:
            self.forwarded += 1
        else:
            self.dead_lettered += 1

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        try:
            event = to_sensor_event(
                message.topic, message.payload, self.settings.mqtt.topic_root, self.directory
            )
        except PayloadError as exc:
            letter = DeadLetter.of_bytes(
                message.payload, origin="mqtt", reason=str(exc), mqtt_topic=message.topic
            )
            self.producer.produce(
                self.settings.kafka.topics.deadletter,
                letter.to_json(),
                key=message.topic,
                on_delivered=lambda: self._ack(message, forwarded=False),
            )
            return
        self.producer.produce(
            self.settings.kafka.topics.sensors,
            event.to_json(),
            key=event.key,
            on_delivered=lambda: self._ack(message, forwarded=True),
        )

    def _report(self, state: str) -> None:
        write_status(
            self.settings,
            STATUS_NAME,
            state,
            connected=self.connected,
            forwarded=self.forwarded,
            dead_lettered=self.dead_lettered,
        )

    def run(self, stop: threading.Event) -> int:
        """Forward until ``stop`` is set; non-zero if Kafka refused a message (the broker then
        keeps it for the next run, since it was not acknowledged). Serves the metrics meanwhile
        (``bridge_metrics``)."""
        server = serve(self.metrics, self.settings)
        try:
            return self._forward(stop)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()

    def _forward(self, stop: threading.Event) -> int:
        mqtt_settings = self.settings.mqtt
        self.client.connect(mqtt_settings.host, mqtt_settings.port, keepalive=30)
        next_report = 0.0
        try:
            while not stop.is_set() and not self.producer.failed:
                self.client.loop(timeout=0.05)
                self.producer.poll(0)
                if time.monotonic() >= next_report:
                    self._report("running")
                    next_report = time.monotonic() + STATUS_INTERVAL_SECONDS
        finally:
            self.producer.poll(0)
            self._drain()
            self.client.disconnect()
        if self.producer.failed:
            log.error("Kafka refused messages", extra={"errors": self.producer.failed[:5]})
            self._report("failed")
            return 1
        self._report("stopped")
        return 0

    def _drain(self) -> None:
        """Wait for outstanding deliveries and send their MQTT acknowledgements."""
        deadline = time.monotonic() + 30
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.poll(0.1)
            self.client.loop(timeout=0.01)
        for _ in range(5):
            self.client.loop(timeout=0.05)


def main() -> int:
    configure_logging()
    settings = load_settings()
    stop = stop_event()
    return MqttBridge(settings).run(stop)


if __name__ == "__main__":
    sys.exit(main())
