"""The impact model's design table: one row per commodity × location × period (a month, or a
week for commodities known only from daily closes) with the price change and the factor
features, grouped in families.

A family is one ``Family`` declaration in ``FAMILY_SPECS``: its name, its feature columns and a
function that computes them from a ``FeatureContext`` (the real inputs and the price rows), with
optionally the gold table it reads (``source``; read by ``./run.sh retrain`` when it exists). A
family whose data is absent — its gold table does not exist or holds no rows for a commodity —
leaves its features empty: the commodity's model then says so (``CommodityModel.unavailable``)
instead of failing.

Monthly national figures (fuel, inflation) and the panel's monthly weather and harvest are
carried to a week as the day-weighted mean of the months its days fall in (a month's own figures
for a monthly period); daily gold figures (news, stock cover) are aggregated over the period's
days.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd

from lakehouse.catalog.reference import NATIONAL, Market
from lakehouse.config.settings import ImpactSettings
from ml.daily import validated_daily

PANEL_COMMODITY = "beras"  # the monthly panel holds rice prices
MONTHLY, WEEKLY = "M", "W"
RESOLUTION_NAMES = {MONTHLY: "month", WEEKLY: "week"}
ALL_PANEL = "(all panel locations)"  # the weather of a place outside the panel: their mean
_TRAILING = 12  # months of a location's past that weather anomalies are measured against
NEWS_SIGNAL = "gold.news_signal"
SUPPLY_REGION_DAILY = "gold.supply_region_daily"


@dataclass(frozen=True)
class ImpactInputs:
    """The real data the model is fitted on (see ``ml.impact.load_inputs``)."""

    panel: pd.DataFrame  # location_name, year_month, price, precipitation_mm, ... (rice)
    fuel: pd.DataFrame  # Date, Price_IDR_per_Liter
    food_inflation: pd.DataFrame  # date, food_inflation_yoy_pct
    inflation_mom: pd.DataFrame  # date, inflation_rate_mom_pct
    daily: pd.DataFrame | None = None  # market_id, region, commodity, date, price (daily closes)
    #: optional gold tables by registry name (``Family.source``), as read by ``./run.sh retrain``
    gold: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: why an optional gold table is not in ``gold`` (it does not exist, it has no rows, ...)
    absent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureContext:
    """What a family's features are computed from: the inputs, the settings and the price rows
    (commodity, location, province, weather_location, resolution, start, end, change, ...)."""

    inputs: ImpactInputs
    settings: ImpactSettings
    rows: pd.DataFrame


@dataclass(frozen=True)
class Family:
    """One factor family: its features (columns of the frame ``build`` returns, aligned with
    ``FeatureContext.rows``) and the optional gold table it reads."""

    name: str
    features: tuple[str, ...]
    build: Callable[[FeatureContext], pd.DataFrame]
    source: str | None = None


# --- periods ----------------------------------------------------------------------------------


def resolution(commodity: str, s: ImpactSettings) -> str:
    """A commodity's period: months for the panel's commodity (rice), else ``daily_resolution``."""
    return MONTHLY if commodity == PANEL_COMMODITY else s.daily_resolution


def period_label(start: pd.Timestamp, freq: str) -> str:
    """``2024-04`` for a month, ``2024-04-15/2024-04-21`` for a week."""
    return str(pd.Period(start, freq=freq))


def period_bounds(dates: pd.Series, freqs: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The first and last day of the period (of the row's ``freqs``) each date falls in."""
    start = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    end = start.copy()
    for freq in freqs.unique():
        mask = freqs == freq
        periods = pd.to_datetime(dates[mask]).dt.to_period(freq)
        start[mask] = periods.dt.start_time
        end[mask] = periods.dt.end_time.dt.normalize()
    return start, end


def _month_weights(periods: pd.DataFrame) -> pd.DataFrame:
    """Per distinct period (start, end): the months its days fall in, with the number of days."""
    rows = []
    for start, end in periods[["start", "end"]].drop_duplicates().itertuples(index=False):
        days = pd.date_range(start, end, freq="D").to_period("M").value_counts()
        rows += [(start, end, month, n) for month, n in days.items()]
    return pd.DataFrame(rows, columns=["start", "end", "month", "days"])


