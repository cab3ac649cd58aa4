"""The configuration folder (``paths.conf_dir``, ``conf/`` by default): the reference data, the
validation and alert rules and the price-file formats, each read and checked once, on first use.

``conf_of(settings)`` is the one way in: every component takes the ``Conf`` of its settings, so
pointing ``SMARTMARKET_PATHS__CONF_DIR`` at a copy of ``conf/`` moves all of it together.
``settings.yaml`` itself is found first (``SMARTMARKET_CONFIG``, or ``settings.yaml`` of the
project's ``conf/``) and may name another folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from lakehouse.catalog.alert_rules import AlertRules
from lakehouse.catalog.events import Metric
from lakehouse.catalog.formats import PriceFormat, read_formats
from lakehouse.catalog.reference import (
    Commodity,
    Market,
    MetricRange,
    Province,
    commodity_lookup,
    normal_form,
    province_lookup,
    province_market_id,
    read_commodities,
    read_markets,
    read_metric_ranges,
    read_provinces,
)
from lakehouse.catalog.reference import regencies as official_regencies
from lakehouse.catalog.rules import QualityRules
from lakehouse.config.settings import Settings, yaml_model


@dataclass(frozen=True)
class Conf:
    """What one configuration folder holds (its files are named once, here)."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    @cached_property
    def provinces(self) -> dict[str, Province]:
        """Indonesia's provinces by BPS code (``provinces.csv``)."""
        return read_provinces(self.path("provinces.csv"))

    @cached_property
    def markets(self) -> dict[str, Market]:
        """Markets by id (``markets.csv`` and one aggregate per province)."""
        return read_markets(self.path("markets.csv"), self.provinces)

    @cached_property
    def physical_markets(self) -> list[Market]:
        """The markets that are places (kind ``pasar``, not published averages), by id."""
        return sorted(
            (m for m in self.markets.values() if m.kind == "pasar"), key=lambda m: m.market_id
        )

    @cached_property
    def regencies(self) -> dict[str, str]:
        """Indonesia's regencies and cities (kabupaten / kota) by official code (``PP.RR``),
        each with its province as events and tables name it."""
        return {
            r.code: p.name
            for r in official_regencies().values()
            if (p := self.provinces.get(r.province_code))
        }

    @cached_property
    def regency_markets(self) -> dict[str, frozenset[str]]:
        """The ids of the markets of each regency (by code) that has any."""
        found: dict[str, set[str]] = {}
        for m in self.markets.values():
            if m.regency_code:
                found.setdefault(m.regency_code, set()).add(m.market_id)
        return {code: frozenset(ids) for code, ids in found.items()}

    @cached_property
    def commodities(self) -> dict[str, Commodity]:
        """The commodity catalogue by id (``commodities.yaml``)."""
        return read_commodities(self.path("commodities.yaml"))

    @cached_property
    def metric_ranges(self) -> dict[Metric, MetricRange]:
        """The physical range of each sensor metric (``sensors.yaml``)."""
        return read_metric_ranges(self.path("sensors.yaml"))

    @cached_property
    def quality(self) -> QualityRules:
        """Silver's validation thresholds (``quality.yaml``)."""
        return yaml_model(self.path("quality.yaml"), QualityRules, "rules")

    @cached_property
    def alerts(self) -> AlertRules:
        """The early-warning rules (``alerts.yaml``)."""
        return yaml_model(self.path("alerts.yaml"), AlertRules, "alert rules")

    @cached_property
    def formats(self) -> dict[str, PriceFormat]:
        """The named price-file formats (``formats/*.yaml``) by name."""
        return read_formats(self.path("formats"))

    @cached_property
    def _provinces_by_name(self) -> dict[str, str]:
        return province_lookup(self.provinces)

    @cached_property
    def _commodities_by_name(self) -> dict[str, str]:
        return commodity_lookup(self.path("commodities.yaml"), self.commodities)

    def province_name(self, name: str) -> str | None:
        """The province's name as events and tables use it, from its name, an alias or its BPS
        code (``Daerah Khusus Ibukota Jakarta``, ``jakarta`` and ``31`` → ``DKI Jakarta``);
        ``Indonesia`` for the nation; None if unknown."""
        return self._provinces_by_name.get(normal_form(name))

    @cached_property
    def _province_markets(self) -> dict[str, str]:
        return {p.name: province_market_id(p) for p in self.provinces.values()}

    def market_id(self, name: str) -> str:
        """The market a report's ``market_id`` cell names: a market id as written, or — when it
        names a province instead (name, alias or BPS code) — that province's aggregate market
        (``Jawa Barat`` → ``PROV-32``), so a file of province averages maps its province column
        to ``market_id``. Anything else is returned as written (validation judges it)."""
        text = name.strip()
        if text in self.markets:
            return text
        return self._province_markets.get(self.province_name(text) or "", text)

    @cached_property
    def _regencies_by_name(self) -> dict[str, str]:
        found = {
            normal_form(n): r.code for r in official_regencies().values() for n in (r.code, r.name)
        }
        cities: dict[str, set[str]] = {}  # the city as markets.csv writes it (``Bogor``)
        for m in self.markets.values():
            if m.regency_code:
                cities.setdefault(normal_form(m.city), set()).add(m.regency_code)
        for city, codes in cities.items():
            if len(codes) == 1:  # not a city the markets of two regencies give
                found.setdefault(city, next(iter(codes)))
        return found

    def regency_code(self, name: str) -> str | None:
        """The official code (``PP.RR``) of a regency or city from its code, its official name
        or the ``city`` its markets have in ``markets.csv`` (``32.71``, ``Kota Bogor``,
        ``bogor``); None if unknown."""
        return self._regencies_by_name.get(normal_form(name))

    def place(self, market_id: str | None, province: str | None) -> tuple[str | None, str | None]:
        """Where a row is (a row of a market, or of a whole ``province``): its province and
        its regency's code (None for a province's row or a province's or the nation's
        published average)."""
        market = self.markets.get(market_id or "")
        if market is None:
            return province, None
        return market.province, market.regency_code

    def commodity_id(self, name: str) -> str | None:
        """Canonical commodity id for a name as people write it (``Bawang Merah`` →
        ``bawang_merah``), or None if the catalogue does not know it."""
        return self._commodities_by_name.get(normal_form(name))


@cache
def conf_at(folder: Path) -> Conf:
    """The ``Conf`` of ``folder`` (one per folder and process, so each file is read once)."""
    return Conf(folder)


def conf_of(settings: Settings) -> Conf:
    """The configuration folder of ``settings``."""
    return conf_at(settings.paths.conf_dir)
