"""Table registry: every Delta table of the lakehouse, its layer, location and meaning.

A table lives at ``<lakehouse_root>/<layer>/<name>``; its streaming checkpoint (if a query
writes it) at ``<checkpoint_root>/<layer>/<name>``. Code never builds these paths by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lakehouse.settings import Settings


class Layer(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"


@dataclass(frozen=True)
class Table:
    layer: Layer
    name: str
    description: str
    partition_by: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    def path(self, settings: Settings) -> Path:
        return settings.paths.lakehouse_root / self.layer / self.name

    def checkpoint(self, settings: Settings) -> Path:
        return settings.paths.checkpoint_root / self.layer / self.name


BRONZE_EVENTS = Table(
    Layer.bronze,
    "market_events",
    "Raw Kafka records of every topic, untouched: value as text plus topic, partition, offset, "
    "Kafka timestamp and ingest time.",
    partition_by=("ingest_date",),
)

TABLES: dict[str, Table] = {t.qualified_name: t for t in (BRONZE_EVENTS,)}
