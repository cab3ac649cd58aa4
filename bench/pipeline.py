"""End-to-end pipeline throughput and freshness: events produced to Kafka at a target rate, through
bronze → silver → gold, next to the raw broker produce rate measured in the same run. Runs its
own Kafka and the Spark application (local[2]) in this process.

    ./run.sh bench pipeline [--rates 1000 5000 max] [--seconds 20]

- sustained throughput: events produced ÷ time until gold.data_quality has received them all;
- freshness: for a sample of events, seconds from produce to the row being visible in
  gold.price_latest (that market × commodity shows an observation at least as new).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from deltalake import DeltaTable

from bench.baseline import raw_produce_rate
from lakehouse.events import PriceEvent
from lakehouse.reference import commodities, markets
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.tables import GOLD_DATA_QUALITY, GOLD_PRICE_LATEST
from producers.kafka_io import EventProducer
from scripts.isolated_stack import isolated_stack
from streaming_jobs.bronze import bronze_query
from streaming_jobs.medallion import medallion_query

SAMPLE_EVERY = 250


def series() -> list[tuple[str, str, float]]:
    """Every physical market × commodity of conf/, with a plausible price."""
    return [
        (m.market_id, c.id, round((c.min_price + c.max_price) / 3))
        for m in markets().values()
        if m.kind == "pasar"
        for c in commodities().values()
    ]


def _received(settings: Settings) -> int:
    try:
        table = DeltaTable(str(GOLD_DATA_QUALITY.path(settings)))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return int(table.to_pyarrow_table(columns=["received"])["received"].to_numpy().sum())


def _latest(settings: Settings) -> dict[tuple[str, str], datetime]:
    try:
        table = DeltaTable(str(GOLD_PRICE_LATEST.path(settings)))
    except Exception:  # noqa: BLE001 - not created yet
        return {}
    rows = table.to_pyarrow_table(columns=["market_id", "commodity", "observed_at"]).to_pylist()
    return {(r["market_id"], r["commodity"]): r["observed_at"].replace(tzinfo=UTC) for r in rows}


def run_rate(settings: Settings, rate: float | None, seconds: float) -> dict[str, float]:
    """Produce at ``rate`` events/s (None: as fast as possible) for ``seconds``; wait for gold."""
    all_series = series()
    producer = EventProducer(settings)
    base = _received(settings)
    samples: list[tuple[float, tuple[str, str], datetime]] = []
    began = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - began) < seconds:
        due = sent - (rate * elapsed if rate else float("inf"))
        if due > 0:
            producer.poll(min(due / rate, 0.05))
            continue
        market, commodity, price = all_series[sent % len(all_series)]
        now = datetime.now(UTC)
        event = PriceEvent(
            market_id=market,
            commodity=commodity,
            price=price * (1 + 0.001 * (sent % 5)),
            unit=commodities()[commodity].unit,
            observed_at=now,
            source="bench",
        )
        producer.send(event)
        if sent % SAMPLE_EVERY == 0:
            samples.append((time.monotonic(), (market, commodity), now))
        sent += 1
    producer.flush()
    produced_for = time.monotonic() - began

    latencies: list[float] = []
    pending = list(samples)
    while _received(settings) - base < sent or pending:
        latest = _latest(settings)
        now = time.monotonic()
        still = []
        for produced_at, key, observed in pending:
            if latest.get(key, datetime.min.replace(tzinfo=UTC)) >= observed:
                latencies.append(now - produced_at)
            else:
                still.append((produced_at, key, observed))
        pending = still
        if now - began > seconds + 600:
            raise TimeoutError("the pipeline did not catch up within 10 minutes")
        time.sleep(0.25)
    total = time.monotonic() - began
    latencies.sort()
    return {
        "target": rate or 0.0,
        "produced": sent,
        "produce_rate": sent / produced_for,
        "throughput": sent / total,
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
    }


def raw_rate(settings: Settings, count: int = 200_000) -> float:
    """The broker's produce rate for the same kind of payload, with no pipeline involved."""
    payload = PriceEvent(
        market_id="IP-001", commodity="beras", price=14000, unit="kg",
        observed_at=datetime.now(UTC), source="bench",
    ).to_json()  # fmt: skip
    return raw_produce_rate(settings, [(payload, str(i % 660)) for i in range(count)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", default=["1000", "5000", "max"])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    rates = [None if r == "max" else float(r) for r in args.rates]
    results = []
    with tempfile.TemporaryDirectory() as tmp, isolated_stack(Path(tmp), ("kafka",)) as settings:
        raw = raw_rate(settings)
        spark = get_spark(settings)
        queries = [bronze_query(spark, settings), medallion_query(spark, settings)]
        try:
            run_rate(settings, 200, 5)  # warm-up: JIT, first table versions
            results = [run_rate(settings, rate, args.seconds) for rate in rates]
        finally:
            for query in queries:
                query.stop()
            spark.stop()

    print(f"\npipeline benchmark: {len(series())} series, {args.seconds:g}s per rate")
    print(f"raw broker produce rate (same payloads): {raw:,.0f} events/s")
    header = f"{'target/s':>9} {'produced':>9} {'sent/s':>9} {'end-to-end/s':>13} {'vs raw':>7}"
    print(f"{header} {'fresh p50':>10} {'fresh p95':>10}")
    for r in results:
        target = f"{r['target']:,.0f}" if r["target"] else "max"
        print(
            f"{target:>9} {r['produced']:>9,} {r['produce_rate']:>9,.0f} {r['throughput']:>13,.0f}"
            f" {r['throughput'] / raw:>7.3f} {r['p50']:>9.1f}s {r['p95']:>9.1f}s"
        )


if __name__ == "__main__":
    main()
