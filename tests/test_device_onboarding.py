"""End to end on the real services: a device registered over the API reaches silver with its
onboarding payload alone; once revoked, nothing more of it does — with the registry on SQLite
and on PostgreSQL."""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import SILVER_SENSORS
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.lake import Lakehouse
from producers.mqtt_bridge import MqttBridge
from serving_api.app import create_app
from serving_api.auth import mint_key
from tests.conftest import drain, isolated
from tests.kafka_helpers import consume, end_offsets

API = "/api/v1"
WAIT = 60.0


def device_from(onboarding: dict) -> tuple[mqtt.Client, queue.Queue]:
    """An MQTT client configured from the onboarding payload and nothing else."""
    outcomes: queue.Queue = queue.Queue()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=onboarding["client_id"],
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(onboarding["username"], onboarding["password"])
    client.on_connect = lambda _c, _u, _f, reason, _p: outcomes.put(reason)
    client.reconnect_delay_set(0.2, 1)
    client.connect(onboarding["broker"]["host"], onboarding["broker"]["port"], keepalive=30)
    client.loop_start()
    return client, outcomes


def reading(onboarding: dict, i: int) -> tuple[str, bytes]:
    at = datetime(2025, 6, 2, 8, tzinfo=UTC) + timedelta(minutes=10 * i)
    payload = json.dumps({"value": 26.0 + i, "observed_at": at.isoformat()})
    return f"{onboarding['topic_prefix']}/temperature_c", payload.encode()


def test_onboarding_payload_alone_takes_a_device_to_silver(
    settings: Settings, kafka, mosquitto, spark, tmp_path: Path, registry_url: str
) -> None:
    own = isolated(settings, tmp_path)
    own = own.model_copy(
        update={"security": own.security.model_copy(update={"registry_url": registry_url})}
    )
    ensure_topics(own)
    operator_key, operator = mint_key("field-team", "operator")
    own = own.model_copy(update={"api": own.api.model_copy(update={"keys": [operator]})})
    headers = {"X-API-Key": operator_key}
    sensors_before = end_offsets(own, own.kafka.topics.sensors)
    bridge = MqttBridge(own, client_id=f"bridge-{tmp_path.name}")
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,))
    runner.start()
    try:
        with TestClient(create_app(own)) as api:
            answer = api.post(
                f"{API}/devices",
                json={"market_id": "IP-005", "metrics": ["temperature_c"]},
                headers=headers,
            )
            assert answer.status_code == 201, answer.text
            onboarding = answer.json()["onboarding"]
            device, outcomes = device_from(onboarding)
            assert not outcomes.get(timeout=WAIT).is_failure
            for i in range(5):
                device.publish(*reading(onboarding, i), qos=1).wait_for_publish(timeout=WAIT)
            consume(own, own.kafka.topics.sensors, expected=5, since=sensors_before)

            revoked = api.post(f"{API}/devices/{onboarding['client_id']}/revoke", headers=headers)
            assert revoked.json()["status"] == "revoked"
            deadline = time.monotonic() + WAIT
            while (outcome := outcomes.get(timeout=WAIT)) is None or not outcome.is_failure:
                assert time.monotonic() < deadline, "the broker kept the revoked device"
            for i in range(5, 8):  # queued in the client: no connection will take them
                device.publish(*reading(onboarding, i), qos=1)
            time.sleep(2)
            device.loop_stop()
            device.disconnect()
    finally:
        stop.set()
        runner.join()

    from streaming_jobs.medallion import silver_query

    drain(spark, own, silver_query)  # the readings in silver are what onboarding gives
    rows = Lakehouse(own)[SILVER_SENSORS].open().to_pyarrow_table().to_pylist()
    mine = [r for r in rows if r["device_id"] == onboarding["client_id"]]
    assert sorted(r["value"] for r in mine) == [26.0, 27.0, 28.0, 29.0, 30.0]
    assert {r["market_id"] for r in mine} == {"IP-005"}
