"""A simulated supply chain (docs/supply.md#simulation): the registry's warehouses, distributors
and markets hold stock that consumption draws down every day and shipments from farmer groups
and warehouses refill, along the real regency pairs of the entities. A shipment's transit time
is the route model's (``lakehouse.domain.supply_chain.supply_routes``) and its delay follows the
same factors — the month's rainfall at both ends, holidays and the weeks before Lebaran and Nataru,
a sea crossing — with noise. Deterministic for a seed: the tests run on it.

The ``supply`` service of ``./run.sh up`` (``supply_simulator`` in conf/settings.yaml) runs the
simulation from ``history_days`` before the stack's first day (``producers.state.first_day``)
and publishes every ``interval_seconds`` the reports whose time has come — at the first start
the whole history at once, then each evening's stock reports and shipments as they happen. The
time up to which it published is recorded in ``<data_dir>/supply.json``, so a restart carries on
without publishing anything twice (and the event ids are deterministic: silver keeps one copy).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lakehouse.catalog.events import ShipmentEvent, StockEvent
from lakehouse.config.settings import Settings
from lakehouse.domain.supply_chain.supply import Entity
from lakehouse.domain.supply_chain.supply_registry import open_supply_registry
from lakehouse.domain.supply_chain.supply_routes import RULE_HOURS, leg, scores
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import run_rounds, serve
from producers.state import first_day, read_state, write_state

SOURCE = "supply-simulator"
STATUS_NAME = "supply"
HOLDERS = ("warehouse", "distributor", "market")
SENDERS = ("farmer_group", "warehouse")
#: days of consumption a holder starts with, and what a shipment brings
START_COVER_DAYS = (8.0, 14.0)
SHIPMENT_DAYS = (6.0, 9.0)
#: a holder orders when its stock covers fewer days than this: well above the stock_cover_low
#: alert (conf/alerts.yaml), so that only a late or lost shipment takes it there
REORDER_COVER_DAYS = 7.0
DAILY_USE = {"warehouse": 40_000.0, "distributor": 8_000.0, "market": 1_500.0}


@dataclass
class _Shipment:
    event: ShipmentEvent
    arrives: datetime


def simulate(
    entities: list[Entity], settings: Settings, start: datetime, days: int, seed: int = 7
) -> Iterator[StockEvent | ShipmentEvent]:
    """Events of ``days`` days from ``start``: a stock report per holder × commodity each
    evening, a shipment report when one departs and when it arrives (shipments still on the
    road at the end stay in transit)."""
    rng = random.Random(seed)
    holders = [e for e in entities if e.kind in HOLDERS]
    senders = [e for e in entities if e.kind in SENDERS]
    stock = {
        (h.entity_id, c): DAILY_USE[h.kind] * rng.uniform(*START_COVER_DAYS)
        for h in holders
        for c in h.commodities
    }
    in_transit: list[_Shipment] = []
    number = 0
    for day in range(days):
        evening = start + timedelta(days=day, hours=11)  # 18:00 in Jakarta
        # arrivals of the day refill their destination
        for shipment in [s for s in in_transit if s.arrives <= evening]:
            in_transit.remove(shipment)
            e = shipment.event
            stock[(e.destination_id, e.commodity)] += e.quantity
            arrived = e.model_copy(
                update={
                    "arrived_at": shipment.arrives,
                    "observed_at": shipment.arrives,
                    "event_id": ShipmentEvent.report_id(e.shipment_id, shipment.arrives),
                }
            )
            yield arrived
        for holder in holders:
            for commodity in holder.commodities:
                key = (holder.entity_id, commodity)
                use = DAILY_USE[holder.kind] * rng.uniform(0.7, 1.3)
                stock[key] = max(stock[key] - use, 0.0)
                at = evening + timedelta(minutes=rng.randint(0, 50))
                yield StockEvent(
                    event_id=StockEvent.report_id(holder.entity_id, commodity, at),
                    entity_id=holder.entity_id,
                    commodity=commodity,
                    quantity=round(stock[key], 1),
                    observed_at=at,
                    source=SOURCE,
                )
                if stock[key] < DAILY_USE[holder.kind] * REORDER_COVER_DAYS and not any(
                    s.event.destination_id == holder.entity_id and s.event.commodity == commodity
                    for s in in_transit
                ):
                    origin = _sender(senders, holder, commodity, rng)
                    if origin is not None:
                        number += 1
                        shipment = _ship(origin, holder, commodity, evening, number, settings, rng)
                        in_transit.append(shipment)
                        yield shipment.event


def _sender(senders: list[Entity], to: Entity, commodity: str, rng: random.Random) -> Entity | None:
    able = [s for s in senders if commodity in s.commodities and s.entity_id != to.entity_id]
    return rng.choice(able) if able else None


def _ship(
    origin: Entity,
    destination: Entity,
    commodity: str,
    at: datetime,
    number: int,
    settings: Settings,
    rng: random.Random,
) -> _Shipment:
    route = leg(origin.regency, destination.regency, settings.supply)
    departed = at + timedelta(hours=1)
    planned = timedelta(hours=route.hours)
    factor = scores(
        origin.regency, destination.regency, departed.date(), route.crossing, route.hours, []
    )
    delay_hours = sum(factor[f] * RULE_HOURS[f] for f in factor) * rng.uniform(-0.6, 1.6)
    quantity = DAILY_USE[destination.kind] * rng.uniform(*SHIPMENT_DAYS)
    shipment_id = f"SIM-{at:%Y%m%d}-{number:04d}"
    event = ShipmentEvent(
        event_id=ShipmentEvent.report_id(shipment_id, departed),
        shipment_id=shipment_id,
        commodity=commodity,
        quantity=round(quantity, 1),
        origin_id=origin.entity_id,
        destination_id=destination.entity_id,
        departed_at=departed,
        expected_at=departed + planned,
        observed_at=departed,
        source=SOURCE,
    )
    arrives = departed + planned + timedelta(hours=max(delay_hours, -1.0))
    return _Shipment(event, arrives.astimezone(UTC))


def due_events(
    entities: list[Entity], settings: Settings, first: date, after: datetime | None, now: datetime
) -> list[StockEvent | ShipmentEvent]:
    """The simulation's reports observed after ``after`` (None: from its start) up to ``now``,
    in time order; the simulation starts ``supply_simulator.history_days`` before ``first``
    (its days begin at 00:00 UTC: the stock reports come at 18:00 in Jakarta). It runs a day
    past ``now``: a day yields the arrivals since the evening before, some of them before
    ``now``."""
    sim = settings.supply_simulator
    start_day = first - timedelta(days=sim.history_days)
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
    days = (now.astimezone(UTC).date() - start_day).days + 2
    due = [
        e
        for e in simulate(entities, settings, start, days, sim.seed)
        if (after is None or e.observed_at > after) and e.observed_at <= now
    ]
    return sorted(due, key=lambda e: e.observed_at)


def run(settings: Settings, stop: threading.Event) -> None:
    """Publish the reports now due every ``supply_simulator.interval_seconds`` until stopped;
    the status kept fresh by ``run_rounds``."""
    producer = EventProducer(settings)
    entities = open_supply_registry(settings).entities()
    first = first_day(settings, datetime.now(settings.tz).date())
    recorded = read_state(settings, STATUS_NAME).get("through")
    through = datetime.fromisoformat(recorded) if recorded else None
    published = 0

    def round_() -> tuple[float, dict[str, Any]]:
        nonlocal through, published
        now = datetime.now(UTC).replace(microsecond=0)
        events = due_events(entities, settings, first, through, now)
        for event in events:
            producer.send_supply(event)
        producer.flush()
        through = now
        write_state(settings, STATUS_NAME, {"through": now.isoformat()})
        published += len(events)
        return time.time() + settings.supply_simulator.interval_seconds, {
            "detail": f"{published} stock and shipment reports of {len(entities)} entities"
            " published",
            "published": published,
        }

    run_rounds(settings, STATUS_NAME, stop, round_)


if __name__ == "__main__":
    sys.exit(serve(STATUS_NAME, run))
