"""Exogenous features of the global model (``ml.global_model``): the weather of a series'
place, and — where gold has them — the news signal and the supply cover of its commodity there.

**No look-ahead, by construction.** Every feature of a target day ``ds`` is computed only from
data dated at or before ``ds − horizon``. A forecast made at an origin reaches at most
``origin + horizon``, so every feature value it uses was known at the origin; and because the
feature is a function of the target day alone, training rows (one-step targets) and the rows of
a 7-day recursive forecast (``X_df`` of ``mlforecast``) are computed the same way — the model
never sees at fit time a fresher feature than it is given at predict time.

- weather (``rain_anomaly``, ``temperature_anomaly``): the monthly weather of the series' place
  (its city, else its province, else the mean of the panel's locations — ``ALL_PANEL``, e.g. for
  the national PIHPS series; ``ml.impact_design.weather_location``), of the last *complete* month
  before ``ds − horizon``: a month's weather is known once it has ended;
- news (``news_direction``): from ``gold.news_signal``, (up − down) / headlines over the 7 days
  ending ``ds − horizon`` for the series' commodity and province (a national series takes every
  province's headlines, ``ml.impact_design.with_national``); empty when no headline;
- supply (``days_of_cover``): from ``gold.supply_region_daily``, the mean days of stock cover
  over the same 7 days.

A feature whose source is absent (no gold table, no rows for the series, a month the panel does
not cover) is NaN, which LightGBM treats as missing; a feature empty over the whole training
data is not used at all (``ml.global_model``). Which families are used: ``ml.global_exogenous``
(default news and supply; the weather measured off: docs/forecasting.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lakehouse.catalog.reference import Market
from ml.impact_design import (
    NEWS_SIGNAL,
    SUPPLY_REGION_DAILY,
    panel_local,
    weather_location,
    with_national,
)

WINDOW = 7  # days a daily gold figure is averaged over
FEATURES: dict[str, tuple[str, ...]] = {
    "weather": ("rain_anomaly", "temperature_anomaly"),
    "news": ("news_direction",),
    "supply": ("days_of_cover",),
}
SOURCES: dict[str, str] = {"news": NEWS_SIGNAL, "supply": SUPPLY_REGION_DAILY}


@dataclass(frozen=True)
class ExogSources:
    """What the features are computed from: the rice panel's monthly weather (``ml.impact``'s
    ``panel`` file), the optional gold tables by registry name, the markets' places."""

    panel: pd.DataFrame | None = None
    gold: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    markets: Mapping[str, Market] = field(default_factory=dict)


def _places(series: pd.DataFrame, sources: ExogSources) -> pd.DataFrame:
    """Per series: commodity, province (a market's, else its region) and weather location."""
    known = set(sources.panel["location_name"]) if sources.panel is not None else set()
    rows = []
    for sid, g in series.groupby("series_id", sort=True):
        first = g.iloc[0]
        market = sources.markets.get(first.get("market_id") or "")
        region = first.get("region") or None
        province = market.province if market is not None else region
        place = weather_location(market, known)
        if market is None and region in known:
            place = region
        rows.append((sid, first["commodity"], province, place))
    return pd.DataFrame(rows, columns=["unique_id", "commodity", "province", "weather_location"])


def _days(series: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Every day of every series, from its first day to ``horizon`` days after its last."""
    span = series.groupby("series_id", sort=True)["date"].agg(["min", "max"])
    parts = [
        pd.DataFrame({"unique_id": sid, "ds": pd.date_range(lo, hi + pd.Timedelta(days=horizon))})
        for sid, (lo, hi) in span.iterrows()
    ]
    return pd.concat(parts, ignore_index=True)


def _weather(rows: pd.DataFrame, panel: pd.DataFrame | None) -> pd.DataFrame:
    columns = list(FEATURES["weather"])
    if panel is None:
        return pd.DataFrame(np.nan, index=rows.index, columns=columns)
    local = panel_local(panel).loc[:, ["weather_location", "month", *columns]]
    month = rows["known"].dt.to_period("M") - 1  # the last month complete at ``known``
    keyed = rows.loc[:, ["weather_location"]].assign(month=month)
    return keyed.merge(local, on=["weather_location", "month"], how="left").loc[:, columns]


def _trailing(daily: pd.DataFrame, values: Mapping[str, str]) -> pd.DataFrame:
    """A daily gold table as per (commodity, province, day) figures over the ``WINDOW`` days
    ending that day: ``values`` column → ``sum`` or ``mean`` (of the days that have rows)."""
    frame = with_national(daily.assign(date=pd.to_datetime(daily["date"])))
    keys = ["commodity", "province", "date"]
    per_day = frame.groupby(keys)[list(values)].agg(dict(values))
    parts = []
    for (commodity, province), g in per_day.groupby(level=[0, 1]):
        g = g.droplevel([0, 1])
        days = pd.date_range(g.index.min(), g.index.max() + pd.Timedelta(days=WINDOW - 1))
        g = g.reindex(days)
        rolled = pd.DataFrame(
            {
                c: g[c].fillna(0).rolling(WINDOW, min_periods=1).sum()
                if how == "sum"
                else g[c].rolling(WINDOW, min_periods=1).mean()
                for c, how in values.items()
            }
        )
        parts.append(rolled.assign(commodity=commodity, province=province, date=days))
    return pd.concat(parts, ignore_index=True)


def _daily(
    rows: pd.DataFrame, daily: pd.DataFrame | None, values: Mapping[str, str]
) -> pd.DataFrame:
    """``values`` of ``_trailing`` at each row's (commodity, province, ``known`` day)."""
    if daily is None or daily.empty:
        return pd.DataFrame(np.nan, index=rows.index, columns=list(values))
    trailing = _trailing(daily, values).rename(columns={"date": "known"})
    keys = ["commodity", "province", "known"]
    return rows.loc[:, keys].merge(trailing, on=keys, how="left").loc[:, list(values)]


def _news(rows: pd.DataFrame, sources: ExogSources) -> pd.DataFrame:
    counts = _daily(
        rows, sources.gold.get(NEWS_SIGNAL), {"headlines": "sum", "up": "sum", "down": "sum"}
    )
    headlines = counts["headlines"].where(counts["headlines"] > 0)
    return pd.DataFrame({"news_direction": (counts["up"] - counts["down"]) / headlines})


def _supply(rows: pd.DataFrame, sources: ExogSources) -> pd.DataFrame:
    return _daily(rows, sources.gold.get(SUPPLY_REGION_DAILY), {"days_of_cover": "mean"})


def exogenous(
    series: pd.DataFrame, sources: ExogSources, horizon: int, families: Iterable[str]
) -> pd.DataFrame:
    """The features of ``families`` for every day of every series of a ``SERIES_COLUMNS``
    frame, and the ``horizon`` days after its last: frame ``unique_id, ds, <features>``, each
    value computed from data dated at or before ``ds − horizon`` only."""
    families = [f for f in FEATURES if f in set(families)]
    days = _days(series, horizon)
    rows = days.merge(_places(series, sources), on="unique_id", how="left")
    rows["known"] = rows["ds"] - pd.Timedelta(days=horizon)
    build = {
        "weather": lambda: _weather(rows, sources.panel),
        "news": lambda: _news(rows, sources),
        "supply": lambda: _supply(rows, sources),
    }
    frames = [build[f]().set_axis(rows.index) for f in families]
    return pd.concat([days, *frames], axis=1)
