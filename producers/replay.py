"""Replay of historical market data into Kafka, in event-time order, at a chosen speed.

``--speed 86400`` plays one day of history per second; ``--speed max`` as fast as Kafka takes
it. Rows that cannot become events are dead-lettered exactly as the CSV producer does (same
parser). ``--fan-out N`` turns one real series into N markets (each with its own price level and
noise, a few of them lagging by days), to simulate national-scale load from real shapes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.events import (
    NOT_REPORTED,
    DeadLetter,
    PriceEvent,
    SensorEvent,
    ShipmentEvent,
    StockEvent,
    deterministic_id,
)
from lakehouse.catalog.formats import FormatChoice
from lakehouse.catalog.reference import Market
from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer
from producers.csv_ingest import dead_letter
from producers.supply_csv import read_supply_csv, supply_kind

Event = PriceEvent | SensorEvent | StockEvent | ShipmentEvent

LEVEL_SHIFT_SD = 0.08  # spread of market price levels around the real series
NOISE_SD = 0.02  # day-to-day noise of a synthetic market
LAGGING_SHARE = 0.15  # share of synthetic markets that follow the series late
MAX_LAG_DAYS = 3


@dataclass(frozen=True)
class ReplaySummary:
    rows: int
    published: int
    dead_lettered: int
    seconds: float
    not_reported: int = 0  # of the dead-lettered: price cells that hold no price
    format: str = ""  # which format was used, and how it was chosen

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.rows} rows read, {self.published} events published, "
            f"{self.dead_lettered} dead-lettered ({self.not_reported} not reported) in "
            f"{self.seconds:.1f}s ({self.rate:,.0f} events/s); {self.format}"
        )


@dataclass(frozen=True)
class SyntheticMarket:
    market_id: str
    province: str
    level: float
    lag: timedelta


def synthetic_market(market: Market) -> SyntheticMarket:
    """``market`` with its own level and lag (the same every time: drawn from its id)."""
    rng = random.Random(market.market_id)
    lagging = rng.random() < LAGGING_SHARE
    return SyntheticMarket(
        market.market_id,
        market.province,
        level=1 + rng.gauss(0, LEVEL_SHIFT_SD),
        lag=timedelta(days=rng.randint(1, MAX_LAG_DAYS) if lagging else 0),
    )


def synthetic_markets(n: int, conf: Conf) -> list[SyntheticMarket]:
    """The first ``n`` physical markets of ``conf`` (by id), each with its own level and lag."""
    physical = conf.physical_markets
    if n > len(physical):
        raise InputError(f"--fan-out {n} is more than the {len(physical)} markets in markets.csv")
    return [synthetic_market(m) for m in physical[:n]]


def fan_out(event: PriceEvent, synthetic: list[SyntheticMarket]) -> list[PriceEvent]:
    """One copy of a real price per synthetic market; deterministic for the same input."""
    copies = []
    for m in synthetic:
        noise = random.Random(f"{event.event_id}|{m.market_id}").gauss(0, NOISE_SD)
        copies.append(
            event.model_copy(
                update={
                    "event_id": deterministic_id("fan-out", event.event_id, m.market_id),
                    "market_id": m.market_id,
                    "region": m.province,
                    "price": round(event.price * m.level * (1 + noise), 0),
                    "observed_at": event.observed_at + m.lag,
                }
            )
        )
    return copies


def replay(
    path: Path,
    settings: Settings,
    producer: EventProducer,
    speed: float | None,
    start: datetime | None = None,
    end: datetime | None = None,
    fan_out_markets: int = 0,
    choice: FormatChoice | None = None,
    fan_out_to: Sequence[str] = (),
) -> ReplaySummary:
    """Stream ``path`` into Kafka in event-time order; ``speed=None`` means as fast as possible.
    ``choice``: the file's format as the command line gives it (default: from the header). A
    stock or shipment file (``producers.supply_csv``) goes to the supply topic. A price file's
    series fan out to the first ``fan_out_markets`` markets, or to the markets ``fan_out_to``
    names."""
    if supply_kind(path):
        return _replay_supply(path, settings, producer, speed, start, end)
    conf = conf_of(settings)
    report = open_report(path, conf, choice)
    if (fan_out_markets or fan_out_to) and report.kind != "price":
        raise InputError("--fan-out applies to price files only")
    if unknown := [m for m in fan_out_to if m not in conf.markets]:
        raise InputError(f"no market {', '.join(unknown)} in markets.csv to fan out to")
    if fan_out_to:
        synthetic = [synthetic_market(conf.markets[m]) for m in fan_out_to]
    else:
        synthetic = synthetic_markets(fan_out_markets, conf) if fan_out_markets else []
    events: list[PriceEvent | SensorEvent] = []
    rows = dead_lettered = missing = 0
    for row in parse_rows(report, settings.tz):
        rows += 1
        if row.event is None:
            producer.send_dead_letter(dead_letter(row, "replay", path))
            dead_lettered += 1
            missing += row.error == NOT_REPORTED
        elif (start is None or row.event.observed_at >= start) and (
            end is None or row.event.observed_at < end
        ):
            events.extend(fan_out(row.event, synthetic) if synthetic else [row.event])
    seconds = _stream(events, producer.send, producer, speed)
    return ReplaySummary(rows, len(events), dead_lettered, seconds, missing, report.chosen)


def _stream(
    events: list[Event], send: Callable[[Any], None], producer: EventProducer, speed: float | None
) -> float:
    """Send ``events`` in event-time order, ``speed`` × real time (None: at once); the
    seconds it took."""
    events.sort(key=lambda e: e.observed_at)
    began = time.monotonic()
    with tqdm(total=len(events), unit="ev", desc="replay", disable=None) as bar:
        first = events[0].observed_at if events else None
        for i, event in enumerate(events):
            if speed is not None and first is not None:
                due = began + (event.observed_at - first).total_seconds() / speed
                while (wait := due - time.monotonic()) > 0:
                    producer.poll(min(wait, 0.1))
            send(event)
            if i % 1000 == 0:
                bar.update(i - bar.n)
        producer.flush()
        bar.update(len(events) - bar.n)
    return time.monotonic() - began


def _replay_supply(
    path: Path,
    settings: Settings,
    producer: EventProducer,
    speed: float | None,
    start: datetime | None,
    end: datetime | None,
) -> ReplaySummary:
    found = read_supply_csv(path, settings.tz, conf_of(settings))
    for line, raw, reason in found.rejected:
        producer.send_dead_letter(
            DeadLetter(origin="replay", reason=reason, raw=raw, file=str(path), line=line)
        )
    events: list[Event] = [
        e
        for e in found.events
        if (start is None or e.observed_at >= start) and (end is None or e.observed_at < end)
    ]
    seconds = _stream(events, producer.send_supply, producer, speed)
    rows = len(found.events) + len(found.rejected)
    return ReplaySummary(rows, len(events), len(found.rejected), seconds, 0, found.kind)
