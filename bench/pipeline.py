"""End-to-end freshness and throughput, measured from outside the pipeline: a raw confluent-kafka
producer in; the public API and the Delta tables out. Starts its own stack in a temporary
folder — Kafka, the pipeline service (``streaming_jobs.main``, local[2]) and the API — exactly as
``./run.sh up`` starts them.

    ./run.sh bench pipeline [--rates 0 1000 5000 20000] [--seconds 30] [--probes 5]
                            [--events 500000]

Prints, next to the raw produce rate of the same payloads measured in the same run:

- **freshness** at each background rate (0: idle), for ``--seconds`` and at least ``--probes``
  probes: a probe price (on a series of its own) is produced when the previous one was seen,
  at most one per half second, and ``GET /api/v1/prices/live`` is polled every 50 ms until it
  shows it; the same probes' arrival on ``WS /api/v1/prices/ws``; p50/p95/p99 of both;
- **reads while writes flow**: ``GET /api/v1/prices/live`` at ``--read-rate`` (2 000) requests/s
  offered (open loop, latency from the scheduled time), during the 5 000 ev/s phase, with the
  read mix of ``bench api`` (one commodity, one market, one commodity in one province; the
  unfiltered list of every series is ~400 bytes a series);
- **alerts**: once silver has drained the loaded phases' backlog and gold has aggregated it
  (both waits printed), a planted 45 °C reading at one market after another (the cold-chain
  rule's critical level): seconds until its alert is in ``GET /api/v1/alerts`` and on the
  alerts WebSocket;
- **throughput**: ``--events`` produced as fast as possible, then drained: events/s from the
  first produce to the last event in silver (accepted + quarantined, from ``gold.data_quality``,
  which a silver batch writes last), and silver checked to hold each of them exactly once.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import DeltaTable
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from bench.api import live_reads, load
from bench.baseline import raw_produce_rate
from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.tables import (
    GOLD_DATA_QUALITY,
    GOLD_DATA_QUALITY_DAILY,
    SILVER_HOLD_DECISIONS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    Table,
)
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.kafka_clients import client_config
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.lake import Lakehouse
from scripts.isolated_stack import isolated_stack
from streaming_jobs.medallion import GOLD_QUERY

PROBE_EVERY = 0.5
POLL_EVERY = 0.05
READ_RATE = 2000.0  # the /prices/live target's offered rate (docs/operations.md, #57)
PROBE_TIMEOUT = 600.0  # a loaded phase may build a backlog of minutes: it is measured, not cut
LOAD_CAP = 3  # a phase's background load lasts at most this many times --seconds


def series(conf: Conf) -> list[tuple[str, str, float, str]]:
    """Every physical market × commodity of ``conf`` with a plausible price and its unit; the
    first is the probes' own series."""
    return [
        (m.market_id, c.id, round((c.min_price + c.max_price) / 3), c.unit)
        for m in conf.physical_markets
        for c in sorted(conf.commodities.values(), key=lambda c: c.id)
    ]


def payload(market: str, commodity: str, price: float, unit: str, at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "event_type": "price",
            "market_id": market,
            "commodity": commodity,
            "price": price,
            "unit": unit,
            "observed_at": at.isoformat(),
            "source": "bench",
        }
    )


def payloads(count: int, at: datetime, conf: Conf) -> list[tuple[bytes, str]]:
    """``count`` distinct price events over every series of ``conf`` but the probes'."""
    background = series(conf)[1:]
    out = []
    for i in range(count):
        market, commodity, price, unit = background[i % len(background)]
        value = payload(market, commodity, price * (1 + 0.001 * (i % 5)), unit, at)
        out.append((value, f"{market}:{commodity}"))
    return out


def produce(settings: Settings, events: list[tuple[bytes, str]], rate: float | None) -> float:
    """Produce ``events`` at ``rate`` per second (None: as fast as possible); the produce rate."""
    producer = Producer(EventProducer.config(settings))
    topic = settings.kafka.topics.prices
    began = time.monotonic()
    for n, (value, key) in enumerate(events):
        if rate and (wait := began + n / rate - time.monotonic()) > 0:
            time.sleep(wait)
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush()
    return len(events) / (time.monotonic() - began)


def received(settings: Settings, counted_in: Table = GOLD_DATA_QUALITY) -> int:
    """Kafka records silver has finished with (accepted + quarantined + duplicates) — or, in
    ``gold.data_quality_daily``, those the gold query has aggregated."""
    try:
        table = DeltaTable(str(counted_in.path(settings)))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return int(table.to_pyarrow_table(columns=["received"])["received"].to_numpy().sum())


