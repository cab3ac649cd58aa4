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
    read_commodities,
    read_markets,
    read_metric_ranges,
    read_provinces,
)
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
        """The regencies (kabupaten / kota) the markets are in — their ``city`` in
        ``markets.csv`` — each with its province."""
        return {m.city: m.province for m in self.physical_markets}

    @cached_property
    def _regencies_by_name(self) -> dict[str, str]:
        return {normal_form(city): city for city in self.regencies}

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

    def regency_name(self, name: str) -> str | None:
        """A regency of the markets as ``markets.csv`` writes it (``jakarta timur`` →
        ``Jakarta Timur``), or None if no market is there."""
        return self._regencies_by_name.get(normal_form(name))

    def place(self, market_id: str | None, province: str | None) -> tuple[str | None, str | None]:
        """Where a row is (a row of a market, or of a whole ``province``): its province and
        its regency (None for a province's row or a published average)."""
        market = self.markets.get(market_id or "")
        if market is None:
            return province, None
        return market.province, market.city if market.kind == "pasar" else None

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
