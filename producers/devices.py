"""Simulated market sensor devices publishing to MQTT.

Each device of a market reports temperature (°C), humidity (%) and crowd count on
``<topic_root>/<market_id>/devices/<device_id>/<metric>`` with QoS 1, as JSON
``{"value": 27.4, "observed_at": "2026-11-22T08:00:00+07:00"}``. Values follow daily cycles of a
tropical market (warm afternoons, humid nights, crowds at dawn and late afternoon) with noise.
Faults can be injected at a given rate: stuck-at-zero, spikes, dropouts and clock skew.

Each simulated device is a device of the registry like any other (``provision``): it connects
with its own credentials and may publish only under its own topic; a revoked one stays silent.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count, islice
from typing import Any

import paho.mqtt.client as mqtt

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import Metric
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.accounts.broker_auth import sync_broker
from lakehouse.domain.accounts.registry import Conflict, open_registry
from lakehouse.io.status import next_round_at, run_rounds, stop_event, write_status
from producers.mqtt_io import make_client

log = logging.getLogger(__name__)

FAULTS = ("stuck_at_zero", "spike", "dropout", "clock_skew")
STATUS_NAME = "devices"


@dataclass(frozen=True)
class Device:
    market_id: str
    device_id: str

    def topic(self, root: str, metric: Metric) -> str:
        return f"{root}/{self.market_id}/devices/{self.device_id}/{metric.value}"


def fleet(per_market: int, market_ids: Iterable[str]) -> list[Device]:
    """``per_market`` devices in each of the markets ``market_ids``."""
    return [Device(m, f"{m}-d{i}") for m in market_ids for i in range(1, per_market + 1)]


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def true_value(device: Device, metric: Metric, at: datetime, rng: random.Random) -> float:
    """What a healthy sensor reads at local time ``at``."""
    hour = at.hour + at.minute / 60
    offset = random.Random(_seed(device.device_id, metric)).uniform(-1, 1)  # per-device bias
    daily = math.sin(2 * math.pi * (hour - 9) / 24)  # peaks mid-afternoon
    if metric is Metric.temperature_c:
        return round(27.5 + offset + 4 * daily + rng.gauss(0, 0.4), 2)
    if metric is Metric.humidity_pct:
        return round(min(100.0, max(20.0, 78 + 3 * offset - 12 * daily + rng.gauss(0, 2))), 1)
    peaks = 400 * math.exp(-(((hour - 7) / 2) ** 2)) + 150 * math.exp(-(((hour - 16) / 2.5) ** 2))
    return float(max(0, round(peaks * (1 + 0.2 * offset) + 10 + rng.gauss(0, 15))))


@dataclass(frozen=True)
class Reading:
    device_id: str
    topic: str
    payload: bytes
    fault: str | None


class Simulator:
    """Generates readings of a fleet at simulated times; deterministic for a given seed."""

    def __init__(
        self, settings: Settings, devices: list[Device], fault_rate: float = 0.0, seed: int = 0
    ) -> None:
        self.root = settings.mqtt.topic_root
        self.devices = devices
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)

    def readings_at(self, at: datetime) -> Iterator[Reading]:
        for device in self.devices:
            for metric in Metric:
                fault = self.rng.choice(FAULTS) if self.rng.random() < self.fault_rate else None
                if fault == "dropout":
                    continue
                value = true_value(device, metric, at, self.rng)
                observed_at = at
                if fault == "stuck_at_zero":
                    value = 0.0
                elif fault == "spike":
                    value = round(value * self.rng.uniform(3, 8) + 50, 2)
                elif fault == "clock_skew":
                    observed_at = at + timedelta(hours=self.rng.choice([-6, -3, 2, 5]))
                payload = json.dumps({"value": value, "observed_at": observed_at.isoformat()})
                topic = device.topic(self.root, metric)
                yield Reading(device.device_id, topic, payload.encode(), fault)

    def readings(self, start: datetime, step: timedelta) -> Iterator[Reading]:
        """Readings of every device at start, start + step, … (endless)."""
        for i in count():
            yield from self.readings_at(start + i * step)


def provision(settings: Settings, devices: list[Device]) -> dict[str, str]:
    """Register the devices in the registry (new credentials for those already there) and let
    the broker know; their passwords by device id. Revoked devices stay revoked and silent."""
    registry = open_registry(settings)
    passwords = {}
    for device in devices:
        try:
            _, password = registry.register_device(
                device.market_id, [m.value for m in Metric], device.device_id
            )
        except Conflict:
            try:
                _, password = registry.rotate(device.device_id)
            except Conflict:
                continue
        passwords[device.device_id] = password
    sync_broker(settings, registry)
    return passwords


class FleetConnection:
    """One MQTT connection per device, each with the device's own credentials (opened on its
    first reading)."""

    def __init__(self, settings: Settings, passwords: dict[str, str]) -> None:
        self.settings = settings
        self.passwords = passwords
        self.clients: dict[str, mqtt.Client] = {}

    def client(self, device_id: str) -> mqtt.Client:
        if (client := self.clients.get(device_id)) is None:
            client = make_client(
                self.settings, device_id, credentials=(device_id, self.passwords[device_id])
            )
            client.max_queued_messages_set(0)
            client.max_inflight_messages_set(200)
            client.connect(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=30)
            client.loop_start()
            self.clients[device_id] = client
        return client

    def close(self) -> None:
        for client in self.clients.values():  # first all: each network thread then ends at once
            client.disconnect()
        for client in self.clients.values():
            client.loop_stop()
        self.clients.clear()


def publish(fleet_connection: FleetConnection, readings: Iterator[Reading], limit: int) -> int:
    """Publish ``limit`` readings with QoS 1, each on its device's connection, and wait until
    the broker has acknowledged them; the number acknowledged. Readings of devices without
    credentials are skipped; those of a device the broker turned away (revoked while running)
    are not acknowledged."""
    infos = [
        fleet_connection.client(r.device_id).publish(r.topic, r.payload, qos=1)
        for r in islice(readings, limit)
        if r.device_id in fleet_connection.passwords
    ]
    return sum(_acknowledged(info) for info in infos)


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        info.wait_for_publish(timeout=60)
    except RuntimeError:  # not connected: the broker refuses the device
        return False
    return info.is_published()


def run(settings: Settings, stop: threading.Event) -> None:
    """Publish the fleet's readings every ``simulator.interval_seconds`` until stopped."""
    sim = settings.simulator
    devices = fleet(
        sim.devices_per_market, [m.market_id for m in conf_of(settings).physical_markets]
    )
    simulator = Simulator(settings, devices, sim.fault_rate, seed=time.time_ns())
    client = FleetConnection(settings, provision(settings, devices))
    published = 0

    def round_() -> tuple[float, dict[str, Any]]:
        nonlocal published
        began = time.time()
        batch = list(simulator.readings_at(datetime.now(settings.tz).replace(microsecond=0)))
        published += publish(client, iter(batch), len(batch))
        due = next_round_at(sim.interval_seconds, began)  # in step with the price rounds
        return due, {"detail": f"{published} readings published"}

    try:
        run_rounds(settings, STATUS_NAME, stop, round_)
    finally:
        client.close()
        write_status(settings, STATUS_NAME, "stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulated market sensor devices (MQTT)")
    parser.parse_args(argv)
    configure_logging()
    settings = load_settings()
    stop = stop_event()
    run(settings, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
