"""Kafka beyond one broker: the security settings of an external cluster reach confluent-kafka
and Spark's Kafka source alike (lakehouse.io.kafka_clients), `./run.sh topics` creates the topics,
and the embedded 3-node KRaft cluster loses nothing when a node is killed -9."""

from __future__ import annotations

import json
import math
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.catalog.events import PriceEvent
from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.config.settings import ConfigError, Settings, load_settings
from lakehouse.io.kafka_clients import client_config, spark_options
from lakehouse.io.kafka_io import EventProducer, admin_client
from streaming_jobs.medallion import silver_query
from tests.conftest import drain, isolated
from tests.processes import consecutive_free_ports, run_cli
from tests.shipped import SHIPPED


def _kafka(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=update)})


def test_plaintext_is_bootstrap_only(settings: Settings):
    assert client_config(settings) == {
        "bootstrap.servers": settings.kafka.bootstrap,
        "security.protocol": "PLAINTEXT",
    }
    assert spark_options(settings) == {
        "kafka.bootstrap.servers": settings.kafka.bootstrap,
        "kafka.security.protocol": "PLAINTEXT",
    }
    assert EventProducer.config(settings)["bootstrap.servers"] == settings.kafka.bootstrap


def test_sasl_ssl_reaches_both_clients(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "client.pem").write_text("-----BEGIN CERTIFICATE-----\nAAA\n")
    (tmp_path / "client.key").write_text("-----BEGIN PRIVATE KEY-----\nBBB\n")
    monkeypatch.setenv("SMARTMARKET_SECRET_KAFKA__SASL_PASSWORD", "s3cret")
    managed = _kafka(
        settings,
        bootstrap_servers="b1.example.org:9096,b2.example.org:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="lakehouse",
        ssl_ca=tmp_path / "ca.pem",
        ssl_cert=tmp_path / "client.pem",
        ssl_key=tmp_path / "client.key",
        ssl_check_hostname=False,
    )
    assert client_config(managed) == {
        "bootstrap.servers": "b1.example.org:9096,b2.example.org:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "lakehouse",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.endpoint.identification.algorithm": "none",
    }
    producer = EventProducer.config(managed)
    assert producer["sasl.password"] == "s3cret" and producer["acks"] == "all"
    assert spark_options(managed) == {
        "kafka.bootstrap.servers": "b1.example.org:9096,b2.example.org:9096",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="lakehouse" password="s3cret";',
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(tmp_path / "ca.pem"),
        "kafka.ssl.keystore.type": "PEM",
        "kafka.ssl.keystore.certificate.chain": "-----BEGIN CERTIFICATE-----\nAAA\n",
        "kafka.ssl.keystore.key": "-----BEGIN PRIVATE KEY-----\nBBB\n",
        "kafka.ssl.endpoint.identification.algorithm": "",
    }


