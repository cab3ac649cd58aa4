"""The MQTT bridge's metrics without services: Mosquitto's ``$SYS`` payloads → metric values,
and what the bridge's registry exposes, read back by prometheus_client's text-format parser.
(The bridge serving them against the real Mosquitto: tests/test_mqtt_auth.py.)"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.settings import Settings
from producers.bridge_metrics import SYS_TOPICS, BridgeMetrics, broker_sample
from scripts.prometheus_config import scrape_targets


def families(metrics: BridgeMetrics) -> dict[str, Metric]:
    """What a scrape of ``metrics`` reads: family name → family."""
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def exposed(metrics: BridgeMetrics) -> dict[str, float]:
    """What a scrape of ``metrics`` reads: sample name → value."""
    return {s.name: s.value for f in families(metrics).values() for s in f.samples}


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("$SYS/broker/clients/connected", b"3", (m.BROKER_CLIENTS_CONNECTED, 3.0)),
        ("$SYS/broker/uptime", b"86400 seconds", (m.BROKER_UPTIME, 86400.0)),
        ("$SYS/broker/publish/messages/received", b"120734", (m.BROKER_MESSAGES_RECEIVED, 120734)),
        ("$SYS/broker/publish/messages/dropped", b"0", (m.BROKER_MESSAGES_DROPPED, 0.0)),
        ("$SYS/broker/store/messages/count", b"17\n", (m.BROKER_MESSAGES_STORED, 17.0)),
        ("$SYS/broker/bytes/sent", b"1.5e9", (m.BROKER_BYTES_SENT, 1.5e9)),
    ],
)
def test_a_sys_number_becomes_its_metric(topic: str, payload: bytes, expected: tuple):
    assert broker_sample(topic, payload) == expected


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("$SYS/broker/version", b"mosquitto version 2.0.11"),  # not a number we serve
        ("$SYS/broker/load/messages/received/1min", b"12.5"),  # an average, not served
        ("markets/IP-001/devices/d1/temperature_c", b"27.5"),
        ("$SYS/broker/clients/connected", b""),
        ("$SYS/broker/clients/connected", b"   "),
        ("$SYS/broker/clients/connected", b"many"),
        ("$SYS/broker/uptime", b"seconds 12"),
        ("$SYS/broker/bytes/sent", b"\xff\xfe"),
        ("$SYS/broker/bytes/sent", b"nan"),
        ("$SYS/broker/bytes/sent", b"inf"),
    ],
)
def test_other_topics_and_unparsable_payloads_are_ignored(topic: str, payload: bytes):
    assert broker_sample(topic, payload) is None


def test_every_broker_metric_has_one_sys_topic():
    assert sorted(SYS_TOPICS.values(), key=lambda d: d.name) == sorted(
        m.BROKER_METRICS, key=lambda d: d.name
    )


def test_the_registry_serves_the_bridges_counts_and_the_last_broker_numbers():
    counts = {m.BRIDGE_FORWARDED: 7, m.BRIDGE_DEAD_LETTERED: 2, m.BRIDGE_CONNECTED: 1.0}
    metrics = BridgeMetrics(lambda: counts)
    assert exposed(metrics) == {
        m.BRIDGE_FORWARDED.series: 7.0,
        m.BRIDGE_DEAD_LETTERED.series: 2.0,
        m.BRIDGE_CONNECTED.series: 1.0,
    }

    metrics.broker_message("$SYS/broker/clients/connected", b"4")
    metrics.broker_message("$SYS/broker/publish/messages/received", b"100")
    metrics.broker_message("$SYS/broker/publish/messages/received", b"250")
    metrics.broker_message("$SYS/broker/clients/connected", b"garbage")  # the last good one stays
    metrics.broker_message("$SYS/broker/version", b"mosquitto version 2.0.11")
    counts[m.BRIDGE_FORWARDED] = 8  # asked at scrape time
    got = exposed(metrics)
    assert got[m.BROKER_CLIENTS_CONNECTED.series] == 4.0
    assert got[m.BROKER_MESSAGES_RECEIVED.series] == 250.0
    assert got[m.BRIDGE_FORWARDED.series] == 8.0
    served = families(metrics)
    assert served[m.BROKER_MESSAGES_RECEIVED.name].type == "counter"
    assert served[m.BROKER_CLIENTS_CONNECTED.name].type == "gauge"
    assert served[m.BROKER_CLIENTS_CONNECTED.name].documentation == m.BROKER_CLIENTS_CONNECTED.help

    metrics.forget_broker()  # disconnected: no stale broker numbers
    assert set(exposed(metrics)) == {d.series for d in m.BRIDGE_METRICS}


def test_no_scrape_job_for_a_bridge_that_serves_no_metrics(conf_settings: Settings):
    b = conf_settings.bridge_metrics
    off = conf_settings.model_copy(
        update={"bridge_metrics": b.model_copy(update={"enabled": False})}
    )
    assert m.JOB_MQTT not in scrape_targets(off)
