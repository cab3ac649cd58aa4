"""Retrain time on this box: backtest (rolling origin) + selection + the final fit of every
series with the configured models (``ml.models``), spread over ``ml.n_jobs`` worker processes,
with each model's share of the fitting time. The baseline, measured in the same run, is the
same job with the naive model only (the floor set by reading, process start-up and the
backtest loop).

The series are the 3 real series of the PIHPS file in ``datasets/`` fanned out to synthetic
markets with the replay producer's logic (own price level, noise, some lagging by days).

    ./run.sh bench retrain [--series 100] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import pandas as pd
import psutil

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import SAMPLE_PRICES, MlSettings, load_settings
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.domain.metrics import daily_closes, region_daily
from ml.exogenous import ExogSources
from ml.retrain import exog_sources, train_all
from ml.series import series_frame
from producers.replay import fan_out, synthetic_markets


def fanned_out_series(path: Path, count: int, settings) -> pd.DataFrame:  # noqa: ANN001
    """``count`` series (market × commodity, then region × commodity) from the real file."""
    report = open_report(path, conf_of(settings))
    events = [row.event for row in parse_rows(report, settings.tz) if row.event is not None]
    commodities = len({e.commodity for e in events})
    markets = synthetic_markets(-(-count // commodities), conf_of(settings))
    rows = [
        (e.observed_at.astimezone(settings.tz).date(), e.observed_at, e.market_id, e.region,
         e.commodity, e.price)
        for event in events
        for e in fan_out(event, markets)
    ]  # fmt: skip
    columns = ["date", "observed_at", "market_id", "region", "commodity", "price"]
    prices = pd.DataFrame(rows, columns=columns)
    prices["date"] = pd.to_datetime(prices["date"])
    daily = daily_closes(prices)
    frame = series_frame(daily, region_daily(daily))
    keep = sorted(frame["series_id"].unique())[:count]
    return frame[frame["series_id"].isin(keep)]


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and its live children (the worker processes)."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def timed(
    series: pd.DataFrame, models: list[str], ml: MlSettings, sources: ExogSources | None = None
) -> tuple[float, float, dict]:
    """(wall s, CPU s of the main process and the workers, fit+predict CPU s per model) of
    retraining (``ml.retrain.train_all``: the global fits run in the main process)."""
    process = psutil.Process()
    began, cpu_began = time.monotonic(), _cpu_seconds(process)
    trained = train_all(series, models, ml, sources)
    seconds: dict[str, float] = {}
    for t in trained:
        for model, s in t.backtest.seconds.items():
            seconds[model] = seconds.get(model, 0.0) + s
    return time.monotonic() - began, _cpu_seconds(process) - cpu_began, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--jobs", type=int, help="worker processes (default ml.n_jobs)")
    args = parser.parse_args()
    settings = load_settings()
    ml = settings.ml.model_copy(update={"n_jobs": args.jobs} if args.jobs else {})
    series = fanned_out_series(SAMPLE_PRICES, args.series, settings)
    n = series["series_id"].nunique()
    print(
        f"{n} series, {ml.origins} origins, horizon {ml.horizon}, models {', '.join(ml.models)}, "
        f"{ml.n_jobs} worker processes; load average {os.getloadavg()[0]:.1f} at the start"
    )
    base_wall, base_cpu, _ = timed(series, ["naive"], ml)
    wall, cpu, seconds = timed(series, ml.models, ml, exog_sources(settings)[0])
    total = sum(seconds.values())
    jobs = ml.n_jobs
    print(
        f"\n{'job':<24}{'wall s':>9}{'vs naive':>10}{'CPU s':>9}{f'CPU s/{jobs}':>9}"
        f"{'1000 series, min':>18}"
    )
    for name, w, c in (("naive only (baseline)", base_wall, base_cpu), ("ml.models", wall, cpu)):
        print(
            f"{name:<24}{w:>9.1f}{w / base_wall:>10.2f}{c:>9.1f}{c / jobs:>9.1f}"
            f"{w / n * 1000 / 60:>9.1f} wall{c / jobs / n * 1000 / 60:>6.1f} cpu"
        )
    print(
        f"(CPU s/{jobs}: the wall time on an otherwise idle box with {jobs} cores; 1000 series: "
        "this run's per-series time × 1000, by wall and by CPU)"
    )
    print(f"\n{'model':<18}{'fit+predict CPU s':>19}{'share':>8}  (summed over workers)")
    for model, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"{model:<18}{s:>19.1f}{s / total:>8.1%}")


if __name__ == "__main__":
    main()
