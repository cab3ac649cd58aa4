"""Reference data of the configuration folder (``paths.conf_dir``, read through
``lakehouse.catalog.conf.Conf``): Indonesia's provinces, markets, the commodity catalogue and
sensor metric ranges; and the country's regencies (``datasets/indonesia_regencies.csv``).

Markets are the rows of ``conf/markets.csv`` (physical markets and city averages: add a row to add
one), each in its regency (``regency_code``, ``PP.RR``), plus one aggregate market per province,
``PROV-<BPS code>`` (e.g. ``PROV-32`` for Jawa Barat): the reporting point of province-level
series such as PIHPS's province averages (kind ``aggregate``, no regency); the national aggregate
is ``PIHPS-AGG``. Prices roll up market → regency → province → nation.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from lakehouse.catalog.events import Metric
from lakehouse.config.settings import DATASETS_DIR, ConfigError
from lakehouse.config.yaml_text import parse_yaml

NATIONAL = "Indonesia"  # the region of national aggregates
PROVINCE_MARKET_PREFIX = "PROV-"
REGENCIES_FILE = DATASETS_DIR / "indonesia_regencies.csv"

#: island group of each province (BPS code): the provinces of one group are joined by road,
#: two groups by sea. Sumatra, Java, Kalimantan, Sulawesi and Papua by their first digit; the
#: island provinces on their own.
_ISLAND_BY_PREFIX = {
    "1": "Sumatera",
    "3": "Jawa",
    "6": "Kalimantan",
    "7": "Sulawesi",
    "8": "Maluku",
    "9": "Papua",
}
_ISLAND_PROVINCES = {
    "19": "Bangka Belitung",
    "21": "Kepulauan Riau",
    "51": "Bali",
    "52": "Nusa Tenggara Barat",
    "53": "Nusa Tenggara Timur",
    "81": "Maluku",
    "82": "Maluku Utara",
}


def island_of(province_code: str) -> str:
    """The island group of a province (``"32"`` → ``"Jawa"``)."""
    if province_code in _ISLAND_PROVINCES:
        return _ISLAND_PROVINCES[province_code]
    if province_code[:1] in _ISLAND_BY_PREFIX:
        return _ISLAND_BY_PREFIX[province_code[:1]]
    raise ValueError(f"unknown province code {province_code!r}")


@dataclass(frozen=True)
class Regency:
    code: str  # PP.RR
    name: str
    kind: str  # kabupaten (a regency) or kota (a city)
    province_code: str
    province: str  # as the file names it (``Daerah Khusus Ibukota Jakarta``)
    latitude: float
    longitude: float

    @property
    def island(self) -> str:
        return island_of(self.province_code)


@cache
def regencies(path: Path = REGENCIES_FILE) -> dict[str, Regency]:
    """Indonesia's 514 regencies and cities by code (the province as the file names it)."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc
    return {
        r["regency_code"]: Regency(
            code=r["regency_code"],
            name=r["regency"],
            kind=r["kind"],
            province_code=r["province_code"],
            province=r["province"],
            latitude=float(r["latitude"]),
            longitude=float(r["longitude"]),
        )
        for r in rows
    }


@dataclass(frozen=True)
class Province:
    code: str  # BPS / Kemendagri two-digit code
    name: str
    latitude: float
    longitude: float
    aliases: tuple[str, ...] = ()
    formed_from: str | None = None  # code of the province it was split from (Papua, 2022)


@dataclass(frozen=True)
class Market:
    market_id: str
    name: str
    city: str
    province: str
    latitude: float | None
    longitude: float | None
    kind: str  # "pasar" (a physical market) or "aggregate" (a published average)
    regency_code: str | None = None  # PP.RR of its regency; None for a province or the nation
    name_en: str = ""  # English name; empty: the one name (a market's own name is not translated)

    def location(self, language: str) -> str:
        """Where the market is, as a message names it in ``language`` (``id``, ``en``): a market
        with its province ("Pasar Gede Hardjonagoro, Jawa Tengah"); a published average by its
        name alone, which says where ("Rata-rata Provinsi Bali", "Bali province average")."""
        name = (self.name_en or self.name) if language == "en" else self.name
        return name if self.kind == "aggregate" else f"{name}, {self.province}"


@dataclass(frozen=True)
class Commodity:
    id: str
    name: str
    unit: str
    min_price: float
    max_price: float
    aliases: tuple[str, ...] = ()
    name_en: str = ""  # English name; empty: the Indonesian one

    def label(self, language: str) -> str:
        """The name people read: Indonesian (``id``) or English (``en``)."""
        return (self.name_en or self.name) if language == "en" else self.name


@dataclass(frozen=True)
class MetricRange:
    unit: str
    min: float
    max: float


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _read_yaml(path: Path) -> dict:
    try:
        return parse_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a reference CSV; lines starting with ``#`` are comments."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(line for line in fh if not line.startswith("#")))
    except OSError as exc:
        raise ConfigError(f"cannot read reference data {path}: {exc}") from exc


