"""The weekly brief of a province (``GET /api/v1/reports/brief``): per commodity, the week's
price level and its change against the week before and the same week a year before, the
markets that moved most, the surge probability for the next week, the stock cover, the share
of reports held or quarantined, and the headlines that named it — figures taken from the gold
and silver tables as they stand (the frames of :class:`Inputs`, read by the caller).

- **level**: the mean of the daily closes of the province's markets over the week's days
  (``gold.price_daily``), against the same mean of the week before and of the same ISO week a
  year before;
- **movers**: the markets whose mean close moved most against the week before (by size);
- **surge probability**: the highest ``surge_prob`` among the province's forecast series of the
  commodity at their newest origin within the week (``gold.forecasts``);
- **stock cover**: ``days_of_cover`` of the province on the week's last day with a value
  (``gold.supply_region_daily``);
- **held / quarantined**: of the week's price reports from the province's markets
  (``silver.prices`` and ``silver.quarantine``), the share held by the statistical rules
  (``silver.holds``) and the share quarantined by a hard rule;
- **headlines**: the week's newest headlines naming the commodity (``silver.news``), of the
  province or of no province.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from lakehouse.catalog.conf import Conf

MOVERS = 3  # markets named per commodity
HEADLINES = 3  # headlines named per commodity


@dataclass(frozen=True)
class Week:
    """An ISO week (Monday … Sunday, local dates)."""

    year: int
    number: int

    @classmethod
    def of(cls, day: date) -> Week:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @classmethod
    def parse(cls, text: str) -> Week:
        """``2026-W09`` or any day of the week (``2026-02-25``); ValueError otherwise."""
        if "W" in text.upper():
            year, _, number = text.upper().partition("-W")
            week = cls(int(year), int(number))
            week.start  # noqa: B018 — a week the calendar does not have raises here
            return week
        return cls.of(date.fromisoformat(text))

    @property
    def start(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)

    def before(self, weeks: int = 1) -> Week:
        return Week.of(self.start - timedelta(weeks=weeks))

    def year_before(self) -> Week:
        """The same week number a year before (its last week when that year has no week 53)."""
        weeks = date(self.year - 1, 12, 28).isocalendar().week
        return Week(self.year - 1, min(self.number, weeks))

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The week as UTC instants: its first local midnight, the next week's."""
        start = datetime.combine(self.start, time(), tz)
        return start, start + timedelta(days=7)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass(frozen=True)
class Inputs:
    """What a brief is made of, each frame the rows of its table for the province that the
    brief needs (any more rows are left out here)."""

    daily: pd.DataFrame  # gold.price_daily: market_id, commodity, date, close
    forecasts: pd.DataFrame  # gold.forecasts: series_id, commodity, origin_date, surge_prob
    cover: pd.DataFrame  # gold.supply_region_daily: commodity, date, days_of_cover
    accepted: pd.DataFrame  # silver.prices: event_id, commodity (the week's reports)
    quarantined: pd.DataFrame  # silver.quarantine: event_id, subject (the week's reports)
    held: pd.DataFrame  # silver.holds: event_id
    news: pd.DataFrame  # silver.news: published_at, title, source, province, mentions


@dataclass(frozen=True)
class Mover:
    market_id: str
    market: str  # its name
    regency: str
    change: float  # mean close vs the week before


@dataclass(frozen=True)
class Line:
    """One commodity of the brief; None where the tables hold nothing for it."""

    commodity: str
    name: str  # in the brief's language
    unit: str
    level: float | None
    change_week: float | None
    change_year: float | None
    surge_prob: float | None
    days_of_cover: float | None
    reports: int
    held_share: float | None
    quarantined_share: float | None
    movers: list[Mover] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Brief:
    province: str
    week: Week
    language: str
    lines: list[Line]


def _level(daily: pd.DataFrame, week: Week) -> pd.Series:
    """Mean close per commodity over the week's days."""
    rows = daily[(daily["date"] >= week.start) & (daily["date"] <= week.end)]
    return rows.groupby("commodity")["close"].mean()


def _change(now: float | None, then: float | None) -> float | None:
    return None if now is None or then is None or pd.isna(now) or pd.isna(then) else now / then - 1


def _movers(daily: pd.DataFrame, week: Week, commodity: str, conf: Conf) -> list[Mover]:
    rows = daily[daily["commodity"] == commodity]
    by_market = [
        rows[(rows["date"] >= w.start) & (rows["date"] <= w.end)].groupby("market_id")["close"]
        for w in (week, week.before())
    ]
    change = (by_market[0].mean() / by_market[1].mean() - 1).dropna()
    ranked = change.reindex(change.abs().sort_values(ascending=False).index)[:MOVERS]
    return [
        Mover(m, conf.markets[m].name, conf.markets[m].city, float(c))
        for m, c in ranked.items()
        if m in conf.markets
    ]


def _surge(forecasts: pd.DataFrame, commodity: str, week: Week) -> float | None:
    rows = forecasts[
        (forecasts["commodity"] == commodity)
        & (forecasts["origin_date"] <= week.end)
        & (forecasts["origin_date"] >= week.start)
    ]
    newest = rows[rows["origin_date"] == rows.groupby("series_id")["origin_date"].transform("max")]
    value = newest["surge_prob"].max()
    return None if pd.isna(value) else float(value)


def _cover(cover: pd.DataFrame, commodity: str, week: Week) -> float | None:
    rows = cover[
        (cover["commodity"] == commodity)
        & (cover["date"] >= week.start)
        & (cover["date"] <= week.end)
        & cover["days_of_cover"].notna()
    ]
    return None if rows.empty else float(rows.sort_values("date")["days_of_cover"].iloc[-1])


def _headlines(news: pd.DataFrame, commodity: str) -> list[str]:
    named = news[news["mentions"].map(lambda ms: any(m["commodity"] == commodity for m in ms))]
    newest = named.sort_values(["published_at", "title"], ascending=[False, True])
    return [f"{r.title} ({r.source})" for r in newest.head(HEADLINES).itertuples()]


def make_brief(inputs: Inputs, province: str, week: Week, language: str, conf: Conf) -> Brief:
    """The brief of ``province`` for ``week``: a line per commodity with a price that week."""
    levels = {w: _level(inputs.daily, w) for w in (week, week.before(), week.year_before())}
    reports = pd.concat(
        [
            inputs.accepted[["event_id", "commodity"]],
            inputs.quarantined.rename(columns={"subject": "commodity"})[["event_id", "commodity"]],
        ]
    ).drop_duplicates("event_id")
    held = set(inputs.held["event_id"])
    quarantined = set(inputs.quarantined["event_id"]) - held
    lines = []
    for commodity, level in levels[week].items():
        catalogue = conf.commodities.get(commodity)
        ids = reports.loc[reports["commodity"] == commodity, "event_id"]
        count = len(ids)
        lines.append(
            Line(
                commodity=commodity,
                name=catalogue.label(language) if catalogue else commodity,
                unit=catalogue.unit if catalogue else "",
                level=float(level),
                change_week=_change(level, levels[week.before()].get(commodity)),
                change_year=_change(level, levels[week.year_before()].get(commodity)),
                surge_prob=_surge(inputs.forecasts, commodity, week),
                days_of_cover=_cover(inputs.cover, commodity, week),
                reports=count,
                held_share=ids.isin(held).sum() / count if count else None,
                quarantined_share=ids.isin(quarantined).sum() / count if count else None,
                movers=_movers(inputs.daily, week, commodity, conf),
                headlines=_headlines(inputs.news, commodity),
            )
        )
    return Brief(province, week, language, sorted(lines, key=lambda line: line.name))