def test_sasl_plain_without_tls_uses_the_plain_login_module(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SMARTMARKET_SECRET_KAFKA__SASL_PASSWORD", "pw")
    plain = _kafka(settings, security_protocol="SASL_PLAINTEXT", sasl_username="u")
    assert "ssl.ca.location" not in client_config(plain)
    jaas = spark_options(plain)["kafka.sasl.jaas.config"]
    assert jaas.startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")


def test_sasl_without_a_password_says_which_secret(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("SMARTMARKET_SECRET_KAFKA__SASL_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password"):
        client_config(_kafka(settings, security_protocol="SASL_SSL", sasl_username="u"))


def test_topics_command_creates_the_topics_once(
    kafka, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    own = isolated(settings, tmp_path)
    for name, topic in own.kafka.topics.model_dump().items():
        monkeypatch.setenv(f"SMARTMARKET_KAFKA__TOPICS__{name.upper()}", topic)
    first, again = run_cli("topics"), run_cli("topics")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    layout = f"partitions={own.kafka.partitions} replicas={own.kafka.replicas}"
    for topic in own.kafka.topics.all():
        assert f"{topic} created {layout}" in " ".join(first.stdout.split())
        assert f"{topic} exists {layout}" in " ".join(again.stdout.split())


MARKETS, COMMODITIES, DAYS = 30, 10, 20
REPLAY_EVENTS = MARKETS * COMMODITIES * DAYS  # 6 000
KILL_AFTER = 2_000  # events produced when one node is killed -9


def _replay_events() -> list[PriceEvent]:
    """Plausible prices (smooth seasonal moves, small level differences between markets) that
    pass every quality rule."""
    markets_ = sorted(m for m in SHIPPED.markets if m.startswith("IP-"))[:MARKETS]
    goods = sorted(SHIPPED.commodities.items())[:COMMODITIES]
    start = datetime(2025, 1, 1, 1, tzinfo=UTC)
    return [
        PriceEvent(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"kraft/{market}/{name}/{day}"),
            market_id=market,
            commodity=name,
            price=round(
                (c.min_price + c.max_price)
                / 3
                * (1 + 0.05 * math.sin(i))
                * (1 + 0.1 * math.sin(2 * math.pi * day / 180)),
                2,
            ),
            unit=c.unit,
            observed_at=start + timedelta(days=day),
            source="kraft-test",
        )
        for day in range(DAYS)
        for i, market in enumerate(markets_)
        for name, c in goods
    ]


def _wait_in_sync(settings: Settings, replicas: int, timeout: float = 180) -> None:
    """Until every partition of the platform's topics has ``replicas`` replicas in sync."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin_client(settings).list_topics(timeout=10).topics
        isr = {
            len(p.isrs) for t in settings.kafka.topics.all() for p in topics[t].partitions.values()
        }
        if isr == {replicas}:
            return
        assert time.monotonic() < deadline, f"in-sync replicas {isr}, expected {replicas}"
        time.sleep(1)


@pytest.mark.timeout(1200)  # 6 000 events through silver: a minute or more on a busy 2-core box
def test_three_nodes_lose_nothing_when_one_is_killed(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    first_port = consecutive_free_ports(9)  # per node a listener and a controller, then JMX
    env = {
        "SMARTMARKET_PATHS__DATA_DIR": str(tmp_path / "data"),
        "SMARTMARKET_KAFKA__NODES": "3",
        "SMARTMARKET_KAFKA__PORT": str(first_port),
        "SMARTMARKET_KAFKA__CONTROLLER_PORT": str(first_port + 1),
        # the session's broker holds the session's JMX exporter port: three of our own
        "SMARTMARKET_PROMETHEUS__KAFKA_JMX_PORT": str(first_port + 6),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = isolated(load_settings(), tmp_path)
    for name, topic in settings.kafka.topics.model_dump().items():
        monkeypatch.setenv(f"SMARTMARKET_KAFKA__TOPICS__{name.upper()}", topic)
    events = _replay_events()
    try:
        up = run_cli("up", "kafka")
        assert up.returncode == 0, up.stdout + up.stderr
        topics = run_cli("topics")
        assert "replicas=3" in topics.stdout, topics.stdout + topics.stderr
        _wait_in_sync(settings, 3)

        producer = EventProducer(settings)
        for i, event in enumerate(events):
            if i == KILL_AFTER:
                node = json.loads((settings.paths.run_dir / "kafka-2.pid").read_text())
                os.killpg(node["pid"], signal.SIGKILL)
            producer.send(event)
        assert producer.flush(timeout=300) == REPLAY_EVENTS  # every one confirmed, none failed
        _wait_in_sync(settings, 2)  # the killed node is out of every ISR

        again = run_cli("up", "kafka")  # restarts the killed node, which catches up
        assert "kafka-2 started" in " ".join(again.stdout.split()), again.stdout + again.stderr
        _wait_in_sync(settings, 3)  # ... and has caught up

        drain(spark, settings, silver_query)
    finally:
        down = run_cli("down", "kafka")
    assert down.returncode == 0, down.stdout + down.stderr
    # the three voters stopped at once: none waits for a quorum gone and is killed
    assert "kafka-3 stopped kafka-2 stopped kafka stopped" in " ".join(down.stdout.split())
    silver = DeltaTable(str(SILVER_PRICES.path(settings))).to_pandas()
    assert len(silver) == REPLAY_EVENTS and silver["event_id"].is_unique
    assert set(silver["event_id"]) == {str(e.event_id) for e in events}
