"""Features of the forecasting models — pure functions of a regular daily price series.

Every feature at date *t* uses prices up to and including *t* only (lags, trailing windows,
exponential averages), so a model trained at a backtest origin never sees the future.
Indonesian holidays come from the ``holidays`` package, Ramadan's first day too (its Islamic
calendar for Indonesia: the MABIMS criterion, the government's confirmed dates where known),
never from a hand-written date list.
"""

from __future__ import annotations

from functools import cache

import holidays
import numpy as np
import pandas as pd
from holidays.countries.indonesia import IndonesiaIslamicHolidays

# Holidays that move food prices, by their name in the `holidays` package (English).
HOLIDAY_NAMES = {
    "Eid al-Fitr": "idul_fitri",
    "Eid al-Adha": "idul_adha",
    "Christmas Day": "natal",
    "New Year's Day": "tahun_baru",
    "Lunar New Year": "imlek",
}
RAMADAN_MAX_DAYS = 30  # a lunar month: Ramadan has 29 or 30 days
LAGS = (1, 7, 14, 28)
WINDOWS = (7, 28)


@cache
def _holiday_table(first_year: int, last_year: int) -> pd.DataFrame:
    calendar = holidays.country_holidays("ID", years=range(first_year, last_year + 1))
    rows = [
        (HOLIDAY_NAMES[name], pd.Timestamp(day))
        for day, name in calendar.items()
        if name in HOLIDAY_NAMES
    ]
    islamic = IndonesiaIslamicHolidays()
    rows += [
        ("ramadan_start", pd.Timestamp(day))
        for year in range(first_year, last_year + 1)
        for day, _ in islamic.ramadan_beginning_dates(year)
    ]
    table = pd.DataFrame(rows, columns=["holiday", "ds"]).drop_duplicates()
    return table.sort_values("ds", ignore_index=True)


