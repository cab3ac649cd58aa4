"""The API's resident memory as the national load's series get their first price (issue 54),
in a few minutes and without Kafka or Spark: the API started as the `api` service starts it over
a national registry (``bench national``'s, 16 000 markets × 25 commodities) while a writer
commits what the pipeline commits — ``--prices`` (185: the national 18.5 price ev/s over a 10 s
silver batch) prices of series not priced yet to silver.prices every ``--every`` seconds (1: ten
times the pipeline's pace), a gold MERGE of gold.price_latest and gold.price_daily every
``--gold`` silver commits — and a client reads as ``bench national`` does (a probe series, a
province's first page, the map of beras, a WebSocket subscriber).

    ./run.sh bench api_memory [--commits 180] [--prices 185] [--every 1] [--gold 3]

Prints the API's resident memory and the live items every 30 commits (5 minutes of the
national load).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import psutil
from deltalake import write_deltalake
from websockets.sync.client import connect

from bench.api import merge_gold, server, throwaway, with_flags
from bench.national import national_registry, write_conf
from lakehouse.catalog.conf import conf_at, conf_of
from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.config.settings import Settings, load_settings
from serving_api.routers import TOTAL_HEADER

REPORT_EVERY = 30  # commits between two lines
READS_EVERY = 0.05  # seconds between two rounds of reads


def commit(settings: Settings, rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    """Append ``rows`` (market, commodity, province, unit, price), observed now, to
    silver.prices as the silver query does; the prices."""
    now = datetime.now(UTC)
    prices = pd.DataFrame(rows, columns=["market_id", "commodity", "region", "unit", "price"])
    prices = prices.assign(
        observed_at=pd.Series([now] * len(rows)).astype("datetime64[us, UTC]"),
        event_id=[str(uuid.uuid4()) for _ in rows],
        source="bench-api-memory",
        observed_date=now.date(),
    )
    write_deltalake(
        str(SILVER_PRICES.path(settings)),
        with_flags(prices),
        mode="append",
        partition_by=list(SILVER_PRICES.partition_by),
    )
    return prices


def resident_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def reads(url: str, market: str, commodity: str, province: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url + "/api/v1", timeout=30) as client:
        while not stop.is_set():
            client.get("/prices/live", params={"market_id": market, "commodity": commodity})
            client.get("/prices/live", params={"region": province, "limit": 100})
            client.get("/prices/regions", params={"commodity": "beras"})
            time.sleep(READS_EVERY)


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shipped = conf_of(load_settings())
        markets = national_registry(16_000, shipped)
        folder = write_conf(Path(tmp), shipped, markets)
        settings, env = throwaway(tmp, {"SMARTMARKET_PATHS__CONF_DIR": str(folder)})
        conf = conf_at(folder)
        series = [
            (g.market_id, c.id, g.province, c.unit, float(round((c.min_price + c.max_price) / 3)))
            for g in markets
            for c in conf.commodities.values()
        ]
        probe = series[0]
        pending = [commit(settings, series[: args.prices])]
        with server(settings, env) as url:
            (api,) = [p for p in psutil.Process().children() if "uvicorn" in p.cmdline()]
            stop = threading.Event()
            ws = connect(f"{url.replace('http', 'ws', 1)}/api/v1/prices/ws?market_id={probe[0]}")
            threading.Thread(target=lambda: [None for _ in ws], daemon=True).start()
            threading.Thread(
                target=reads, args=(url, probe[0], probe[1], probe[2], stop), daemon=True
            ).start()
            print(f"{'commits':>7} {'series':>7} {'API MB':>7} {'live items':>10}", flush=True)
            print(f"{0:>7} {args.prices:>7,} {resident_mb(api):>7.0f}", flush=True)
            began = time.monotonic()
            fresh = iter(series[args.prices :])  # the series not priced yet, in turn
            for n in range(1, args.commits + 1):
                rows = [probe, *itertools.islice(fresh, args.prices - 1)]
                pending.append(commit(settings, rows))
                if n % args.gold == 0:
                    merge_gold(settings, pd.concat(pending, ignore_index=True))
                    pending = []
                if n % REPORT_EVERY == 0:
                    answer = httpx.get(f"{url}/api/v1/prices/live", params={"limit": 1})
                    print(
                        f"{n:>7} {args.prices + n * (args.prices - 1):>7,} "
                        f"{resident_mb(api):>7.0f} "
                        f"{answer.headers[TOTAL_HEADER]:>10}",
                        flush=True,
                    )
                time.sleep(max(0.0, began + n * args.every - time.monotonic()))
            stop.set()
            ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=180, help="silver commits")
    parser.add_argument("--prices", type=int, default=185, help="new series a commit")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between commits")
    parser.add_argument("--gold", type=int, default=3, help="silver commits per gold MERGE")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
