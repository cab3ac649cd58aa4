"""The hard rules of a price (docs/validation.md), written once over whatever holds the terms:
Spark columns in the silver query (``streaming_jobs.silver.validate_events``), numpy arrays in
the API's price check (``lakehouse.domain.validation.price_check``). Both take ``&``, ``|``, ``~``
and the comparisons alike, and a missing number (Spark's null, numpy's NaN) compares false either
way, so the two give one verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lakehouse.catalog.rules import QualityRules


@dataclass(frozen=True)
class PriceTerms:
    """What the price rules look at, each a column (Spark) or an array (numpy) of booleans,
    numbers or times."""

    known_market: Any  # the market is in markets.csv
    known_commodity: Any  # the commodity is in the catalogue
    known_unit: Any  # the reported unit converts to the catalogue's
    price: Any  # as reported
    converted: Any  # in the catalogue's unit (missing when the unit does not convert)
    min_price: Any  # the commodity's plausible range
    max_price: Any
    observed_at: Any
    latest: Any  # now + future tolerance: later is a future timestamp
    earliest: Any  # now − retention: earlier is late


def price_rules(t: PriceTerms) -> list[tuple[str, Any]]:
    """(rule id, condition) of each hard price rule, in the order a row lists them."""
    return [
        ("unknown_market", ~t.known_market),
        ("unknown_commodity", ~t.known_commodity),
        ("unit_mismatch", t.known_commodity & ~t.known_unit),
        ("non_positive_price", t.price <= 0),
        (
            "price_out_of_range",
            (t.price > 0) & ((t.converted < t.min_price) | (t.converted > t.max_price)),
        ),
        *time_rules(t.observed_at, t.latest, t.earliest),
    ]


def time_rules(observed_at: Any, latest: Any, earliest: Any) -> list[tuple[str, Any]]:
    """``future_timestamp`` beyond the tolerance; ``late`` older than the retention. Anything in
    between is accepted, however far behind the newest event it is (backfills)."""
    return [("future_timestamp", observed_at > latest), ("late", observed_at < earliest)]


def window(rules: QualityRules) -> tuple[timedelta, timedelta]:
    """(future tolerance, retention) of the time rules, in whole seconds."""
    hard = rules.hard
    return (
        timedelta(seconds=int(hard.future_tolerance_seconds)),
        timedelta(seconds=int(timedelta(days=hard.retention_days).total_seconds())),
    )


def unit_key(unit: str, catalogue_unit: str) -> str:
    """The key of :func:`unit_factors` for a reported unit (trimmed, any case)."""
    return f"{unit.strip(' ').lower()}|{catalogue_unit}"


def unit_factors(rules: QualityRules) -> dict[str, float]:
    """What a price per ``<unit>`` is multiplied by to be per ``<catalogue unit>``, by
    ``<unit>|<catalogue unit>`` (``units`` of quality.yaml)."""
    return {
        f"{unit}|{target}": factor
        for unit, targets in rules.units.items()
        for target, factor in targets.items()
    }