def holiday_table(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Indonesian holidays relevant to food prices (``holiday, ds``) from a year before ``start``
    to a year after ``end`` (so distances near the edges are right)."""
    return _holiday_table(start.year - 1, end.year + 1)


def holiday_distances(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Per day: days until the next and since the last major holiday (Idul Fitri, Idul Adha,
    Natal, Tahun Baru, Imlek) and until the next Idul Fitri, capped at 60."""
    table = holiday_table(days.min(), days.max())
    out = {}
    for name, dates in (
        ("holiday", table["ds"]),
        ("idul_fitri", table.loc[table["holiday"] == "idul_fitri", "ds"]),
    ):
        sorted_dates = np.sort(dates.to_numpy())
        pos = np.searchsorted(sorted_dates, days.to_numpy())
        nxt = sorted_dates[np.minimum(pos, len(sorted_dates) - 1)]
        prev_pos = np.searchsorted(sorted_dates, days.to_numpy(), side="right") - 1
        prv = sorted_dates[np.maximum(prev_pos, 0)]
        until = (nxt - days.to_numpy()) / np.timedelta64(1, "D")
        since = (days.to_numpy() - prv) / np.timedelta64(1, "D")
        out[f"days_to_{name}"] = np.clip(until, 0, 60)
        if name == "holiday":
            out["days_since_holiday"] = np.clip(since, 0, 60)
    return pd.DataFrame(out, index=days)


def _rsi(y: pd.Series, window: int = 14) -> pd.Series:
    change = y.diff()
    gain = change.clip(lower=0).rolling(window, min_periods=1).mean()
    loss = (-change.clip(upper=0)).rolling(window, min_periods=1).mean()
    return 100 - 100 / (1 + gain / loss.replace(0, np.nan))


def origin_features(y: pd.Series) -> pd.DataFrame:
    """Features known at the close of each day of a regular daily series, relative to that
    day's price (so the model learns shapes, not levels): lag ratios, trailing window
    statistics, momentum, RSI, MACD and Bollinger %B."""
    log_y = np.log(y)
    f = {}
    for lag in LAGS:
        f[f"ret_{lag}"] = log_y - log_y.shift(lag)
    for window in WINDOWS:
        rolling = y.rolling(window, min_periods=2)
        f[f"mean_{window}"] = np.log(rolling.mean() / y)
        f[f"std_{window}"] = rolling.std() / y
        f[f"min_{window}"] = np.log(rolling.min() / y)
        f[f"max_{window}"] = np.log(rolling.max() / y)
    f["momentum_7_28"] = f["ret_7"] - f["ret_28"] / 4
    f["rsi_14"] = _rsi(y)
    ema12, ema26 = y.ewm(span=12).mean(), y.ewm(span=26).mean()
    macd = (ema12 - ema26) / y
    f["macd"] = macd
    f["macd_signal"] = macd - macd.ewm(span=9).mean()
    mid, sd = y.rolling(20, min_periods=2).mean(), y.rolling(20, min_periods=2).std()
    f["bollinger_b"] = (y - (mid - 2 * sd)) / (4 * sd).replace(0, np.nan)
    return pd.DataFrame(f, index=y.index)


def target_features(targets: pd.DatetimeIndex, horizons: np.ndarray) -> pd.DataFrame:
    """Features of the forecast target day: horizon, weekday and holiday distances (all known
    in advance). No month or day of year: with a year or so of history they would memorise last
    year rather than learn a season; the holiday distances carry the calendar that matters."""
    frame = pd.DataFrame({"horizon": horizons, "dow": targets.dayofweek}, index=targets)
    return pd.concat([frame, holiday_distances(targets)], axis=1)


def design(y: pd.Series, origins: pd.DatetimeIndex, horizon: int) -> pd.DataFrame:
    """One row per (origin, h) for h in 1..horizon: origin features + target-day features, with
    ``origin`` and ``target`` columns. Only prices ≤ origin enter a row."""
    at_origin = origin_features(y).loc[origins]
    hs = np.arange(1, horizon + 1)
    repeated = at_origin.loc[at_origin.index.repeat(horizon)]
    origin_index = repeated.index
    targets = origin_index + pd.to_timedelta(np.tile(hs, len(origins)), unit="D")
    target_part = target_features(pd.DatetimeIndex(targets), np.tile(hs, len(origins)))
    rows = pd.concat([repeated.reset_index(drop=True), target_part.reset_index(drop=True)], axis=1)
    rows["origin"] = origin_index
    rows["target"] = targets
    return rows


# ---- calendar of a target day (the global model's ``date_features``, ml.global_model) -------
WEEKS_CAP = 9  # weeks to a holiday further away than this count as this many


def _dates(days: pd.DatetimeIndex, holiday: str) -> np.ndarray:
    table = holiday_table(days.min(), days.max())
    return np.sort(table.loc[table["holiday"] == holiday, "ds"].to_numpy())


def _days_to(days: pd.DatetimeIndex, holiday: str) -> np.ndarray:
    """Days from each day to the next ``holiday`` (a name of ``holiday_table``)."""
    dates = _dates(days, holiday)
    pos = np.minimum(np.searchsorted(dates, days.to_numpy()), len(dates) - 1)
    return (dates[pos] - days.to_numpy()) / np.timedelta64(1, "D")


def _days_since(days: pd.DatetimeIndex, holiday: str) -> np.ndarray:
    """Days from the last ``holiday`` on or before each day to it."""
    dates = _dates(days, holiday)
    pos = np.maximum(np.searchsorted(dates, days.to_numpy(), side="right") - 1, 0)
    return (days.to_numpy() - dates[pos]) / np.timedelta64(1, "D")


def _weeks_to(days: pd.DatetimeIndex, holiday: str) -> np.ndarray:
    return np.clip(np.floor(_days_to(days, holiday) / 7), 0, WEEKS_CAP)


def dayofweek(days: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(days.dayofweek)


def month(days: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(days.month)


def ramadan_day(days: pd.DatetimeIndex) -> np.ndarray:
    """1..29 or 30 inside Ramadan (from its first day to the eve of Idul Fitri), 0 outside."""
    since = _days_since(days, "ramadan_start")
    inside = (since >= 0) & (since < RAMADAN_MAX_DAYS) & (_days_to(days, "idul_fitri") >= 1)
    return np.where(inside, since + 1, 0)


def weeks_to_idul_fitri(days: pd.DatetimeIndex) -> np.ndarray:
    return _weeks_to(days, "idul_fitri")


def weeks_to_idul_adha(days: pd.DatetimeIndex) -> np.ndarray:
    return _weeks_to(days, "idul_adha")


def weeks_to_nataru(days: pd.DatetimeIndex) -> np.ndarray:
    """Weeks to Christmas (Natal), which opens the Nataru season with the New Year."""
    return _weeks_to(days, "natal")


CALENDAR = (
    dayofweek,
    month,
    ramadan_day,
    weeks_to_idul_fitri,
    weeks_to_idul_adha,
    weeks_to_nataru,
)
