"""Simulated price reports: the shipped real price history as the reference markets' past and
today, and every province's real average.

The ``prices`` service of ``./run.sh up`` (``price_simulator`` in conf/settings.yaml) makes a
first run show a live board, with its history, without any data of one's own. The real files
(``datasets/prices_pihps_daily_2024_2025.csv`` by default: Bank Indonesia's PIHPS daily series)
give every calendar day one day of theirs — consecutive days are consecutive days of the files,
forward to their end, then back (``day_index`` of the date), so from one day to the next a
price moves as the real one did and never jumps from the last day to the first. Each reference
market of conf/markets.csv has its own price level (``producers.replay.synthetic_markets``).

- **History, once.** At start the service first publishes, back-dated, the days before today
  that were never published (``seed_plan``): ``seed_days`` of them on a first start, the days it
  was not running at all after that — one report per market × commodity per day, in date order.
  The last day covered (by history or by rounds) is recorded in ``<data_dir>/prices.json``; the
  event ids are deterministic, so a crash that loses the record publishes the same events again
  and silver keeps one copy.
- **Today.** Every ``interval_seconds`` a round: ``markets_per_round`` markets (taking turns)
  report each commodity at the day's level ± at most ``noise_pct`` % — small intraday noise, a
  new observation time on every round.
- **Province averages.** ``province_files`` (``datasets/prices_pihps_province_daily_2022_2024
  .csv.gz`` by default: PIHPS's daily average of 10 foods in 34 provinces) are published as
  they are, once a day (observed at the local day's start), each as its province's aggregate
  market ``PROV-<code>`` — in the history and on the first round of each day. A day a series
  lacks carries its last price forward (as the source does on weekends). A province the files
  do not have takes the series of the province it was split from (``formed_from`` of
  conf/provinces.csv: the four Papua provinces of 2022), its source marked
  ``simulator:<file>#<that province>``; so every province has prices from the first start.

The events are ordinary price events (source ``simulator:<file>``) on the prices topic: they pass
the same validation as any report and end in silver or quarantine like every other price.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.events import PriceEvent, deterministic_id
from lakehouse.catalog.reference import province_market_id
from lakehouse.config.errors import InputError
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.intake.reports import open_report, parse_rows, price_frame
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import next_round_at, run_rounds, stop_event, write_status
from producers.replay import SyntheticMarket, synthetic_markets
from producers.state import read_state, write_state

log = logging.getLogger(__name__)

STATUS_NAME = "prices"
SOURCE_PREFIX = "simulator:"


@dataclass(frozen=True)
class DayPrice:
    """One commodity's price on one day of the files (the mean of their series that day)."""

    commodity: str
    price: float
    unit: str
    file: str


