"""The ``forecasts`` service: the first forecasts of a fresh stack, fitted in the background.

On a first start the ``prices`` service publishes ``price_simulator.seed_days`` days of history
before today (``producers.price_simulator``); once the pipeline has them in gold.price_daily
(``history_days`` of them, or whatever is there after ``WAIT_SECONDS``), this service runs
``./run.sh retrain --keep-impact`` once — forecasts (gold.forecasts) and anomalies
(gold.anomalies); the impact model fitted at start on the shipped data stays, rather than being
refitted on a few weeks of simulated closes — so that ``/api/v1/forecasts`` answers within
minutes of the first ``./run.sh``. When gold.forecasts already holds rows there is nothing to
do. Either way the service then stays idle (the scheduled jobs of scripts/crontab keep the models
fresh), so the supervisor neither restarts it nor runs it again until the next ``up``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog.tables import GOLD_FORECASTS, GOLD_PRICE_DAILY
from lakehouse.config.settings import PROJECT_ROOT, Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse
from lakehouse.io.status import STALE_SECONDS, serve, write_status

NAME = "forecasts"
WAIT_SECONDS = 900.0  # after this long, fit on whatever history gold holds
CHECK_SECONDS = 5.0  # how often gold.price_daily is looked at while waiting
#: the retrain's log without the libraries' warnings about short, gappy series (one per series)
QUIET = "ignore::UserWarning,ignore::FutureWarning"


def history_days(lake: Lakehouse) -> int:
    """How many local days gold.price_daily holds (0 before its first row)."""
    try:
        dates = lake[GOLD_PRICE_DAILY].read(["date"])
    except TableMissing:
        return 0
    return len(pc.unique(dates["date"]))


def has_forecasts(lake: Lakehouse) -> bool:
    """Whether gold.forecasts exists and holds rows (from the Delta log alone)."""
    try:
        files = pa.table(lake[GOLD_FORECASTS].open().get_add_actions(flatten=True))
    except TableMissing:
        return False
    return bool(pc.sum(files["num_records"]).as_py())


def run(settings: Settings, stop: threading.Event) -> None:
    """Wait for the seeded history, fit once, then stay idle until stopped; the status file is
    refreshed at least every ``STALE_SECONDS / 3``."""

    def status(detail: str) -> None:
        write_status(settings, NAME, "running", detail=detail)

    wanted = settings.price_simulator.seed_days
    began = time.monotonic()
    lake = Lakehouse(settings)
    if has_forecasts(lake):
        detail = "gold.forecasts present: nothing to fit at start"
    else:
        while (days := history_days(lake)) < wanted and not stop.is_set():
            if days and time.monotonic() - began > WAIT_SECONDS:
                break
            status(f"waiting for the history: {days} of {wanted} days in gold.price_daily")
            stop.wait(CHECK_SECONDS)
        if stop.is_set():
            return
        retrain = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "retrain", "--keep-impact"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONWARNINGS": QUIET},
        )
        while retrain.poll() is None:  # stopped: SIGTERM reaches the whole process group
            status(f"fitting the first forecasts on {days} days of history")
            if stop.wait(STALE_SECONDS / 3):
                return
        took = time.monotonic() - began
        detail = (
            f"first forecasts fitted {took:.0f}s after start"
            if retrain.returncode == 0
            else f"first forecasts failed (exit {retrain.returncode}): see its log"
        )
    while not stop.is_set():
        status(detail)
        stop.wait(STALE_SECONDS / 3)


if __name__ == "__main__":
    sys.exit(serve(NAME, run))