def _spread(monthly: pd.DataFrame, rows: pd.DataFrame, keys: Iterable[str] = ()) -> pd.DataFrame:
    """Monthly figures (``keys`` + ``month`` + values) as figures of ``rows``' periods, aligned
    with ``rows``: the day-weighted mean of the known months of each period."""
    keys = list(keys)
    values = [c for c in monthly.columns if c not in (*keys, "month")]
    weighted = _month_weights(rows).merge(monthly, on="month")
    present = weighted[values].notna().mul(weighted["days"], axis=0)
    total = weighted[values].fillna(0).mul(weighted["days"], axis=0)
    by = [*(weighted[k] for k in keys), weighted["start"], weighted["end"]]
    spread = (total.groupby(by).sum() / present.groupby(by).sum()).reset_index()
    return rows.loc[:, [*keys, "start", "end"]].merge(spread, how="left").loc[:, values]


def with_national(daily: pd.DataFrame) -> pd.DataFrame:
    """A daily gold table (date × province × commodity) with every row also as a row of the
    national location (``Indonesia``): a national series takes every province's rows (and the
    national ones), a province only its own."""
    return pd.concat([daily[daily["province"] != NATIONAL], daily.assign(province=NATIONAL)])


def _daily_by_period(
    daily: pd.DataFrame, ctx: FeatureContext, aggregate: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    """A daily gold table (date × province × commodity) aggregated over each row's period and
    place (``aggregate``: output → (column, pandas aggregation)), aligned with ``ctx.rows``. A
    national location (``Indonesia``) takes every province's rows."""
    s = ctx.settings
    frame = daily[daily["commodity"].isin(set(ctx.rows["commodity"]))]
    freqs = frame["commodity"].map(lambda c: resolution(c, s))
    frame = frame.assign(start=period_bounds(frame["date"], freqs)[0])
    keys = ["commodity", "province", "start"]
    out = with_national(frame).groupby(keys).agg(**aggregate).reset_index()
    return ctx.rows.loc[:, keys].merge(out, on=keys, how="left").loc[:, list(aggregate)]


# --- families ---------------------------------------------------------------------------------


def _monthly(frame: pd.DataFrame, date_column: str, value_column: str) -> pd.Series:
    months = pd.to_datetime(frame[date_column]).dt.to_period("M")
    return frame.assign(month=months).groupby("month")[value_column].mean()


def panel_local(panel: pd.DataFrame) -> pd.DataFrame:
    """Weather and harvest figures per panel location × month, plus the mean weather of all
    panel locations (``ALL_PANEL``) for places outside the panel."""
    panel = panel.assign(month=pd.PeriodIndex(panel["year_month"], freq="M"))
    parts = []
    for location, g in panel.groupby("location_name"):
        g = g.sort_values("month").set_index("month")
        past = g.shift(1).rolling(_TRAILING, min_periods=_TRAILING // 2)
        harvest = np.log(g["luas_panen_ha"].where(g["luas_panen_ha"] > 0))
        parts.append(
            pd.DataFrame(
                {
                    "weather_location": location,
                    "rain_mm": g["precipitation_mm"],
                    "rain_anomaly": g["precipitation_mm"] - past["precipitation_mm"].mean(),
                    "temperature_anomaly": g["temperature_mean_c"]
                    - past["temperature_mean_c"].mean(),
                    "harvest_change": 100 * harvest.diff(),
                    "harvest_anomaly": 100
                    * (harvest - harvest.shift(1).rolling(24, min_periods=12).mean()),
                }
            )
        )
    local = pd.concat(parts).reset_index()
    weather = ["rain_mm", "rain_anomaly", "temperature_anomaly"]
    mean = local.groupby("month")[weather].mean().reset_index().assign(weather_location=ALL_PANEL)
    return pd.concat([local, mean], ignore_index=True)


def _weather(ctx: FeatureContext) -> pd.DataFrame:
    local = panel_local(ctx.inputs.panel)
    columns = ["weather_location", "month", "rain_mm", "rain_anomaly", "temperature_anomaly"]
    return _spread(local.loc[:, columns], ctx.rows, ["weather_location"])


def _distribution_cost(ctx: FeatureContext) -> pd.DataFrame:
    fuel = np.log(_monthly(ctx.inputs.fuel, "Date", "Price_IDR_per_Liter"))
    monthly = pd.DataFrame(
        {"fuel_change": 100 * fuel.diff(), "fuel_change_3m": 100 * (fuel - fuel.shift(3))}
    )
    return _spread(monthly.rename_axis("month").reset_index(), ctx.rows)


def _season_holidays(ctx: FeatureContext) -> pd.DataFrame:
    """Month of year (of the period's middle day), days of Ramadan in the period, days from its
    middle to the nearest Idul Fitri (negative: it is past); dates from ``holidays``."""
    rows = ctx.rows
    years = range(rows["start"].min().year - 1, rows["end"].max().year + 2)
    calendar = holidays.Indonesia(years=years, language="en_US")
    fitri = sorted(d for d, name in calendar.items() if name == "Eid al-Fitr")
    ramadan = ctx.settings.ramadan_days
    out = []
    for start, end in rows[["start", "end"]].drop_duplicates().itertuples(index=False):
        first, last = start.date(), end.date()
        middle = first + timedelta(days=(last - first).days // 2)
        out.append(
            {
                "start": start,
                "end": end,
                "month_sin": math.sin(2 * math.pi * middle.month / 12),
                "month_cos": math.cos(2 * math.pi * middle.month / 12),
                "ramadan_days": sum(
                    _overlap_days(first, last, f - timedelta(days=ramadan), f - timedelta(1))
                    for f in fitri
                ),
                "days_to_idul_fitri": min(((f - middle).days for f in fitri), key=abs),
            }
        )
    features = ["month_sin", "month_cos", "ramadan_days", "days_to_idul_fitri"]
    return rows.loc[:, ["start", "end"]].merge(pd.DataFrame(out), how="left").loc[:, features]


def _overlap_days(start: date, end: date, first: date, last: date) -> int:
    return max(0, (min(end, last) - max(start, first)).days + 1)


def _supply(ctx: FeatureContext) -> pd.DataFrame:
    """Harvested-area change and anomaly (the rice panel: rice only), and from
    ``gold.supply_region_daily`` the mean days of stock cover and late shipments per day."""
    local = panel_local(ctx.inputs.panel)
    harvest = local.loc[
        local["weather_location"] != ALL_PANEL,
        ["weather_location", "month", "harvest_change", "harvest_anomaly"],
    ]
    out = _spread(harvest, ctx.rows, ["weather_location"])
    out.loc[ctx.rows["commodity"].to_numpy() != PANEL_COMMODITY, :] = np.nan
    streams = ctx.inputs.gold.get(SUPPLY_REGION_DAILY)
    aggregate = {
        "days_of_cover": ("days_of_cover", "mean"),
        "shipments_late": ("shipments_late", "mean"),
    }
    if streams is None:
        return out.assign(**dict.fromkeys(aggregate, np.nan))
    return pd.concat([out, _daily_by_period(streams, ctx, aggregate)], axis=1)


def _national_demand(ctx: FeatureContext) -> pd.DataFrame:
    """The period's mean change of the commodity's other locations (co-movement), and the
    previous period's."""
    rows = ctx.rows
    by_period = rows.groupby(["commodity", "start"])["change"]
    total, count = by_period.transform("sum"), by_period.transform("count")
    others = count - rows["change"].notna()
    national = ((total - rows["change"].fillna(0)) / others).where(others > 0)
    lag = national.groupby([rows["commodity"], rows["location"]]).shift(1)
    return pd.DataFrame({"national_change": national, "national_change_lag": lag})


def _macro(ctx: FeatureContext) -> pd.DataFrame:
    food = _monthly(ctx.inputs.food_inflation, "date", "food_inflation_yoy_pct")
    monthly = pd.DataFrame(
        {
            "food_inflation": food,
            "food_inflation_change": food.diff(),
            "inflation_mom": _monthly(ctx.inputs.inflation_mom, "date", "inflation_rate_mom_pct"),
        }
    )
    return _spread(monthly.rename_axis("month").reset_index(), ctx.rows)


def _news(ctx: FeatureContext) -> pd.DataFrame:
    """From ``gold.news_signal``: the period's net direction of the headlines ((up − down) /
    headlines) and their mean daily intensity."""
    signal = ctx.inputs.gold.get(NEWS_SIGNAL)
    if signal is None:
        return pd.DataFrame(
            np.nan, index=ctx.rows.index, columns=["news_direction", "news_intensity"]
        )
    counts = _daily_by_period(
        signal,
        ctx,
        {
            "headlines": ("headlines", "sum"),
            "up": ("up", "sum"),
            "down": ("down", "sum"),
            "news_intensity": ("intensity", "mean"),
        },
    )
    direction = (counts["up"] - counts["down"]) / counts["headlines"].where(counts["headlines"] > 0)
    return pd.DataFrame(
        {"news_direction": direction, "news_intensity": counts["news_intensity"]},
        index=ctx.rows.index,
    )


FAMILY_SPECS: tuple[Family, ...] = (
    Family("weather", ("rain_mm", "rain_anomaly", "temperature_anomaly"), _weather),
    Family("distribution_cost", ("fuel_change", "fuel_change_3m"), _distribution_cost),
    Family(
        "season_holidays",
        ("month_sin", "month_cos", "ramadan_days", "days_to_idul_fitri"),
        _season_holidays,
    ),
    Family(
        "supply",
        ("harvest_change", "harvest_anomaly", "days_of_cover", "shipments_late"),
        _supply,
        SUPPLY_REGION_DAILY,
    ),
    Family("national_demand", ("national_change", "national_change_lag"), _national_demand),
    Family("macro", ("food_inflation", "food_inflation_change", "inflation_mom"), _macro),
    Family("news", ("news_direction", "news_intensity"), _news, NEWS_SIGNAL),
)
FAMILIES: dict[str, tuple[str, ...]] = {f.name: f.features for f in FAMILY_SPECS}
FEATURES: tuple[str, ...] = tuple(f for names in FAMILIES.values() for f in names)
SOURCES: dict[str, str] = {f.name: f.source for f in FAMILY_SPECS if f.source}


# --- price rows -------------------------------------------------------------------------------


def weather_location(market: Market | None, known: set[str]) -> str:
    """The panel location whose weather a market shares: its city, else its province, else the
    mean of all panel locations."""
    if market is None:
        return ALL_PANEL
    return next((name for name in (market.city, market.province) if name in known), ALL_PANEL)


def _panel_prices(panel: pd.DataFrame) -> pd.DataFrame:
    start = pd.PeriodIndex(panel["year_month"], freq="M").start_time
    return pd.DataFrame(
        {
            "commodity": PANEL_COMMODITY,
            "location": panel["location_name"],
            "region": None,
            "province": None,
            "weather_location": panel["location_name"],
            "resolution": MONTHLY,
            "start": start,
            "price": panel["price"],
        }
    )


def _daily_prices(
    daily: pd.DataFrame, s: ImpactSettings, panel: set[str], markets: dict[str, Market]
) -> pd.DataFrame:
    """Daily closes as mean prices per market × period (of the commodity's resolution)."""
    daily = validated_daily(daily)
    daily["resolution"] = daily["commodity"].map(lambda c: resolution(c, s))
    daily["start"] = period_bounds(daily["date"], daily["resolution"])[0]
    out = (
        daily.groupby(["commodity", "market_id", "resolution", "start"], as_index=False)
        .agg(price=("price", "mean"), region=("region", "last"))
        .rename(columns={"market_id": "location"})
    )
    out["province"] = out["location"].map(lambda m: markets[m].province if m in markets else None)
    out["province"] = out["province"].fillna(out["region"])
    out["weather_location"] = out["location"].map(lambda m: weather_location(markets.get(m), panel))
    return out


def price_rows(inputs: ImpactInputs, s: ImpactSettings, markets: dict[str, Market]) -> pd.DataFrame:
    """One row per commodity × location × period: mean price, the previous period's and the
    change (``100 × log`` ratio, the target; empty when the previous period is missing); a
    market's province and weather from ``markets``."""
    parts = [_panel_prices(inputs.panel)]
    if inputs.daily is not None and not inputs.daily.empty:
        panel = set(inputs.panel["location_name"])
        parts.append(_daily_prices(inputs.daily, s, panel, markets))
    rows = pd.concat(parts, ignore_index=True).sort_values(["commodity", "location", "start"])
    rows["end"] = period_bounds(rows["start"], rows["resolution"])[1]
    previous = rows.groupby(["commodity", "location"])[["end", "price"]].shift(1)
    consecutive = previous["end"] + pd.Timedelta(days=1) == rows["start"]
    rows["previous_price"] = previous["price"].where(consecutive)
    rows["change"] = 100 * np.log(rows["price"] / rows["previous_price"])
    return rows.reset_index(drop=True)


def build_design(
    inputs: ImpactInputs,
    s: ImpactSettings,
    markets: dict[str, Market],
    without: Iterable[str] = (),
) -> pd.DataFrame:
    """The price rows with every family's features (those of the ``without`` families left
    empty, to measure what a family adds)."""
    rows = price_rows(inputs, s, markets)
    ctx = FeatureContext(inputs, s, rows)
    skip = set(without)
    frames = [
        pd.DataFrame(np.nan, index=rows.index, columns=list(f.features))
        if f.name in skip
        else f.build(ctx).set_axis(rows.index).loc[:, list(f.features)]
        for f in FAMILY_SPECS
    ]
    return pd.concat([rows, *frames], axis=1)
