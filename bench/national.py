"""The national load (issue 54) through the real stack: a registry at the national count —
``--markets`` (16 000) *pasar* over Indonesia's 514 regencies and cities, each at plausible
coordinates around its regency's centroid, with ``--sensors`` (3) devices reporting every
``--sensor-seconds`` (30 s: 1 600 ev/s) and its prices of the catalogue's 25 commodities
``--reports`` (4) times a day — and ``--minutes`` of its events through Kafka, the pipeline
(``local[2]``) and the API, measured from outside. Starts its own stack in a temporary folder,
with a copy of ``conf/`` whose ``markets.csv`` is the generated registry.

    ./run.sh bench national [--markets 16000] [--minutes 30] [--sensors 3]
                            [--sensor-seconds 30] [--reports 4] [--registry-only]
                            [--serve-seconds 30] [--read-rate 2000] [--loads 5]

Prints one line a minute — produced and processed events, the backlog (Kafka records silver has
not finished with), freshness of probe prices (produce → ``GET /api/v1/prices/live``) p50/p95,
the mean silver and gold batch, the resident memory of the pipeline and the API, the size of the
checkpoints (the streaming state) and ``GET /prices/live?region=…&limit=100`` and
``GET /prices/regions`` p50/p95 — then the run's summary against the targets of issue 54, and,
the load still flowing, the serving phase: ``/prices/live`` by province at ``--read-rate`` and
cold loads of the dashboard in Chromium (``serving``).
``--registry-only`` prints the generated registry's counts and exits (no stack).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from bench.api import FIXED_CONNECTIONS
from bench.api import load as load_api
from bench.dashboard import measure as measure_dashboard
from bench.pipeline import Probes, in_kafka, percentiles, received
from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.conf import Conf, conf_at, conf_of
from lakehouse.catalog.events import Metric
from lakehouse.catalog.reference import regencies
from lakehouse.config.settings import Settings, load_settings
from lakehouse.io.kafka_io import EventProducer
from scripts.isolated_stack import isolated_stack
from scripts.services.supervisor import services
from streaming_jobs.medallion import GOLD_QUERY, SILVER_QUERY

MARKETS_HEADER = [
    "market_id",
    "name",
    "city",
    "province",
    "latitude",
    "longitude",
    "kind",
    "source",
    "regency_code",
]
#: how far (degrees) a generated market lies from its regency's centroid at most: a city is
#: small, a regency (kabupaten) spreads over its district towns
SPREAD = {"kota": 0.05, "kabupaten": 0.35}
SENSOR_METRICS = (Metric.temperature_c, Metric.humidity_pct, Metric.crowd_count)
SENSOR_VALUE = {  # a plausible reading: (low, high)
    Metric.temperature_c: (24.0, 32.0),
    Metric.humidity_pct: (55.0, 90.0),
    Metric.crowd_count: (50.0, 2000.0),
}
READS_EVERY = 0.2  # seconds between two sampled API reads


@dataclass(frozen=True)
class GeneratedMarket:
    market_id: str
    name: str
    regency_code: str
    regency: str
    province: str
    latitude: float
    longitude: float


def national_registry(count: int, conf: Conf, seed: int = 54) -> list[GeneratedMarket]:
    """``count`` markets spread over every regency (the same share each, the remainder to the
    first regencies of a seeded shuffle), each within ``SPREAD`` of its regency's centroid."""
    rng = random.Random(seed)
    places = sorted(regencies().values(), key=lambda r: r.code)
    order = places[:]
    rng.shuffle(order)
    share = Counter({r.code: count // len(places) for r in places})
    for r in order[: count % len(places)]:
        share[r.code] += 1
    names = {p.code: p.name for p in conf.provinces.values()}
    out = []
    for r in places:
        spread = SPREAD[r.kind]
        for n in range(1, share[r.code] + 1):
            out.append(
                GeneratedMarket(
                    market_id=f"NAT-{r.code.replace('.', '')}-{n:03d}",
                    name=f"Pasar {n} {r.name}",
                    regency_code=r.code,
                    regency=r.name,
                    province=names[r.province_code],
                    latitude=round(r.latitude + rng.uniform(-spread, spread), 5),
                    longitude=round(r.longitude + rng.uniform(-spread, spread), 5),
                )
            )
    return out


def write_conf(folder: Path, source: Conf, markets: list[GeneratedMarket]) -> Path:
    """A copy of the configuration folder ``source`` whose markets are ``markets``."""
    target = shutil.copytree(source.folder, folder / "conf")
    with (target / "markets.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(MARKETS_HEADER)
        for g in markets:
            out.writerow(
                [g.market_id, g.name, g.regency, g.province, g.latitude, g.longitude, "pasar",
                 "bench national (generated)", g.regency_code]
            )  # fmt: skip
    return target


class Load:
    """The registry's events at their steady rates, a second's worth at a time, until stopped:
    every device's reading each ``sensor_seconds`` and every market's prices ``reports`` times a
    day."""

    def __init__(
        self,
        settings: Settings,
        markets: list[GeneratedMarket],
        args: argparse.Namespace,
        conf: Conf,
    ) -> None:
        self.settings = settings
        self.devices = [
            (g.market_id, f"{g.market_id}-s{n}", SENSOR_METRICS[n % 3])
            for g in markets
            for n in range(args.sensors)
        ]
        self.series = [
            (g.market_id, c.id, round((c.min_price + c.max_price) / 3), c.unit)
            for g in markets[1:]  # the first market's series are the probes'
            for c in conf.commodities.values()
        ]
        self.sensor_rate = len(self.devices) / args.sensor_seconds
        self.price_rate = len(self.series) * args.reports / 86_400
        self.produced = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = Producer(EventProducer.config(self.settings))
        topics = self.settings.kafka.topics
        rng = random.Random(7)
        sensor_at, price_at, began = 0.0, 0.0, time.monotonic()
        while not self.stop.is_set():
            second = time.monotonic() - began
            now = datetime.now(UTC).isoformat()
            while sensor_at < (second + 1) * self.sensor_rate:
                market, device, metric = self.devices[int(sensor_at) % len(self.devices)]
                low, high = SENSOR_VALUE[metric]
                value = {
                    "event_id": str(uuid.uuid4()), "schema_version": 1, "event_type": "sensor",
                    "market_id": market, "device_id": device, "metric": metric.value,
                    "value": round(rng.uniform(low, high), 1), "observed_at": now,
                    "source": "bench-national",
                }  # fmt: skip
                self._send(producer, topics.sensors, orjson.dumps(value), device)
                sensor_at += 1
            while price_at < (second + 1) * self.price_rate:
                market, commodity, price, unit = self.series[int(price_at) % len(self.series)]
                value = {
                    "event_id": str(uuid.uuid4()), "schema_version": 1, "event_type": "price",
                    "market_id": market, "commodity": commodity, "unit": unit,
                    "price": round(price * rng.uniform(0.97, 1.03)), "observed_at": now,
                    "source": "bench-national",
                }  # fmt: skip
                self._send(producer, topics.prices, orjson.dumps(value), f"{market}:{commodity}")
                price_at += 1
            producer.poll(0)
            self.stop.wait(max(0.0, began + second + 1 - time.monotonic()))
        producer.flush()

    def _send(self, producer: Producer, topic: str, value: bytes, key: str) -> None:
        while True:
            try:
                producer.produce(topic, value, key)
                self.produced += 1
                return
            except BufferError:
                producer.poll(0.05)


def batch_means(settings: Settings) -> dict[str, tuple[float, float]]:
    """Per query, the sum and count of its micro-batches' seconds (the pipeline's histogram)."""
    p = settings.pipeline_metrics
    try:
        text = httpx.get(f"http://{p.host}:{p.port}/metrics", timeout=5).text
    except httpx.TransportError:
        return {}
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != m.BATCH_SECONDS.name:
            continue
        for s in family.samples:
            pair = found.setdefault(s.labels["query"], [0.0, 0.0])
            if s.name.endswith("_sum"):
                pair[0] = s.value
            elif s.name.endswith("_count"):
                pair[1] = s.value
    return {q: (v[0], v[1]) for q, v in found.items()}


def rss_mb(settings: Settings, name: str) -> float:
    """Resident memory (MB) of a service's process and its children."""
    (service,) = [s for s in services(settings) if s.name == name]
    proc = service.process()
    if proc is None:
        return float("nan")
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs) / 2**20


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _mean_batch(before: dict, after: dict, query: str) -> float:
    (s0, c0), (s1, c1) = before.get(query, (0.0, 0.0)), after.get(query, (0.0, 0.0))
    return (s1 - s0) / (c1 - c0) if c1 > c0 else float("nan")


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shipped = conf_of(load_settings())
        markets = national_registry(args.markets, shipped)
        folder = write_conf(Path(tmp), shipped, markets)
        os.environ["SMARTMARKET_PATHS__CONF_DIR"] = str(folder)
        with isolated_stack(Path(tmp) / "data", ("kafka", "pipeline", "api")) as settings:
            conf = conf_at(folder)
            api = f"http://{settings.api.host}:{settings.api.port}"
            load = Load(settings, markets, args, conf)
            regencies_used = len({g.regency_code for g in markets})
            print(
                f"national load: {len(markets):,} markets in {regencies_used} regencies, "
                f"{len(load.devices):,} devices ({load.sensor_rate:,.0f} ev/s), "
                f"{len(conf.commodities)} commodities ({load.price_rate:,.1f} ev/s), "
                f"{args.minutes:g} min",
                flush=True,
            )
            print(
                f"{'min':>4} {'produced':>9} {'done':>9} {'backlog':>8} {'fresh p50':>9} "
                f"{'p95':>6} {'silver s':>8} {'gold s':>7} {'pipe MB':>8} {'api MB':>7} "
                f"{'state MB':>8} {'live p95 ms':>11} {'map p95 ms':>10}",
                flush=True,
            )
            probes = Probes(settings, api)
            load.thread.start()
            province = markets[0].province
            fresh_all: list[float] = []
            began = time.monotonic()
            batches = batch_means(settings)
            with httpx.Client(base_url=api, timeout=30) as client:
                for minute in range(1, int(args.minutes) + 1):
                    fresh, live_ms, map_ms = [], [], []
                    end = began + minute * 60
                    while time.monotonic() < end:
                        fresh.append(probes.one(client)[0])
                        for path, params, into in (
                            ("/api/v1/prices/live", {"region": province, "limit": 100}, live_ms),
                            ("/api/v1/prices/regions", {"commodity": "beras"}, map_ms),
                        ):
                            t = time.monotonic()
                            client.get(path, params=params).raise_for_status()
                            into.append(1000 * (time.monotonic() - t))
                        time.sleep(READS_EVERY)
                    now = batch_means(settings)
                    done = received(settings)
                    fresh_all += fresh
                    print(
                        f"{minute:>4} {load.produced:>9,} {done:>9,} "
                        f"{in_kafka(settings) - done:>8,} {percentiles(fresh)[0]:>9.2f} "
                        f"{percentiles(fresh)[1]:>6.2f} "
                        f"{_mean_batch(batches, now, SILVER_QUERY):>8.1f} "
                        f"{_mean_batch(batches, now, GOLD_QUERY):>7.1f} "
                        f"{rss_mb(settings, 'pipeline'):>8.0f} {rss_mb(settings, 'api'):>7.0f} "
                        f"{folder_mb(Path(settings.paths.checkpoint_root)):>8.0f} "
                        f"{percentiles(live_ms)[1]:>11.1f} {percentiles(map_ms)[1]:>10.1f}",
                        flush=True,
                    )
                    batches = now
            probes.close()
            p50, p95, _ = percentiles(fresh_all)
            verdict = "not met" if not p95 <= 5 else "met" if args.minutes >= 30 else "too short"
            print(
                f"\nfreshness over {args.minutes:g} min: p50 {p50:.2f} s, p95 {p95:.2f} s "
                f"(target: p95 ≤ 5 s over ≥ 30 min: {verdict})",
                flush=True,
            )
            if args.serve_seconds > 0:
                serving(api, sorted({g.province for g in markets}), args)
            load.stop.set()
            load.thread.join(30)


def serving(api: str, provinces: list[str], args: argparse.Namespace) -> None:
    """The API and the page with the national registry loaded, the load still flowing:
    ``GET /prices/live?region=<province>&limit=100`` (provinces in turn) at ``--read-rate``
    offered for ``--serve-seconds`` (``bench api``'s open-loop generator, latency from the
    scheduled time), then ``--loads`` cold loads of the dashboard in Chromium (``bench
    dashboard``: first paint, the board drawn, the page's JS heap)."""
    urls = [f"{api}/api/v1/prices/live?{urlencode({'region': p, 'limit': 100})}" for p in provinces]
    load_api(urls, 10, 2, None, 1)  # warm the views and the interpreter
    result = load_api(urls, FIXED_CONNECTIONS, args.serve_seconds, args.read_rate, args.clients)
    print(
        f"/prices/live?region=… at {args.read_rate:,.0f} req/s offered for "
        f"{args.serve_seconds:g} s: answered {result.rate:,.0f} req/s, p50 "
        f"{result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, errors "
        f"{result.errors} (target: p99 ≤ 25 ms at 2 000 req/s)",
        flush=True,
    )
    measure_dashboard(api + "/", args.loads)
    print("target: first paint ≤ 2 s, no tab > 200 MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=16_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sensors", type=int, default=3, help="devices per market")
    parser.add_argument("--sensor-seconds", type=float, default=30.0)
    parser.add_argument("--reports", type=float, default=4.0, help="price reports a day")
    parser.add_argument("--registry-only", action="store_true")
    parser.add_argument("--serve-seconds", type=float, default=30.0, help="0: no serving phase")
    parser.add_argument("--read-rate", type=float, default=2000.0, help="req/s offered")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--loads", type=int, default=5, help="cold loads of the dashboard")
    args = parser.parse_args(argv)
    if args.registry_only:
        markets = national_registry(args.markets, conf_of(load_settings()))
        per_province = Counter(g.province for g in markets)
        print(
            f"{len(markets):,} markets, {len({g.regency_code for g in markets})} regencies, "
            f"{len(per_province)} provinces (fewest {min(per_province.values())}, most "
            f"{max(per_province.values())})"
        )
        return
    run(args)


if __name__ == "__main__":
    main()
