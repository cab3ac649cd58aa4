"""The price metrics, defined once: what a day's close, a region's day and the reference median
of a move are. Pure functions (no Spark, no I/O); everything that computes one of them follows
these definitions:

- **daily close** — the last valid price of a market × commodity on a local day, in
  ``PRICE_ORDER`` (observation time, then arrival). ``gold.price_daily.close`` is computed in
  Spark by ``streaming_jobs.gold.price_daily``; a price file's closes (backtest, impact) by
  ``daily_closes`` here. A test checks that both agree.
- **region day** — per province × commodity × day, the median, min, max and spread of its
  markets' daily closes and how many markets reported: ``gold.region_daily`` (Spark,
  ``streaming_jobs.gold.region_daily``) and ``region_daily`` here.
- **reference median** — the median daily close of the ``REFERENCE_DAYS`` days before a day:
  what ``/prices/live`` compares the newest price with (``median_close_before``) and what the
  ``price_spike``/``price_drop`` alerts compare a close with (``streaming_jobs.alerts``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING

from lakehouse.catalog.alert_rules import REFERENCE_DAYS

if TYPE_CHECKING:
    import pandas as pd

#: the order of a series' prices within a period: observation time, then arrival (Kafka position)
PRICE_ORDER = ("observed_at", "topic", "partition", "offset")
#: the daily closes as gold.price_daily holds them (one row per market × commodity × local day)
DAILY_COLUMNS = ("market_id", "region", "commodity", "date", "close")


def daily_closes(prices: pd.DataFrame) -> pd.DataFrame:
    """The daily close of each market × commodity × ``date`` of ``prices`` (columns
    ``market_id, region, commodity, date, observed_at, price``, in arrival order): the price
    observed last that day, the later arrival on a tie. Columns ``DAILY_COLUMNS``."""
    ordered = prices.sort_values("observed_at", kind="stable")
    last = ordered.drop_duplicates(["market_id", "commodity", "date"], keep="last")
    closes = last.rename(columns={"price": "close"}).loc[:, list(DAILY_COLUMNS)]
    return closes.sort_values(["market_id", "commodity", "date"], ignore_index=True)


def region_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Per region × commodity × day of daily closes (``DAILY_COLUMNS``; rows without a region
    are left out): the median, min, max and spread (max − min) of its markets' closes and how
    many markets reported — the columns of gold.region_daily."""
    grouped = daily[daily["region"] != ""].groupby(["region", "commodity", "date"], as_index=False)
    regions = grouped.agg(
        median=("close", "median"),
        min=("close", "min"),
        max=("close", "max"),
        markets=("market_id", "nunique"),
    )
    regions.insert(6, "spread", regions["max"] - regions["min"])
    return regions


def median_close_before(
    closes: Mapping[date, float], day: date, days: int = REFERENCE_DAYS
) -> float | None:
    """The median of a series' daily closes over the ``days`` days before ``day`` (``day``
    itself excluded); None when it has none there."""
    window = [close for d, close in closes.items() if day - timedelta(days=days) <= d < day]
    return float(statistics.median(window)) if window else None