def wait_for(settings: Settings, count: int, timeout: float) -> float:
    """Wait until silver has finished with ``count`` records; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while received(settings) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"error: the pipeline did not drain {count} records in {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic()


def in_kafka(settings: Settings) -> int:
    """Event records in Kafka: the sum of the offsets of the topics whose records silver counts
    as received (all it reads but the operators' reviews)."""
    consumer = Consumer({**client_config(settings), "group.id": "bench-offsets", "log_level": 0})
    topics = [t for t in settings.kafka.topics.all() if t != settings.kafka.topics.reviews]
    total = 0
    try:
        for topic in topics:
            for partition in range(settings.kafka.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                total += high - low
        return total
    finally:
        consumer.close()


def drain(settings: Settings) -> float:
    """Wait until silver has finished with every record in Kafka (the backlog a loaded phase
    left), so that the next phase measures itself; seconds waited."""
    began = time.monotonic()
    return wait_for(settings, in_kafka(settings), 1800) - began


def last_gold_batch(settings: Settings) -> float:
    """When the gold query last completed a batch (POSIX seconds; 0: none yet), from the
    pipeline's metrics endpoint."""
    p = settings.pipeline_metrics
    try:
        text = httpx.get(f"http://{p.host}:{p.port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    for family in text_string_to_metric_families(text):
        if family.name == m.LAST_BATCH.name:
            gold = [s.value for s in family.samples if s.labels["query"] == GOLD_QUERY]
            return max(gold, default=0.0)
    return 0.0


def gold_catch_up(settings: Settings) -> float:
    """Wait until the gold query has aggregated every record silver has finished with (after a
    loaded phase it still digests the backlog) and the batch that did so has completed — its
    alert step runs after its aggregates are committed — so that the alert probes measure an
    idle stack that keeps up; seconds waited."""
    began = time.monotonic()
    deadline = began + 1800

    def waited(what: str) -> None:
        if time.monotonic() > deadline:
            raise SystemExit(f"error: the gold query did not {what} in 1800 s")
        time.sleep(0.25)

    while received(settings, GOLD_DATA_QUALITY_DAILY) < received(settings):
        waited("catch up with silver")
    counted = DeltaTable(GOLD_DATA_QUALITY_DAILY.path(settings)).history(1)[0]["timestamp"] / 1000
    while last_gold_batch(settings) < counted:
        waited("complete the batch that caught up")
    return time.monotonic() - began


class Probes:
    """Probe prices on the probes' series; their arrival through the API and the WebSocket."""

    def __init__(self, settings: Settings, api: str) -> None:
        self.settings = settings
        self.market, self.commodity, self.price, self.unit = series(conf_of(settings))[0]
        self.api = api
        self.producer = Producer(EventProducer.config(settings))
        self.ws_seen: dict[str, float] = {}
        self._stop = threading.Event()
        url = f"{api.replace('http', 'ws', 1)}/api/v1/prices/ws?market_id={self.market}"
        self._ws = connect(f"{url}&commodity={self.commodity}", open_timeout=30)
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        for message in self._ws:
            price = json.loads(message)["price"]
            self.ws_seen.setdefault(price["event_id"], time.monotonic())

    def one(self, client: httpx.Client) -> tuple[float, float | None]:
        """Produce a probe; seconds until /prices/live shows it, and until the socket did."""
        at = datetime.now(UTC)
        body = orjson.loads(
            value := payload(self.market, self.commodity, self.price, self.unit, at)
        )
        sent = time.monotonic()
        self.producer.produce(self.settings.kafka.topics.prices, value, f"{self.market}:probe")
        self.producer.flush()
        params = {"market_id": self.market, "commodity": self.commodity}
        while time.monotonic() - sent < PROBE_TIMEOUT:
            try:
                rows = client.get("/api/v1/prices/live", params=params).json()
            except httpx.TimeoutException:  # a slow answer: the probe is not seen yet
                continue
            if rows and datetime.fromisoformat(rows[0]["observed_at"]) >= at:
                seen = time.monotonic() - sent
                break
            time.sleep(POLL_EVERY)
        else:
            raise SystemExit(f"error: a probe price did not appear within {PROBE_TIMEOUT:g} s")
        pushed = self.ws_seen.get(body["event_id"])
        return seen, None if pushed is None else pushed - sent

    def close(self) -> None:
        """Close the socket and the producer (an idle producer left open retries the broker
        the benchmark stops, on stderr, until the process ends)."""
        self._ws.close()
        self.producer.close()


def alert_probes(settings: Settings, api: str, count: int) -> tuple[list[float], list[float]]:
    """A hot reading (45 °C: the cold-chain rule's critical level) at one market after another,
    each seconds until its alert is in GET /api/v1/alerts and on WS /api/v1/alerts/ws."""
    places = conf_of(settings).physical_markets
    producer = Producer(EventProducer.config(settings))
    pushed: dict[str, float] = {}
    socket = connect(f"{api.replace('http', 'ws', 1)}/api/v1/alerts/ws", open_timeout=30)

    def listen() -> None:
        for message in socket:
            alert = json.loads(message)["alert"]
            if alert["rule"] == "temperature":
                pushed.setdefault(alert["market_id"], time.monotonic())

    threading.Thread(target=listen, daemon=True).start()
    listed, on_socket = [], []
    with httpx.Client(base_url=api, timeout=10) as client:
        for market in places[-count:]:
            at = datetime.now(UTC)
            reading = {
                "event_id": str(uuid.uuid4()), "schema_version": 1, "event_type": "sensor",
                "market_id": market.market_id, "device_id": f"{market.market_id}-bench",
                "metric": "temperature_c", "value": 45.0, "observed_at": at.isoformat(),
                "source": "bench",
            }  # fmt: skip
            sent = time.monotonic()
            producer.produce(settings.kafka.topics.sensors, orjson.dumps(reading))
            producer.flush()
            while time.monotonic() - sent < PROBE_TIMEOUT:
                alerts = client.get("/api/v1/alerts", params={"limit": 500}).json()
                if any(
                    a["rule"] == "temperature" and a["market_id"] == market.market_id
                    for a in alerts
                ):
                    listed.append(time.monotonic() - sent)
                    break
                time.sleep(POLL_EVERY)
            else:
                raise SystemExit(f"error: no alert within {PROBE_TIMEOUT:g} s of its reading")
            while market.market_id not in pushed and time.monotonic() - sent < PROBE_TIMEOUT:
                time.sleep(POLL_EVERY)  # the socket may come after the listing
            if market.market_id in pushed:
                on_socket.append(pushed[market.market_id] - sent)
    socket.close()
    return listed, on_socket


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``values``; NaN for none (a minute whose only probe was still
    waiting when it ended)."""
    if not values:
        return math.nan, math.nan, math.nan
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return statistics.median(ordered), at(0.95), at(0.99)


def steady(settings: Settings, rate: float, stop: threading.Event, produced: list[int]) -> None:
    """Produce ``rate`` events/s, a second's worth at a time, until ``stop`` is set; the count
    of each second's events goes to ``produced``."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    while not stop.is_set():
        if rate:
            produce(settings, second := payloads(int(rate), at, conf_of(settings)), rate)
            produced.append(len(second))
        else:
            stop.wait(1.0)


def freshness(
    settings: Settings,
    probes: Probes,
    rate: float,
    seconds: float,
    min_probes: int,
    read_rate: float = READ_RATE,
) -> None:
    """Probes, one after another (at most one per half second), while a background load of
    ``rate`` events/s flows, for ``seconds`` and at least ``min_probes`` probes — the load for
    at most ``LOAD_CAP`` × ``seconds``: above the pipeline's capacity a probe waits for the
    backlog, which grows as long as the load lasts (the later probes then see it drain)."""
    base = received(settings)
    stop, produced = threading.Event(), []
    background = threading.Thread(target=steady, args=(settings, rate, stop, produced))
    reads: dict[str, object] = {}
    reader = None
    if rate == 5000:
        urls = [probes.api + path for path in live_reads(conf_of(settings))]

        def read_load() -> None:
            reads["result"] = load(urls, 100, seconds - 5, read_rate, clients=1)

        reader = threading.Thread(target=read_load)
    background.start()
    if reader:
        reader.start()
    api_seen, ws_seen = [], []
    began = time.monotonic()
    with httpx.Client(base_url=probes.api, timeout=10) as client:
        while time.monotonic() - began < seconds or len(api_seen) < min_probes:
            if time.monotonic() - began > LOAD_CAP * seconds:
                stop.set()
            sent = time.monotonic()
            seen, pushed = probes.one(client)
            api_seen.append(seen)
            if pushed is not None:
                ws_seen.append(pushed)
            time.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - sent)))
    loaded = min(time.monotonic() - began, LOAD_CAP * seconds)
    stop.set()
    background.join()
    if reader:
        reader.join()
    wait_for(settings, base + sum(produced) + len(api_seen), 900)
    phase = {"rate": rate, "api": api_seen, "ws": ws_seen, "reads": reads.get("result")}
    phase["read_rate"] = read_rate
    report_phase(phase, loaded)


