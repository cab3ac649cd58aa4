"""Query latency of the two engines of `./run.sh query` on the configured lakehouse
(``SMARTMARKET_PATHS__LAKEHOUSE_ROOT``), next to a baseline measured in the same run: the same
answer computed by reading the whole Delta table with delta-rs into pandas.

    ./run.sh bench query [--repeat 5] [--spark]

Prints, per query, the median wall time of the DuckDB engine (from SQL text to a pandas frame,
tables opened afresh each time, as the command does) and of the pandas baseline, and their
ratio; with ``--spark``, the Spark engine's session start (catalog registration included) and
its warm query time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pandas as pd

from lakehouse.catalog.tables import GOLD_PRICE_DAILY, SILVER_PRICES, Table
from lakehouse.config.settings import ConfigError, Settings, load_settings
from lakehouse.config.storage import exists
from lakehouse.io.lake import Lakehouse
from lakehouse.io.query import Engine, run_query


def _read(settings: Settings, table: Table) -> pd.DataFrame:
    return Lakehouse(settings)[table].open().to_pandas()


def _shallots(settings: Settings) -> pd.DataFrame:
    daily = _read(settings, GOLD_PRICE_DAILY)
    return daily[daily["commodity"] == "bawang_merah"].groupby("market_id")["close"].mean()


def _monthly(settings: Settings) -> pd.DataFrame:
    prices = _read(settings, SILVER_PRICES)
    month = pd.to_datetime(prices["observed_at"]).dt.strftime("%Y-%m")
    return prices.groupby([prices["commodity"], month])["price"].agg(["mean", "std", "count"])


def _one_market(settings: Settings) -> pd.DataFrame:
    daily = _read(settings, GOLD_PRICE_DAILY)
    return daily[(daily["market_id"] == "IP-001") & (daily["commodity"] == "cabai_merah")]


QUERIES: dict[str, tuple[str, Callable[[Settings], object]]] = {
    "shallots by market": (
        "SELECT market_id, AVG(close) FROM gold.price_daily WHERE commodity = 'bawang_merah' "
        "GROUP BY market_id",
        _shallots,
    ),
    "silver monthly stats": (
        "SELECT commodity, strftime(observed_at, '%Y-%m') AS month, AVG(price), "
        "STDDEV_SAMP(price), COUNT(*) FROM silver.prices GROUP BY ALL",
        _monthly,
    ),
    "one series": (
        "SELECT * FROM gold.price_daily WHERE market_id = 'IP-001' AND commodity = 'cabai_merah'",
        _one_market,
    ),
}
SPARK_SQL = {  # the same questions in Spark's dialect
    "shallots by market": QUERIES["shallots by market"][0],
    "silver monthly stats": "SELECT commodity, date_format(observed_at, 'yyyy-MM') AS month, "
    "AVG(price), STDDEV_SAMP(price), COUNT(*) FROM silver.prices GROUP BY 1, 2",
    "one series": QUERIES["one series"][0],
}


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spark", action="store_true", help="also time the Spark engine")
    args = parser.parse_args()
    settings = load_settings()
    if not exists(settings, GOLD_PRICE_DAILY.log(settings)):
        raise SystemExit(f"error: no lakehouse at {settings.paths.lakehouse_root}")
    rows = len(_read(settings, SILVER_PRICES))
    print(f"lakehouse {settings.paths.lakehouse_root}: silver.prices {rows:,} rows")
    print(f"{'query':<22} {'duckdb s':>9} {'pandas s':>9} {'ratio':>6}")
    for name, (sql, baseline) in QUERIES.items():
        duck = median_seconds(lambda sql=sql: run_query(sql, settings, Engine.duckdb), args.repeat)
        base = median_seconds(lambda baseline=baseline: baseline(settings), args.repeat)
        print(f"{name:<22} {duck:>9.3f} {base:>9.3f} {base / duck:>5.1f}×")
    if args.spark:
        from lakehouse.io.spark_catalog import analyst_spark

        began = time.perf_counter()
        spark = analyst_spark(settings)
        print(f"spark session start with catalog: {time.perf_counter() - began:.1f} s")
        for name, sql in SPARK_SQL.items():
            run_query(sql, settings, Engine.spark, spark=spark)  # warm-up
            seconds = median_seconds(
                lambda sql=sql: run_query(sql, settings, Engine.spark, spark=spark), args.repeat
            )
            print(f"{name:<22} spark {seconds:.3f} s")
        spark.stop()


if __name__ == "__main__":
    try:
        main()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
