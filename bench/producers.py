"""Producer throughput: replay at ``--speed max`` vs the raw confluent-kafka produce rate of the
same payloads, and MQTT → Kafka bridge throughput. Runs its own Kafka and Mosquitto.

    ./run.sh bench producers [--rows 1000000] [--readings 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from bench.baseline import raw_produce_rate
from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.config.settings import Settings
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer
from producers.devices import FleetConnection, Simulator, fleet, provision, publish
from producers.mqtt_bridge import MqttBridge
from producers.replay import replay
from scripts.isolated_stack import isolated_stack


def write_rows(path: Path, rows: int, conf: Conf) -> None:
    """Synthetic price reports in the long format: every market × commodity of ``conf``, hour by
    hour."""
    market_ids = [m.market_id for m in conf.physical_markets]
    catalogue = list(conf.commodities.values())
    start = datetime(2024, 1, 1, 6)
    with path.open("w") as out:
        out.write("observed_at,market_id,region,commodity,price,unit,source\n")
        for i in range(rows):
            market = market_ids[i % len(market_ids)]
            item = catalogue[(i // len(market_ids)) % len(catalogue)]
            at = start + timedelta(hours=i // (len(market_ids) * len(catalogue)))
            price = round((item.min_price + item.max_price) / 3 + (i * 37) % 1000)
            out.write(
                f"{at:%Y-%m-%dT%H:%M:%S}+07:00,{market},,{item.id},{price},{item.unit},bench\n"
            )


def bridge_rate(settings: Settings, readings: int) -> float:
    bridge = MqttBridge(settings, client_id="bench-bridge")
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,))
    runner.start()
    try:
        while not bridge.connected:
            time.sleep(0.05)
        markets = [m.market_id for m in conf_of(settings).physical_markets]
        devices = fleet(3, markets[:4])
        sim = Simulator(settings, devices, seed=1)
        start = datetime(2025, 1, 1, tzinfo=settings.tz)
        batch = list(islice(sim.readings(start, timedelta(minutes=1)), readings))
        client = FleetConnection(settings, provision(settings, devices))
        began = time.monotonic()
        publish(client, iter(batch), len(batch))
        while bridge.forwarded + bridge.dead_lettered < readings:
            time.sleep(0.01)
        seconds = time.monotonic() - began
        client.close()
    finally:  # a failure above would otherwise leave the bridge's thread holding the process
        stop.set()
        runner.join()
    return readings / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--readings", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "rows.csv"
        with isolated_stack(folder / "stack", ("kafka", "mosquitto")) as settings:
            write_rows(csv_path, args.rows, conf_of(settings))
            payloads = [
                (row.event.to_json(), row.event.key)
                for row in parse_rows(open_report(csv_path, conf_of(settings)), settings.tz)
                if row.event
            ]
            raw = raw_produce_rate(settings, payloads)
            del payloads
            began = time.monotonic()
            summary = replay(csv_path, settings, EventProducer(settings), speed=None)
            end_to_end = summary.published / (time.monotonic() - began)
            bridge = bridge_rate(settings, args.readings)

    print(f"\nproducer benchmark: {args.rows:,} synthetic price rows, {args.readings:,} readings")
    print(f"{'measure':<48}{'events/s':>12}{'vs raw':>9}")
    for label, rate in (
        ("raw confluent-kafka produce (baseline)", raw),
        ("replay --speed max, publish phase", summary.rate),
        ("replay --speed max, end to end (parse+publish)", end_to_end),
    ):
        print(f"{label:<48}{rate:>12,.0f}{rate / raw:>9.2f}")
    print(f"{'MQTT -> Kafka bridge (QoS 1, ack after Kafka)':<48}{bridge:>12,.0f}")


if __name__ == "__main__":
    main()