def report_phase(phase: dict, loaded: float) -> None:
    """Print a freshness phase's line (and its reads) as soon as it is measured."""
    api_q = percentiles(phase["api"])
    ws_q = percentiles(phase["ws"]) if phase["ws"] else (float("nan"),) * 3
    print(f"{phase['rate']:>10,.0f} {loaded:>7.0f} {len(phase['api']):>7}", end="")
    print(f" {api_q[0]:>8.2f} {api_q[1]:>6.2f} {api_q[2]:>6.2f}", end="")
    print(f" {ws_q[0]:>7.2f} {ws_q[1]:>6.2f} {ws_q[2]:>6.2f}", flush=True)
    if reads := phase["reads"]:
        print(
            f"{'':>10} reads while writes flow: GET /prices/live at "
            f"{phase['read_rate']:,.0f} req/s offered: {reads.rate:,.0f} req/s answered, "
            f"p50 {reads.percentile(50):.1f} ms, "
            f"p99 {reads.percentile(99):.1f} ms, {reads.errors} errors",
            flush=True,
        )


def throughput(settings: Settings, count: int) -> dict[str, float]:
    events = payloads(count, datetime.now(UTC) - timedelta(minutes=5), conf_of(settings))
    drain(settings)  # what the alert probes left
    base = received(settings)
    began = time.monotonic()
    produce_rate = produce(settings, events, None)
    done = wait_for(settings, base + count, 1800)
    return {"events": count, "produce_rate": produce_rate, "rate": count / (done - began)}


