"""Daily price series for forecasting: from a long-format CSV or the gold tables to one regular
daily series per market × commodity and per region × commodity.

A series is identified by ``series_id`` = ``market:<market_id>:<commodity>`` or
``region:<region>:<commodity>``. A day's value is its close as ``lakehouse.domain.metrics`` defines
it
(the day's last price; a region's day is the median of its markets' closes); gaps stay gaps
here — ``regular`` fills them for the models, and scoring uses observed days only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from lakehouse.catalog.conf import Conf
from lakehouse.config.errors import InputError
from lakehouse.domain.metrics import daily_closes, region_daily
from lakehouse.domain.reports import open_report, parse_rows

SERIES_COLUMNS = ["series_id", "series_kind", "market_id", "region", "commodity", "date", "y"]


@dataclass(frozen=True)
class CsvPrices:
    """The valid rows of a price file (one row per price) and the lines that could not be read."""

    prices: pd.DataFrame  # date, observed_at, market_id, region, commodity, price (file order)
    skipped: list[str]


def read_price_csv(path: Path, tz: ZoneInfo, conf: Conf) -> CsvPrices:
    """Read a long-format price CSV with the producers' parser (Indonesian numbers, ``;``,
    day-first dates; the names of ``conf``'s catalogue). Raises ``InputError`` when the file is
    not a usable price file."""
    report = open_report(path, conf)
    if report.kind != "price":
        raise InputError(f"{path}: this is a sensor file, not a price file")
    rows, skipped = [], []
    for row in parse_rows(report, tz):
        if row.event is None:
            skipped.append(f"line {row.line}: {row.error}")
            continue
        event = row.event
        rows.append(
            (
                event.observed_at.astimezone(tz).date(),
                event.observed_at,
                event.market_id,
                event.region or "",
                event.commodity,
                event.price,
            )
        )
    if not rows:
        raise InputError(f"{path}: no row could be read (first problem: {skipped[0]})")
    columns = ["date", "observed_at", "market_id", "region", "commodity", "price"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["date"] = pd.to_datetime(frame["date"])
    return CsvPrices(frame, skipped)


def series_frame(daily: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    """All series in one long frame (``SERIES_COLUMNS``), sorted by series and date.

    Region series are built only for regions with at least two markets of the commodity: with
    one market the region series would repeat the market series."""
    markets = daily.assign(
        series_kind="market",
        series_id="market:" + daily["market_id"] + ":" + daily["commodity"],
        y=daily["close"],
    )
    per_region = daily.groupby(["region", "commodity"])["market_id"].nunique()
    shared = per_region[per_region >= 2].index
    keep = regions.set_index(["region", "commodity"]).index.isin(shared)
    chosen = regions[keep]
    region_rows = chosen.assign(
        series_kind="region",
        series_id="region:" + chosen["region"] + ":" + chosen["commodity"],
        market_id=None,
        y=chosen["median"],
    )
    frame = pd.concat([markets[SERIES_COLUMNS], region_rows[SERIES_COLUMNS]], ignore_index=True)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values(["series_id", "date"], ignore_index=True)


def csv_series(path: Path, tz: ZoneInfo, conf: Conf) -> tuple[pd.DataFrame, list[str]]:
    """The series of a price CSV and the lines skipped."""
    read = read_price_csv(path, tz, conf)
    daily = daily_closes(read.prices)
    return series_frame(daily, region_daily(daily)), read.skipped


def regular(y: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A series indexed by date → (every day from first to last, gaps forward-filled; whether
    each day was observed)."""
    y = y[y.notna() & (y > 0)].groupby(level=0).median().sort_index()
    days = pd.date_range(y.index.min(), y.index.max(), freq="D")
    observed = pd.Series(days.isin(y.index), index=days)
    return y.reindex(days).ffill(), observed
