"""Serving API latency and throughput, next to a bare FastAPI endpoint measured in the same run.

    ./run.sh bench api [--seconds 10] [--concurrency 50 200] [--workers N] [--clients N]
    ./run.sh bench api --rate 1000 --writes 5000 [--seconds 20]

Builds a lakehouse of realistic gold tables with delta-rs (every physical market of conf/ ×
every commodity × two years of days: ~1.2 M daily rows), starts the API exactly as the `api`
service does (uvicorn command line of ``scripts.services.Api``) on a free loopback port, and loads
it from separate processes with an asynchronous client (aiohttp):

- *saturation*: every connection sends its next request as soon as the last one is answered —
  requests/s, and p50/p99 latency (by Little's law p99 then grows with the connection count);
- *half load*: the same connections, requests sent on a schedule at half the endpoint's own
  saturation rate, latency counted from the scheduled time (no coordinated omission) — the
  latency a client sees when the server is busy but not overloaded.

The bare endpoint is a FastAPI app returning a constant, run with the same uvicorn options.

With ``--rate``, it measures instead ``/prices/live`` alone (the same read mix) at that fixed
offered rate (open loop, 100 connections, latency from the scheduled time), first idle, then
while a writer process commits what the pipeline commits to the live view's tables at
``--writes`` events/s (delta-rs, at the pipeline's ``spark.niceness``): a silver.prices commit
every second, and every second commit MERGEs into gold.price_latest and gold.price_daily, which
rewrite the whole files holding the rows they update.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake
from fastapi import FastAPI
from tqdm import tqdm

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.tables import (
    GOLD_PRICE_DAILY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    SILVER_PRICES,
)
from lakehouse.config.cpu_priority import lower_priority
from lakehouse.config.settings import Settings, load_settings
from lakehouse.io.lake import Lakehouse
from scripts.isolated_stack import free_ports
from scripts.services.api_server import Api

DAYS = 730
FIRST_DAY = date(2024, 1, 1)
WARM_UP_SECONDS = 1.0
API = "/api/v1"
FIXED_CONNECTIONS = 100  # as bench pipeline's read load
COMMIT_SECONDS = 1.0  # a silver commit this often under write load
GOLD_EVERY = 2  # silver commits per gold commit


def bare_app() -> FastAPI:
    """The bare endpoint's app, a factory as the API's is (same command line)."""
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health")  # what the `api` service's health check asks
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


# ---- data -----------------------------------------------------------------------------------


def daily_walks(conf: Conf, days: int = DAYS, first: date = FIRST_DAY) -> pd.DataFrame:
    """Daily OHLC of a random walk per physical market × commodity of ``conf``, ``days`` days
    from ``first``: the rows of gold.price_daily."""
    rng = np.random.default_rng(7)
    series = [(m, c) for m in conf.physical_markets for c in conf.commodities.values()]
    frames = []
    dates = pd.date_range(first, periods=days, freq="D")
    for market, commodity in tqdm(series, desc="series", disable=None):
        level = (commodity.min_price + commodity.max_price) / 3
        close = level * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        spread = close * np.abs(rng.normal(0, 0.01, days))
        frames.append(
            pd.DataFrame(
                {
                    "market_id": market.market_id,
                    "commodity": commodity.id,
                    "region": market.province,
                    "date": dates.date,
                    "open": close - spread / 2,
                    "high": close + spread,
                    "low": close - spread,
                    "close": close,
                    "mean": close,
                    "count": rng.integers(1, 4, days),
                    "last_observed_at": (dates.tz_localize(UTC) + pd.Timedelta(hours=3)).astype(
                        "datetime64[us, UTC]"
                    ),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def write_gold(settings: Settings, days: int = DAYS, daily: pd.DataFrame | None = None) -> int:
    """Daily OHLC, latest prices and regional summaries of a random walk per series (``daily``,
    default ``daily_walks`` of ``days`` days from ``FIRST_DAY``); returns the number of daily
    rows."""
    conf = conf_of(settings)
    if daily is None:
        daily = daily_walks(conf, days)
    write_deltalake(str(GOLD_PRICE_DAILY.path(settings)), daily)
    last = daily[daily["date"] == daily["date"].max()]
    latest = pd.DataFrame(
        {
            "market_id": last["market_id"],
            "commodity": last["commodity"],
            "region": last["region"],
            "price": last["close"],
            "unit": [conf.commodities[c].unit for c in last["commodity"]],
            "observed_at": last["last_observed_at"],
            "event_id": [f"00000000-0000-4000-8000-{i:012d}" for i in range(len(last))],
            "source": "bench",
        }
    )
    write_deltalake(str(GOLD_PRICE_LATEST.path(settings)), with_flags(latest))
    regions = (
        daily.groupby(["region", "commodity", "date"])["close"]
        .agg(median="median", min="min", max="max", markets="count")
        .reset_index()
    )
    regions["spread"] = regions["max"] - regions["min"]
    write_deltalake(str(GOLD_REGION_DAILY.path(settings)), regions)
    return len(daily)


def with_flags(prices: pd.DataFrame) -> pa.Table:
    """Price rows as Arrow, with the empty list of flags a clean price carries."""
    table = pa.Table.from_pandas(prices, preserve_index=False)
    return table.append_column("flags", pa.array([[]] * len(prices), pa.list_(pa.string())))


def write_load(settings: Settings, rate: int, day: date, seconds: float, done: mp.Queue) -> None:
    """Commit for ``seconds`` what the pipeline commits at ``rate`` prices/s to the live view's
    tables, observed on ``day``: silver.prices appends, gold.price_latest and gold.price_daily
    MERGEs. Puts the number of (silver, gold) commits on ``done``."""
    os.setsid()  # a session of its own, as the pipeline service has: its lower priority is not
    lower_priority(settings.spark.niceness)  # the load generator's
    rng = np.random.default_rng(11)
    series = pd.DataFrame(
        [
            (m.market_id, c.id, m.province, c.unit, (c.min_price + c.max_price) / 3)
            for m in conf_of(settings).physical_markets
            for c in sorted(conf_of(settings).commodities.values(), key=lambda c: c.id)
        ],
        columns=["market_id", "commodity", "region", "unit", "level"],
    )
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=1)
    count = max(1, round(rate * COMMIT_SECONDS))
    silver = gold = 0
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        picked = series.sample(count, replace=True, random_state=rng).reset_index(drop=True)
        prices = picked[["market_id", "commodity", "region", "unit"]].assign(
            price=picked["level"] * rng.lognormal(0, 0.01, count),
            observed_at=pd.Series([start + timedelta(seconds=elapsed)] * count).astype(
                "datetime64[us, UTC]"
            ),
            event_id=[str(uuid.uuid4()) for _ in range(count)],
            source="bench",
            observed_date=day,
        )
        write_deltalake(
            str(SILVER_PRICES.path(settings)),
            with_flags(prices),
            mode="append",
            partition_by=list(SILVER_PRICES.partition_by),
        )
        silver += 1
        if silver % GOLD_EVERY == 0:
            merge_gold(settings, prices)
            gold += 1
        time.sleep(max(0.0, began + silver * COMMIT_SECONDS - time.monotonic()))
    done.put((silver, gold))


def merge_gold(settings: Settings, prices: pd.DataFrame) -> None:
    """MERGE the newest of ``prices`` (rows of silver.prices) into gold.price_latest and
    gold.price_daily, as the gold query does."""
    newest = prices.drop_duplicates(["market_id", "commodity"], keep="last")
    Lakehouse(settings)[GOLD_PRICE_LATEST].merge(
        with_flags(newest.drop(columns="observed_date")), "true"
    )
    closes = newest.rename(columns={"observed_date": "date", "price": "close"})
    daily = closes[["market_id", "commodity", "region", "date", "close"]].assign(
        open=closes["close"],
        high=closes["close"],
        low=closes["close"],
        mean=closes["close"],
        count=1,
        last_observed_at=closes["observed_at"],
    )
    daily_rows = pa.Table.from_pandas(daily, preserve_index=False)
    Lakehouse(settings)[GOLD_PRICE_DAILY].merge(daily_rows, "true")


# ---- server ---------------------------------------------------------------------------------


def throwaway(
    tmp: str, overrides: Mapping[str, str] | None = None
) -> tuple[Settings, dict[str, str]]:
    """Settings of a data folder and lakehouse in ``tmp`` and of the API on a free loopback
    port (and ``overrides``, environment variables), set in this process's environment: the
    settings and that environment, which ``server`` hands to the API."""
    (port,) = free_ports(1)
    os.environ.update(
        {
            "SMARTMARKET_PATHS__LAKEHOUSE_ROOT": f"{tmp}/lakehouse",
            "SMARTMARKET_PATHS__DATA_DIR": tmp,
            "SMARTMARKET_API__PORT": str(port),
            "SMARTMARKET_LOG_LEVEL": "WARNING",
            **(overrides or {}),
        }
    )
    return load_settings(), dict(os.environ)


@contextmanager
def server(settings: Settings, env: dict[str, str], app: str | None = None) -> Iterator[str]:
    """The API (or the app factory ``app``) started with the `api` service's command line;
    yields its URL."""
    command = Api(settings).command()
    if app is not None:
        command[command.index(Api.factory)] = app
    log = settings.paths.data_dir / "bench-api.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{settings.api.port}"
    try:
        deadline = time.monotonic() + 60
        while Api(settings).health().ok is False:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def live_reads(conf: Conf) -> list[str]:
    """The ``/prices/live`` paths of the read load — what a dashboard asks: one commodity
    everywhere, one market, one commodity in one province (of ``conf``'s markets)."""
    provinces = sorted({m.province for m in conf.physical_markets})
    goods = sorted(conf.commodities)
    return (
        [f"{API}/prices/live?commodity={c}" for c in goods]
        + [f"{API}/prices/live?market_id={m.market_id}" for m in conf.physical_markets]
        + [f"{API}/prices/live?commodity={c}&region={r}" for c in goods for r in provinces]
    )


# ---- load -----------------------------------------------------------------------------------


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    body_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


async def _load(urls: list[str], connections: int, seconds: float, rate: float | None) -> Result:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    body_bytes = 0
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> tuple[float, int]:
            nonlocal errors
            try:
                async with session.get(url) as response:
                    size = len(await response.read())
                    errors += response.status != 200
            except (aiohttp.ClientError, TimeoutError):
                errors, size = errors + 1, 0
            return time.perf_counter(), size

        async def connection(i: int, began: float, record_from: float) -> None:
            nonlocal body_bytes
            n = i
            while True:
                if rate is None:
                    due = time.perf_counter()
                else:  # open loop: request n is due at n / rate, whatever happened before
                    due = began + n / rate
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                if due - began > seconds + WARM_UP_SECONDS:
                    return
                done, size = await one(urls[n % len(urls)])
                if due >= record_from:
                    latencies.append(done - due)
                    body_bytes += size
                n += connections

        began = time.perf_counter()
        record_from = began + WARM_UP_SECONDS
        await asyncio.gather(*(connection(i, began, record_from) for i in range(connections)))
    return Result(len(latencies), errors, seconds, latencies, body_bytes)


def _client(
    urls: list[str], connections: int, seconds: float, rate: float | None, results: mp.Queue
) -> None:
    results.put(asyncio.run(_load(urls, connections, seconds, rate)))


def load(
    urls: list[str], connections: int, seconds: float, rate: float | None, clients: int
) -> Result:
    """Load from ``clients`` separate processes sharing ``connections`` and ``rate``."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    per_client = max(1, connections // clients)
    procs = [
        ctx.Process(
            target=_client,
            args=(urls[i::clients] or urls, per_client, seconds, rate and rate / clients, results),
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    try:
        parts = [results.get(timeout=seconds + WARM_UP_SECONDS + 120) for _ in procs]
    except queue.Empty:
        raise SystemExit("error: a load generator process did not report back") from None
    for p in procs:
        p.join()
    return merge(parts, together=True)


def merge(parts: list[Result], together: bool = False) -> Result:
    """Results of parts that ran at the same time (``together``) or one after the other."""
    return Result(
        sum(p.requests for p in parts),
        sum(p.errors for p in parts),
        parts[0].seconds if together else sum(p.seconds for p in parts),
        [x for p in parts for x in p.latencies],
        sum(p.body_bytes for p in parts),
    )


# ---- main -----------------------------------------------------------------------------------


def fixed_rate(settings: Settings, env: dict[str, str], args: argparse.Namespace) -> None:
    """``/prices/live`` at ``args.rate`` offered, idle, then while ``args.writes`` events/s are
    committed."""
    with server(settings, env) as url:
        urls = [url + path for path in live_reads(conf_of(settings))]
        load(urls, 10, 2, None, 1)  # warm the caches and the interpreter
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        idle = load(urls, FIXED_CONNECTIONS, args.seconds, args.rate, args.clients)
        ctx = mp.get_context("spawn")
        done = ctx.Queue()
        day = FIRST_DAY + timedelta(days=args.days)
        writer = ctx.Process(
            target=write_load,
            args=(settings, args.writes, day, args.seconds + WARM_UP_SECONDS + 2, done),
        )
        writer.start()
        time.sleep(2)  # the first commits land before the reads are measured
        writing = load(urls, FIXED_CONNECTIONS, args.seconds, args.rate, args.clients)
        silver, gold = done.get(timeout=args.seconds + 120)
        writer.join()
    print(
        f"\n/prices/live at {args.rate:,.0f} req/s offered, {FIXED_CONNECTIONS} connections, "
        f"{args.seconds:.0f} s each"
    )
    for name, result in (("idle", idle), (f"writes {args.writes:,} ev/s", writing)):
        print(
            f"{name:<20} answered {result.rate:>6,.0f} req/s  p50 {result.percentile(50):7.1f} ms"
            f"  p99 {result.percentile(99):7.1f} ms  errors {result.errors}"
        )
    print(f"writer: {silver} silver.prices commits, {gold} gold MERGE rounds (2 tables each)")
    print("target: p99 <= 25 ms at 2 000 req/s offered while 5 000 ev/s are written")


def main() -> None:
    p = argparse.ArgumentParser(prog="./run.sh bench api", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0, help="per measurement")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds per measurement")
    p.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    p.add_argument("--workers", type=int, help="uvicorn workers (default: api.workers)")
    p.add_argument("--clients", type=int, default=1, help="load generator processes")
    p.add_argument("--days", type=int, default=DAYS)
    p.add_argument(
        "--rate", type=float, help="measure /prices/live alone at this offered rate (req/s)"
    )
    p.add_argument("--writes", type=int, default=5000, help="events/s committed with --rate")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workers = {"SMARTMARKET_API__WORKERS": str(args.workers)} if args.workers else {}
        settings, env = throwaway(tmp, workers)
        began = time.monotonic()
        rows = write_gold(settings, args.days)
        print(f"gold: {rows} daily rows written in {time.monotonic() - began:.1f} s")

        if args.rate:
            fixed_rate(settings, env, args)
            return
        end = FIRST_DAY + timedelta(days=args.days - 1)
        start = end - timedelta(days=90)
        paths = {
            "bare": ["/bare"],
            "/prices/live": live_reads(conf_of(settings)),
            "/prices/history": [
                f"{API}/prices/history?commodity={c}&market_id={m.market_id}&start={start}&end={end}"
                for c in sorted(conf_of(settings).commodities)
                for m in conf_of(settings).physical_markets
            ],
        }
        command = " ".join(Api(settings).command()[1:])
        print(f"server: {command}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        measured: dict[tuple[str, int], tuple[Result, Result]] = {}
        step = args.seconds / args.rounds
        progress = tqdm(
            total=len(paths) * len(args.concurrency) * 2 * args.rounds, disable=None, unit="run"
        )
        with contextlib.ExitStack() as servers:
            urls: dict[str, list[str]] = {}
            for (name, targets), port in zip(paths.items(), free_ports(len(paths)), strict=True):
                own = settings.model_copy(
                    update={"api": settings.api.model_copy(update={"port": port})}
                )
                app = "bench.api:bare_app" if name == "bare" else None
                url = servers.enter_context(server(own, env, app))
                urls[name] = [url + t for t in targets]
                load(urls[name], 10, 2, None, 1)  # warm the caches and the interpreter
            # short rounds, endpoints interleaved: the other load on a shared machine comes
            # and goes, and must weigh on every endpoint alike
            for connections in args.concurrency:
                rounds: dict[str, list[Result]] = {name: [] for name in paths}
                for _ in range(args.rounds):
                    for name in paths:
                        progress.set_description(f"{name} x{connections}")
                        rounds[name].append(load(urls[name], connections, step, None, args.clients))
                        progress.update()
                busy = {name: merge(results) for name, results in rounds.items()}
                half = {name: [] for name in paths}
                for _ in range(args.rounds):
                    for name in paths:
                        rate = busy[name].rate / 2
                        half[name].append(load(urls[name], connections, step, rate, args.clients))
                        progress.update()
                for name in paths:
                    measured[(name, connections)] = (busy[name], merge(half[name]))
        progress.close()

        print(
            f"\n{'endpoint':<16} {'conns':>5} {'bytes':>6} {'req/s':>8} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'vs bare':>7} | {'half load':>9} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'errors':>6}"
        )
        for (name, connections), (busy, steady) in measured.items():
            bare_busy = measured[("bare", connections)][0]
            size = busy.body_bytes / max(busy.requests, 1)
            print(
                f"{name:<16} {connections:>5} {size:>6.0f} {busy.rate:>8.0f} "
                f"{busy.percentile(50):>7.1f} {busy.percentile(99):>7.1f} "
                f"{busy.rate / bare_busy.rate:>7.0%} | {steady.rate:>9.0f} "
                f"{steady.percentile(50):>7.1f} {steady.percentile(99):>7.1f} "
                f"{busy.errors + steady.errors:>6}"
            )
        print(
            "\ntargets: /prices/live p99 <= 25 ms at 200 connections, >= 70 % of the bare rate. "
            "Saturation latency is connections / rate (Little's law); the half-load columns "
            "show latency at half of each endpoint's saturation rate. bytes: mean response body."
        )


if __name__ == "__main__":
    sys.exit(main())
