"""Authenticated MQTT against the real Mosquitto and Kafka: credentials and ACLs from the
registry, reloaded without a restart; the bridge vouches for every reading with the registry and
serves its counts and the broker's ``$SYS`` numbers (its account may read them) to Prometheus;
TLS with a CA made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.broker_auth import bridge_credentials, sync_broker
from lakehouse.domain.accounts.registry import Device, Registry, open_registry
from lakehouse.io.kafka_io import ensure_topics
from producers.mqtt_bridge import MqttBridge
from scripts.isolated_stack import free_ports
from scripts.services.mqtt_broker import Mosquitto
from tests.conftest import isolated
from tests.kafka_helpers import consume, end_offsets
from tests.mqtt_clients import WAIT, close, try_connect
from tests.processes import running_bridge

READING = b'{"value": 27.5, "observed_at": "2025-06-01T10:00:00+07:00"}'


class Listener:
    """The bridge's account subscribed to everything under the topic root."""

    def __init__(self, settings: Settings) -> None:
        self.received: queue.Queue[str] = queue.Queue()
        client = try_connect(settings, bridge_credentials(settings))
        assert client is not None, "the bridge's account was refused"
        client.on_message = lambda _c, _u, message: self.received.put(message.topic)
        client.subscribe(f"{settings.mqtt.topic_root}/#", qos=1)
        time.sleep(0.5)
        self.client = client

    def topics_until(self, sentinel: str) -> list[str]:
        """Topics received up to and including ``sentinel``."""
        seen = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                topic = self.received.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(topic)
            if topic == sentinel:
                return seen
        raise AssertionError(f"{sentinel} never arrived; saw {seen}")


def send(client: mqtt.Client, topic: str) -> None:
    client.publish(topic, READING, qos=1).wait_for_publish(timeout=WAIT)


def connected_device(
    settings: Settings, registry: Registry, market: str
) -> tuple[Device, mqtt.Client]:
    """A device registered at ``market`` for temperature, known to the broker and connected."""
    device, password = registry.register_device(market, ["temperature_c"])
    sync_broker(settings, registry)
    client = try_connect(settings, (device.device_id, password))
    assert client is not None
    return device, client


def wait_refused(settings: Settings, credentials: tuple[str, str]) -> None:
    """Until the broker (after its reload) refuses these credentials."""
    deadline = time.monotonic() + WAIT
    while (client := try_connect(settings, credentials)) is not None:
        close(client)
        assert time.monotonic() < deadline, "the broker still accepts the credentials"
        time.sleep(0.2)


@pytest.fixture
def registry(settings: Settings, mosquitto) -> Registry:
    return open_registry(settings)


def test_broker_admits_only_registered_devices_under_their_own_topic(settings, registry):
    assert try_connect(settings, None) is None, "anonymous access must be off"
    assert try_connect(settings, ("intruder", "guess")) is None
    a, a_password = registry.register_device("IP-001", ["temperature_c"])
    b, b_password = registry.register_device("IP-003", ["temperature_c"])
    sync_broker(settings, registry)
    root = settings.mqtt.topic_root
    own = f"{a.topic_prefix(root)}/temperature_c"
    listener = Listener(settings)
    device = try_connect(settings, (a.device_id, a_password))
    assert device is not None
    try:
        send(device, f"{root}/IP-003/devices/{a.device_id}/temperature_c")  # another market
        send(device, f"{b.topic_prefix(root)}/temperature_c")  # another device's topic
        send(device, own)
        assert listener.topics_until(own) == [own], "the broker let a misplaced reading through"

        registry.revoke(a.device_id)
        sync_broker(settings, registry)  # SIGHUP: the broker re-reads its files, no restart
        wait_refused(settings, (a.device_id, a_password))
        deadline = time.monotonic() + WAIT
        while device.is_connected():  # the broker also drops the revoked device's connection
            assert time.monotonic() < deadline, "the revoked device stays connected"
            time.sleep(0.1)
        device.publish(own, READING, qos=1)  # goes nowhere: no connection will have it
        sentinel = f"{b.topic_prefix(root)}/temperature_c"
        other = try_connect(settings, (b.device_id, b_password))
        send(other, sentinel)
        assert listener.topics_until(sentinel) == [sentinel], "a revoked device got through"

        _, new_password = registry.rotate(b.device_id)
        sync_broker(settings, registry)
        wait_refused(settings, (b.device_id, b_password))
        close(rotated := try_connect(settings, (b.device_id, new_password)))
        assert rotated is not None
        close(other)
    finally:
        close(device, listener.client)