def history(files: list[Path], settings: Settings) -> list[list[DayPrice]]:
    """The days of the files in date order, each with one price per commodity. Rows that are not
    prices (sensor files, unparseable rows) are left out; a file without any price raises
    InputError."""
    prices: dict[date, dict[tuple[str, str, str], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for path in files:
        report = open_report(path, conf_of(settings))
        found = 0
        for row in parse_rows(report, settings.tz):
            if isinstance(row.event, PriceEvent):
                key = (row.event.commodity, row.event.unit, path.name)
                prices[row.event.observed_at.date()][key].append(row.event.price)
                found += 1
        if not found:
            raise InputError(f"{path}: no prices to simulate from")
    return [
        [DayPrice(c, round(fmean(v), 0), unit, name) for (c, unit, name), v in sorted(day.items())]
        for _, day in sorted(prices.items())
    ]


@dataclass(frozen=True)
class PanelSeries:
    """A series of the province files: its market (a province average), commodity, unit, file."""

    market_id: str
    commodity: str
    unit: str
    file: str


@dataclass(frozen=True)
class Panel:
    """The series of the province files with one price per day each, in date order (NaN before
    a series' first price; a day it lacks carries its last price forward)."""

    series: list[PanelSeries]
    prices: np.ndarray  # days × series


def province_panel(files: list[Path], settings: Settings) -> Panel:
    """The price series of ``files`` (each row its market's, e.g. a province average), by day;
    of two prices of a series on one day, the later row's. A file without any price raises
    InputError."""
    frames = []
    for path in files:
        prices = price_frame(open_report(path, conf_of(settings)), settings.tz)
        if prices.empty:
            raise InputError(f"{path}: no prices to simulate from")
        frames.append(prices.assign(file=path.name))
    found = pd.concat(frames, ignore_index=True)
    times = found["observed_at"]
    found["date"] = times.map({t: t.date() for t in times.drop_duplicates()})
    keys = ["market_id", "commodity", "unit", "file"]
    table = found.pivot_table(index="date", columns=keys, values="price", aggfunc="last")
    table = table.sort_index().ffill()  # carried forward over the days a series lacks
    series = [PanelSeries(*key) for key in table.columns]
    return Panel(series, table.to_numpy(dtype=float))


@dataclass(frozen=True)
class Average:
    """A province's average of one commodity: the panel column it is published from."""

    market_id: str
    province: str
    column: int
    source: str


def province_averages(panel: Panel, conf: Conf) -> list[Average]:
    """The series each province publishes as its aggregate market: its own of ``panel``, else
    (a province formed after the files were made) those of the province it was split from."""
    columns: dict[str, list[int]] = defaultdict(list)
    for n, s in enumerate(panel.series):
        columns[s.market_id].append(n)
    averages = []
    for p in conf.provinces.values():
        own = province_market_id(p)
        parent = conf.provinces.get(p.formed_from or "")
        source, taken = "", columns.get(own)
        if not taken and parent is not None:
            source, taken = f"#{parent.name}", columns.get(province_market_id(parent))
        for n in taken or ():
            file = panel.series[n].file
            averages.append(Average(own, p.name, n, f"{SOURCE_PREFIX}{file}{source}"))
    return averages


def day_index(round_number: int, days: int) -> int:
    """The day of ``days`` that round ``round_number`` plays: 0, 1, …, days-1, days-2, …, 1, 0,
    1, … (forward, then back)."""
    if days <= 1:
        return 0
    period = 2 * (days - 1)
    step = round_number % period
    return step if step < days else period - step


def seed_plan(today: date, through: date | None, days: int) -> list[date]:
    """The past days to publish before today's reports, oldest first: the ``days`` days before
    ``today`` on a first start (``through`` None), else those after ``through`` (the last day
    already published) — at most ``days`` of them, never today or later."""
    first = today - timedelta(days=days)
    if through is not None:
        first = max(first, through + timedelta(days=1))
    return [first + timedelta(days=n) for n in range((today - first).days)]


def simulated_price(
    market_id: str,
    province: str,
    commodity: str,
    at: datetime,
    source: str,
    price: float,
    unit: str,
) -> PriceEvent:
    """A simulated report, its id drawn from its market, commodity and time: a round sent again
    (a restart) sends the same ids, which silver counts as duplicates."""
    return PriceEvent(
        event_id=deterministic_id("price-simulator", market_id, commodity, at.isoformat()),
        market_id=market_id,
        region=province,
        observed_at=at,
        source=source,
        commodity=commodity,
        price=price,
        unit=unit,
    )


class PriceSimulator:
    """The price events of history and of each round of today."""

    def __init__(self, settings: Settings) -> None:
        sim = settings.price_simulator
        self.days = history(sim.files, settings)
        conf = conf_of(settings)
        count = sim.markets or len(conf.physical_markets)
        self.markets = synthetic_markets(count, conf)  # each with its level (lags: unused)
        self.interval = sim.interval_seconds
        self.turns = -(-len(self.markets) // sim.markets_per_round)  # rounds until all reported
        self.noise = sim.noise_pct / 100
        self.tz = settings.tz
        self.panel = province_panel(sim.province_files, settings) if sim.province_files else None
        self.averages = province_averages(self.panel, conf) if self.panel else []

    def round_number(self, at: datetime) -> int:
        """The round the wall-clock time ``at`` falls in."""
        return int(at.timestamp() // self.interval)

    def day_of(self, day: date) -> list[DayPrice]:
        """The day of the files that the calendar day ``day`` plays."""
        return self.days[day_index(day.toordinal(), len(self.days))]

    def reports(self, markets: list[SyntheticMarket], at: datetime) -> list[PriceEvent]:
        """The report of each commodity by each of ``markets`` at ``at``: the level of its
        day at the market, ± at most ``noise_pct`` %."""
        events = []
        for p in self.day_of(at.astimezone(self.tz).date()):
            for m in markets:
                noise = random.Random(f"{m.market_id}|{p.commodity}|{at.isoformat()}").uniform(
                    -self.noise, self.noise
                )
                price = round(p.price * m.level * (1 + noise), 0)
                events.append(
                    simulated_price(
                        m.market_id,
                        m.province,
                        p.commodity,
                        at,
                        f"{SOURCE_PREFIX}{p.file}",
                        price,
                        p.unit,
                    )
                )
        return events

    def events(self, at: datetime) -> list[PriceEvent]:
        """The reports of ``at``'s round: the markets whose turn it is."""
        return self.reports(self.markets[self.round_number(at) % self.turns :: self.turns], at)

    def past_day(self, day: date) -> list[PriceEvent]:
        """The back-dated reports of a past ``day``: each market once, at its own time of the
        morning (07:00–10:59 local)."""
        events = []
        for m in self.markets:
            hour, minute = divmod(7 * 60 + random.Random(m.market_id).randrange(240), 60)
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)
            events.extend(self.reports([m], at))
        return sorted(events, key=lambda e: e.observed_at)

    def province_day(self, day: date) -> list[PriceEvent]:
        """The province averages of ``day``: the day of the province files it plays, each
        series once, observed at the local day's start."""
        if self.panel is None:
            return []
        prices = self.panel.prices[day_index(day.toordinal(), len(self.panel.prices))]
        at = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        events = []
        for a in self.averages:
            series = self.panel.series[a.column]
            if np.isnan(price := prices[a.column]):
                continue
            events.append(
                simulated_price(
                    a.market_id,
                    a.province,
                    series.commodity,
                    at,
                    a.source,
                    float(price),
                    series.unit,
                )
            )
        return events


def publish_events(producer: EventProducer, events: list[PriceEvent]) -> int:
    """Publish ``events`` and wait until Kafka has them; how many."""
    producer.send_all(events)
    producer.flush()
    return len(events)


def publish_round(simulator: PriceSimulator, producer: EventProducer, at: datetime) -> int:
    """Publish the prices of ``at``'s round and wait until Kafka has them; how many."""
    return publish_events(producer, simulator.events(at))


def publish_history(
    simulator: PriceSimulator, producer: EventProducer, settings: Settings, today: date
) -> int:
    """Publish the days of ``seed_plan`` (oldest first) and record the last day covered once
    Kafka has them; how many events."""
    through = read_state(settings, STATUS_NAME).get("through")
    plan = seed_plan(
        today,
        date.fromisoformat(through) if through else None,
        settings.price_simulator.seed_days,
    )
    published = 0
    for day in plan:
        events = simulator.past_day(day) + simulator.province_day(day)
        producer.send_all(events)
        published += len(events)
    producer.flush()
    _covered(settings, today - timedelta(days=1))
    if plan:
        log.info(
            "history published",
            extra={"days": len(plan), "first": plan[0], "last": plan[-1], "events": published},
        )
    return published


def _covered(settings: Settings, through: date) -> None:
    write_state(settings, STATUS_NAME, {"through": through.isoformat()})


def run(settings: Settings, stop: threading.Event) -> None:
    """Publish the missing history, then a round every ``price_simulator.interval_seconds``
    until stopped; the status kept fresh by ``run_rounds``."""
    simulator = PriceSimulator(settings)
    producer = EventProducer(settings)
    today = datetime.now(settings.tz).date()
    write_status(settings, STATUS_NAME, "running", detail="publishing the days before today")
    seeded = publish_history(simulator, producer, settings, today)
    covered = today - timedelta(days=1)
    published = 0

    def round_() -> tuple[float, dict[str, Any]]:
        nonlocal covered, published
        at = datetime.now(settings.tz).replace(microsecond=0)
        if at.date() != covered:  # a new day: its averages once, no history after a restart
            published += publish_events(producer, simulator.province_day(at.date()))
            covered = at.date()
            _covered(settings, covered)
        published += publish_round(simulator, producer, at)
        return next_round_at(simulator.interval, at.timestamp()), {
            "detail": f"{published} prices published ({seeded} of the days before first)",
            "published": published,
            "history": seeded,
        }

    try:
        run_rounds(settings, STATUS_NAME, stop, round_)
    finally:
        write_status(settings, STATUS_NAME, "stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="real price history as the markets' past and today (price_simulator settings)"
    )
    parser.parse_args(argv)
    configure_logging()
    run(load_settings(), stop_event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
