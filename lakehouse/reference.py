"""Reference data from ``conf/``: markets, the commodity catalogue and sensor metric ranges."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from lakehouse.events import Metric
from lakehouse.settings import CONF_DIR, ConfigError


@dataclass(frozen=True)
class Market:
    market_id: str
    name: str
    city: str
    province: str
    latitude: float | None
    longitude: float | None
    kind: str  # "pasar" (a physical market) or "aggregate" (a published average)


@dataclass(frozen=True)
class Commodity:
    id: str
    name: str
    unit: str
    min_price: float
    max_price: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricRange:
    unit: str
    min: float
    max: float


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc


@cache
def markets(path: Path = CONF_DIR / "markets.csv") -> dict[str, Market]:
    """Markets by id."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc
    return {
        row["market_id"]: Market(
            market_id=row["market_id"],
            name=row["name"],
            city=row["city"],
            province=row["province"],
            latitude=_optional_float(row["latitude"]),
            longitude=_optional_float(row["longitude"]),
            kind=row["kind"],
        )
        for row in rows
    }


@cache
def commodities(path: Path = CONF_DIR / "commodities.yaml") -> dict[str, Commodity]:
    """The commodity catalogue by id."""
    entries = _read_yaml(path).get("commodities", [])
    return {
        e["id"]: Commodity(
            id=e["id"],
            name=e["name"],
            unit=e["unit"],
            min_price=float(e["min_price"]),
            max_price=float(e["max_price"]),
            aliases=tuple(e.get("aliases", ())),
        )
        for e in entries
    }


def normal_form(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@cache
def _commodity_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for c in commodities().values():
        for name in (c.id, c.name, *c.aliases):
            lookup[normal_form(name)] = c.id
    return lookup


def commodity_id(name: str) -> str | None:
    """Canonical commodity id for a name as people write it (``Bawang Merah`` → ``bawang_merah``),
    or None if the catalogue does not know it."""
    return _commodity_lookup().get(normal_form(name))


@cache
def metric_ranges(path: Path = CONF_DIR / "sensors.yaml") -> dict[Metric, MetricRange]:
    """Physical range of each sensor metric."""
    entries = _read_yaml(path).get("metrics", {})
    unknown = set(entries) - {m.value for m in Metric}
    if unknown:
        raise ConfigError(f"{path}: unknown sensor metrics {sorted(unknown)}")
    return {
        Metric(k): MetricRange(unit=v["unit"], min=v["min"], max=v["max"])
        for k, v in entries.items()
    }