@pytest.fixture
def bridge(settings: Settings, kafka, mosquitto, tmp_path: Path) -> Iterator[MqttBridge]:
    own = isolated(settings, tmp_path)
    ensure_topics(own)
    with running_bridge(own, f"bridge-{tmp_path.name}", WAIT) as bridge:
        yield bridge


def test_bridge_takes_the_market_from_the_registry_and_dead_letters_the_rest(
    bridge: MqttBridge, registry: Registry
):
    settings = bridge.settings
    topics = settings.kafka.topics
    before = {t: end_offsets(settings, t) for t in (topics.sensors, topics.deadletter)}
    root = settings.mqtt.topic_root
    device, client = connected_device(settings, registry, "IP-004")
    try:
        send(client, f"{device.topic_prefix(root)}/temperature_c")
        send(client, f"{device.topic_prefix(root)}/humidity_pct")  # not registered for it
        sensors = consume(settings, topics.sensors, expected=1, since=before[topics.sensors])
        assert [(v["device_id"], v["market_id"]) for _, v in sensors] == [
            (device.device_id, "IP-004")
        ]
        # revoked in the registry before the broker heard of it: the bridge refuses anyway
        registry.revoke(device.device_id)
        time.sleep(settings.security.registry_refresh_seconds + 0.5)
        send(client, f"{device.topic_prefix(root)}/temperature_c")
        letters = consume(settings, topics.deadletter, expected=2, since=before[topics.deadletter])
        reasons = sorted(v["reason"] for _, v in letters)
        assert reasons == [
            f"device {device.device_id!r} is revoked",
            f"metric 'humidity_pct' is not registered for device {device.device_id!r}",
        ]
    finally:
        close(client)


def scrape(settings: Settings) -> dict[str, float]:
    """The bridge's metrics endpoint over HTTP, parsed: sample name → value."""
    b = settings.bridge_metrics
    text = httpx.get(f"http://{b.host}:{b.port}/metrics", timeout=5).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_bridge_serves_its_counts_and_the_brokers_numbers(bridge: MqttBridge, registry: Registry):
    settings = bridge.settings
    device, client = connected_device(settings, registry, "IP-005")
    try:
        send(client, f"{device.topic_prefix(settings.mqtt.topic_root)}/temperature_c")

        def complete(values: dict[str, float]) -> bool:
            """The reading forwarded, and the broker's $SYS numbers (every 5 s: sys_interval)
            count the bridge and the device among its clients."""
            forwarded = values.get(m.BRIDGE_FORWARDED.series, 0)
            return forwarded >= 1 and values.get(m.BROKER_CLIENTS_CONNECTED.series, 0) >= 2

        deadline = time.monotonic() + WAIT
        while not complete(values := scrape(settings)):
            assert time.monotonic() < deadline, f"bridge metrics incomplete: {values}"
            time.sleep(0.5)
    finally:
        close(client)
    assert values[m.BRIDGE_FORWARDED.series] == 1
    assert values[m.BRIDGE_DEAD_LETTERED.series] == 0
    assert values[m.BRIDGE_CONNECTED.series] == 1
    assert values[m.BROKER_UPTIME.series] > 0
    assert values[m.BROKER_MESSAGES_RECEIVED.series] >= 1
    defined = {d.series for d in (*m.BRIDGE_METRICS, *m.BROKER_METRICS)}
    assert set(values) <= defined, "a metric not defined in lakehouse.catalog.ops_metrics"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer_key, issuer: x509.Name | None, ca: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("smartmarket test CA", ca_key, ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = cert("localhost", server_key, ca_key, ca.subject, ca=False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.mark.services  # starts a real Mosquitto of its own
def test_tls_listener_with_a_ca_of_our_own(settings: Settings, tmp_path: Path):
    ca, cert, key = _certificates(tmp_path)
    (port,) = free_ports(1)
    tls = settings.model_copy(
        update={
            "paths": settings.paths.model_copy(update={"data_dir": tmp_path / "data"}),
            "mqtt": settings.mqtt.model_copy(
                update={"port": port, "tls_ca": ca, "broker_cert": cert, "broker_key": key}
            ),
        }
    )
    broker = Mosquitto(tls)
    broker.start()
    try:
        registry = open_registry(tls)
        device, password = registry.register_device("IP-001", ["temperature_c"])
        sync_broker(tls, registry)
        client = try_connect(tls, (device.device_id, password))
        assert client is not None, "TLS connection with registry credentials failed"
        close(client)
        plain = tls.model_copy(update={"mqtt": tls.mqtt.model_copy(update={"tls_ca": None})})
        assert try_connect(plain, (device.device_id, password), wait=3) is None
    finally:
        broker.stop()
