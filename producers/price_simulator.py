"""Simulated price reports: the shipped real price history replayed as today's prices.

The ``prices`` service of ``./run.sh up`` (``price_simulator`` in conf/settings.yaml) makes a
first run show a live board without any data of one's own. Every ``interval_seconds`` it takes
the next day of the real files (``datasets/prices_pihps_daily_2024_2025.csv`` by default: Bank
Indonesia's PIHPS daily series) and publishes that day's price of each commodity as a report
observed *now* by each reference market of conf/markets.csv, each market at its own price level
with a little noise (``producers.replay.fan_out``, the same spread as ``replay --fan-out``). The
days go forward to the end of the files, then back to their start, so the prices move as the real
ones did and never jump from the last day to the first. Which day comes next follows the wall
clock, so a restarted service carries on where it was.

The events are ordinary price events (source ``simulator:<file>``) on the prices topic: they pass
the same validation as any report and end in silver or quarantine like every other price.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import fmean

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import PriceEvent, deterministic_id
from lakehouse.config.errors import InputError
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.reports import open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import STALE_SECONDS, stop_event, write_status
from producers.replay import fan_out, synthetic_markets

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


def day_index(round_number: int, days: int) -> int:
    """The day of ``days`` that round ``round_number`` plays: 0, 1, …, days-1, days-2, …, 1, 0,
    1, … (forward, then back)."""
    if days <= 1:
        return 0
    period = 2 * (days - 1)
    step = round_number % period
    return step if step < days else period - step


class PriceSimulator:
    """The price events of each round: one per reference market × commodity of the day."""

    def __init__(self, settings: Settings) -> None:
        sim = settings.price_simulator
        self.days = history(sim.files, settings)
        conf = conf_of(settings)
        count = sim.markets or len(conf.physical_markets)
        self.markets = [  # reported today: none of them lags
            replace(m, lag=timedelta(0)) for m in synthetic_markets(count, conf)
        ]
        self.interval = sim.interval_seconds

    def round_number(self, at: datetime) -> int:
        """The round the wall-clock time ``at`` falls in."""
        return int(at.timestamp() // self.interval)

    def events(self, at: datetime) -> list[PriceEvent]:
        """The prices reported at ``at``: the day of its round, at every market."""
        day = self.days[day_index(self.round_number(at), len(self.days))]
        events = []
        for p in day:
            base = PriceEvent(
                event_id=deterministic_id("price-simulator", p.commodity, at.isoformat()),
                market_id="simulated",
                observed_at=at,
                source=f"{SOURCE_PREFIX}{p.file}",
                commodity=p.commodity,
                price=p.price,
                unit=p.unit,
            )
            events.extend(fan_out(base, self.markets))
        return events


def publish_round(simulator: PriceSimulator, producer: EventProducer, at: datetime) -> int:
    """Publish the prices of ``at``'s round and wait until Kafka has them; how many."""
    events = simulator.events(at)
    producer.send_all(events)
    producer.flush()
    return len(events)


def run(settings: Settings, stop: threading.Event) -> None:
    """Publish a round every ``price_simulator.interval_seconds`` until stopped; the status file
    is refreshed at least every ``STALE_SECONDS / 3`` in between."""
    simulator = PriceSimulator(settings)
    producer = EventProducer(settings)
    published = 0
    due = time.time()
    try:
        while not stop.is_set():
            if time.time() >= due:
                at = datetime.now(settings.tz).replace(microsecond=0)
                published += publish_round(simulator, producer, at)
                due = (simulator.round_number(at) + 1) * simulator.interval
            write_status(
                settings,
                STATUS_NAME,
                "running",
                detail=f"{published} prices published",
                published=published,
            )
            stop.wait(max(0.0, min(due - time.time(), STALE_SECONDS / 3)))
    finally:
        write_status(settings, STATUS_NAME, "stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="real price history replayed as today's prices (price_simulator settings)"
    )
    parser.parse_args(argv)
    configure_logging()
    run(load_settings(), stop_event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
