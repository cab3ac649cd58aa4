"""Supply-chain reference data: the supply entities of the embedded default and distances
between places (docs/supply.md).

A *place* is a regency (``lakehouse.catalog.reference.regencies``: ``PP.RR`` code of
``datasets/indonesia_regencies.csv``, its centroid and island group); an entity (warehouse,
distributor, farmer group, market) sits in one. Two places on different islands are joined by a
sea leg.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import EntityKind
from lakehouse.catalog.reference import Regency, regencies
from lakehouse.config.settings import ConfigError

EARTH_RADIUS_KM = 6371.0088
ROUTE_SEPARATOR = ">"


@dataclass(frozen=True)
class Entity:
    """A supply entity: where stock is held or goods are shipped from and to."""

    entity_id: str
    name: str
    kind: str  # EntityKind
    regency_code: str
    latitude: float
    longitude: float
    commodities: tuple[str, ...]

    @property
    def regency(self) -> Regency:
        return regencies()[self.regency_code]

    @property
    def province(self) -> str:
        return self.regency.province


def check_entity(entity: Entity, conf: Conf) -> None:
    """Raise ValueError naming what is wrong: an unknown kind, regency or commodity (of
    ``conf``), a coordinate off the globe."""
    kinds = [k.value for k in EntityKind]
    if entity.kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, not {entity.kind!r}")
    if entity.regency_code not in regencies():
        raise ValueError(
            f"unknown regency code {entity.regency_code!r} "
            "(PP.RR, datasets/indonesia_regencies.csv)"
        )
    unknown = sorted(set(entity.commodities) - set(conf.commodities))
    if not entity.commodities or unknown:
        raise ValueError(
            "commodities must be a non-empty list of commodities.yaml ids"
            + (f"; unknown: {unknown}" if unknown else "")
        )
    if not (-90 <= entity.latitude <= 90 and -180 <= entity.longitude <= 180):
        raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")


@cache
def reference_entities(conf: Conf) -> dict[str, Entity]:
    """The entities of ``supply_entities.csv`` in the configuration folder: what the registry is
    seeded with."""
    path = conf.path("supply_entities.csv")
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    except OSError as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc
    found = {}
    for r in rows:
        entity = Entity(
            entity_id=r["entity_id"],
            name=r["name"],
            kind=r["kind"],
            regency_code=r["regency_code"],
            latitude=float(r["latitude"]),
            longitude=float(r["longitude"]),
            commodities=tuple(c for c in r["commodities"].split("|") if c),
        )
        try:
            check_entity(entity, conf)
        except ValueError as exc:
            raise ConfigError(f"{path}: entity {entity.entity_id}: {exc}") from None
        found[entity.entity_id] = entity
    return found


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on the mean Earth sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def route_id(origin_regency: str, destination_regency: str) -> str:
    """The id of the route between two regencies: ``32.12>31.72``."""
    return f"{origin_regency}{ROUTE_SEPARATOR}{destination_regency}"
