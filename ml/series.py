"""Daily price series for forecasting: from a long-format CSV or the gold tables to one regular
daily series per market × commodity and per region × commodity.

A series is identified by ``series_id`` = ``market:<market_id>:<commodity>`` or
``region:<region>:<commodity>``. A day's value is its close as ``lakehouse.domain.metrics`` defines
it
(the day's last price; a region's day is the median of its markets' closes); gaps stay gaps
here — ``regular`` fills them for the models, and scoring uses observed days only.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from lakehouse.catalog.conf import Conf
from lakehouse.config.errors import InputError
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.domain.metrics import daily_closes, region_daily

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


#: the columns of a province panel file (``datasets/prices_pihps_province_daily_2022_2024.csv.gz``:
#: one price per province × commodity × day, no market)
PANEL_COLUMNS = ("observed_at", "region", "commodity", "price")


def is_panel(path: Path) -> bool:
    """Whether ``path`` is a province panel (``PANEL_COLUMNS`` and no ``market_id``; plain or
    gzip-compressed CSV) rather than a report the producers' parser reads."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:
            header = {c.strip() for c in f.readline().split(",")}
    except (OSError, UnicodeDecodeError):
        return False
    return set(PANEL_COLUMNS) <= header and "market_id" not in header


def panel_series(path: Path, conf: Conf) -> pd.DataFrame:
    """The region series (``SERIES_COLUMNS``, ``region:<province>:<commodity>``) of a province
    panel file: provinces and commodities named as ``conf`` names them (InputError for a name
    it does not know), the price of each day as published (gaps stay gaps, typos stay)."""
    raw = pd.read_csv(path, usecols=list(PANEL_COLUMNS), parse_dates=["observed_at"])
    raw = raw.dropna(subset=["price"])
    names = {n: conf.province_name(n) for n in raw["region"].unique()}
    ids = {n: conf.commodity_id(n) for n in raw["commodity"].unique()}
    if unknown := sorted(n for n, v in (names | ids).items() if v is None):
        raise InputError(f"{path}: unknown province or commodity name(s): {', '.join(unknown)}")
    frame = pd.DataFrame(
        {
            "region": raw["region"].map(names),
            "commodity": raw["commodity"].map(ids),
            "date": raw["observed_at"].dt.normalize(),
            "y": raw["price"].astype(float),
        }
    )
    frame = frame.groupby(["region", "commodity", "date"], as_index=False)["y"].median()
    frame = frame.assign(
        series_kind="region",
        series_id="region:" + frame["region"] + ":" + frame["commodity"],
        market_id=None,
    )
    return frame[SERIES_COLUMNS].sort_values(["series_id", "date"], ignore_index=True)


def price_series(path: Path, tz: ZoneInfo, conf: Conf) -> tuple[pd.DataFrame, list[str]]:
    """The series of a price file and the lines skipped: a province panel (``is_panel``) as
    its region series, any other file through ``csv_series``."""
    if is_panel(path):
        return panel_series(path, conf), []
    return csv_series(path, tz, conf)


def regular(y: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A series indexed by date → (every day from first to last, gaps forward-filled; whether
    each day was observed)."""
    y = y[y.notna() & (y > 0)]
    y = (y if y.index.is_unique else y.groupby(level=0).median()).sort_index()
    days = pd.date_range(y.index.min(), y.index.max(), freq="D")
    observed = pd.Series(days.isin(y.index), index=days)
    return y.reindex(days).ffill(), observed