def read_provinces(path: Path) -> dict[str, Province]:
    """Indonesia's provinces by BPS code, from ``provinces.csv``."""
    return {
        row["code"]: Province(
            code=row["code"],
            name=row["name"],
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
            aliases=tuple(a for a in row["aliases"].split("|") if a.strip()),
            formed_from=row.get("formed_from") or None,
        )
        for row in _read_csv(path)
    }


def province_lookup(provinces: dict[str, Province]) -> dict[str, str]:
    """Province names by the normal form of each name, alias and BPS code (and the nation's)."""
    lookup = {normal_form(NATIONAL): NATIONAL}
    for p in provinces.values():
        for name in (p.code, p.name, *p.aliases):
            lookup[normal_form(name)] = p.name
    return lookup


def province_market_id(province: Province) -> str:
    """The id of a province's aggregate market, its province-level series (``PROV-32``)."""
    return f"{PROVINCE_MARKET_PREFIX}{province.code}"


def successor_markets(provinces: Mapping[str, Province]) -> dict[str, str]:
    """The aggregate market of each province formed from another (``formed_from``: the four
    Papua provinces of 2022) → that of the province it was formed from (``provinces`` by code):
    where no source publishes a series of the new province, its parent's stands in for it."""
    return {
        province_market_id(p): province_market_id(provinces[p.formed_from])
        for p in provinces.values()
        if p.formed_from in provinces
    }


def _province_markets(provinces: dict[str, Province]) -> dict[str, Market]:
    return {
        province_market_id(p): Market(
            market_id=province_market_id(p),
            name=f"Rata-rata Provinsi {p.name}",
            name_en=f"{p.name} province average",
            city=p.name,
            province=p.name,
            latitude=p.latitude,
            longitude=p.longitude,
            kind="aggregate",
        )
        for p in provinces.values()
    }


def _regency_of(
    path: Path, row: dict[str, str], province: str, provinces: dict[str, Province]
) -> str | None:
    """The regency code of a markets.csv row, checked: a regency of ``province``; None if the
    row names none."""
    code = (row.get("regency_code") or "").strip()
    if not code:
        return None
    regency = regencies().get(code)
    if regency is None or provinces[regency.province_code].name != province:
        raise ConfigError(
            f"{path}: market {row['market_id']}: regency_code {code!r} is not a regency of "
            f"{province} (PP.RR of {REGENCIES_FILE.name})"
        )
    return code


def read_markets(path: Path, provinces: dict[str, Province]) -> dict[str, Market]:
    """Markets by id: one aggregate per province, then the rows of ``markets.csv`` (which win),
    each in its province and regency (checked against ``provinces`` and ``regencies()``)."""
    found = _province_markets(provinces)
    lookup = province_lookup(provinces)
    for row in _read_csv(path):
        province = lookup.get(normal_form(row["province"]))
        if province is None:
            raise ConfigError(
                f"{path}: market {row['market_id']} is in province {row['province']!r}, which is "
                f"not in provinces.csv (use a name, an alias or the BPS code)"
            )
        found[row["market_id"]] = Market(
            market_id=row["market_id"],
            name=row["name"],
            city=row["city"],
            province=province,
            latitude=_optional_float(row["latitude"]),
            longitude=_optional_float(row["longitude"]),
            kind=row["kind"],
            regency_code=None
            if province == NATIONAL
            else _regency_of(path, row, province, provinces),
        )
    return found


def read_commodities(path: Path) -> dict[str, Commodity]:
    """The commodity catalogue by id, from ``commodities.yaml``."""
    entries = _read_yaml(path).get("commodities", [])
    return {
        e["id"]: Commodity(
            id=e["id"],
            name=e["name"],
            unit=e["unit"],
            min_price=float(e["min_price"]),
            max_price=float(e["max_price"]),
            aliases=tuple(e.get("aliases", ())),
            name_en=e.get("en", ""),
        )
        for e in entries
    }


def normal_form(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def commodity_lookup(path: Path, commodities: dict[str, Commodity]) -> dict[str, str]:
    """Commodity ids by the normal form of each id, name and alias; a name given to two
    commodities in ``path`` is a ConfigError."""
    lookup: dict[str, str] = {}
    for c in commodities.values():
        for name in (c.id, c.name, *c.aliases):
            key = normal_form(name)
            if lookup.setdefault(key, c.id) != c.id:
                raise ConfigError(f"{path}: {name!r} names both {lookup[key]} and {c.id}")
    return lookup


def read_metric_ranges(path: Path) -> dict[Metric, MetricRange]:
    """Physical range of each sensor metric, from ``sensors.yaml``."""
    entries = _read_yaml(path).get("metrics", {})
    unknown = set(entries) - {m.value for m in Metric}
    if unknown:
        raise ConfigError(f"{path}: unknown sensor metrics {sorted(unknown)}")
    return {
        Metric(k): MetricRange(unit=v["unit"], min=v["min"], max=v["max"])
        for k, v in entries.items()
    }