def exactly_once(settings: Settings) -> tuple[int, int]:
    """(rows in silver.prices + silver.quarantine, distinct event ids among them) — a held price
    released into silver counts once: its quarantine row is history."""
    ids = []
    try:
        decisions = (
            Lakehouse(settings)[SILVER_HOLD_DECISIONS]
            .open()
            .to_pyarrow_table(columns=["event_id", "decision"])
        )
    except TableMissing:
        released = set()
    else:
        released = {d["event_id"] for d in decisions.to_pylist() if d["decision"] == "released"}
    for table in (SILVER_PRICES, SILVER_QUARANTINE):
        try:
            data = Lakehouse(settings)[table].open().to_pyarrow_table(columns=["event_id"])
        except TableMissing:  # nothing quarantined: the table was never written
            continue
        column = data["event_id"].to_pylist()
        ids.extend(i for i in column if table is SILVER_PRICES or i not in released)
    return len(ids), len(set(ids))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", type=float, default=[1000, 5000, 20000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--probes", type=int, default=5, help="at least this many per rate")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--alerts", type=int, default=20, help="planted alerts")
    parser.add_argument(
        "--read-rate", type=float, default=READ_RATE, help="GET /prices/live req/s at 5 000 ev/s"
    )
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory() as tmp,
        isolated_stack(Path(tmp), ("kafka", "pipeline", "api")) as settings,
    ):
        at = datetime.now(UTC)
        raw = raw_produce_rate(settings, payloads(200_000, at, conf_of(settings)))
        per_rate = f"≥ {args.seconds:g} s and ≥ {args.probes} probes per rate"
        print(f"\npipeline benchmark ({len(series(conf_of(settings)))} series; {per_rate})")
        print(f"raw confluent-kafka produce rate, same payloads: {raw:,.0f} events/s")
        print("\nfreshness: produce → visible (s); load: seconds the background load lasted")
        print(f"{'load ev/s':>10} {'load s':>7} {'probes':>7} {'API p50':>8} {'p95':>6}", end="")
        print(f" {'p99':>6} {'WS p50':>7} {'p95':>6} {'p99':>6}", flush=True)
        api = f"http://{settings.api.host}:{settings.api.port}"
        # warm-up: first batches, first versions
        produce(settings, payloads(2_000, at, conf_of(settings)), None)
        wait_for(settings, 2_000, 600)
        probes = Probes(settings, api)
        try:
            for rate in args.rates:
                freshness(settings, probes, rate, args.seconds, args.probes, args.read_rate)
        finally:
            probes.close()
        print(f"\nbacklog after the loaded phases drained in {drain(settings):.0f} s", flush=True)
        print(f"gold caught up with silver {gold_catch_up(settings):.0f} s later", flush=True)
        alerts = alert_probes(settings, api, args.alerts)
        listed, on_socket = (percentiles(a) if a else (float("nan"),) * 3 for a in alerts)
        print(
            f"\nalerts: {len(alerts[0])} planted (45 °C readings): visible in GET /alerts p50 "
            f"{listed[0]:.2f} s, p95 {listed[1]:.2f} s; pushed on WS /alerts/ws p50 "
            f"{on_socket[0]:.2f} s, p95 {on_socket[1]:.2f} s\n"
            f"  in GET /alerts, in the order planted: {' '.join(f'{s:.1f}' for s in alerts[0])} s",
            flush=True,
        )
        burst = throughput(settings, args.events)
        print(
            f"\nthroughput: {burst['events']:,} events produced at {burst['produce_rate']:,.0f}/s"
            f", Kafka → silver {burst['rate']:,.0f} events/s = {burst['rate'] / raw:.3f} × raw"
        )
        rows, distinct = exactly_once(settings)
        print(f"exactly once: {rows:,} rows in silver.prices + silver.quarantine, {distinct:,} ids")


if __name__ == "__main__":
    main()
