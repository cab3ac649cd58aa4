"""Route analysis: distance, expected transit time and expected delay of a route between two
regencies, with the delay's factors named and weighted (docs/supply.md#route-analysis).

What is a rule and what is fitted:

- rules: the distance (great-circle × ``supply.road_factor``; a sea leg of
  ``SEA_SHARE`` of it when the ends are on different islands), the transit time (road and sea
  speeds, ``port_hours`` per crossing) and each factor's *score* in [0, 1];
- fitted: each factor's hours of delay at score 1, by non-negative least squares on the
  delays of ``gold.shipments`` once there are ``MIN_FIT_SHIPMENTS`` arrived shipments; before
  that the rule hours of ``RULE_HOURS``. A factor's weight is its share of those hours (the
  weights sum to 100); the delay risk is the weighted mean of the scores (0–100).

Factors: ``rainfall`` (the month's mean rainfall at both ends, from the real monthly Open-Meteo
series of ``datasets/panel_monthly_jabar_jakarta.csv``; ``RAIN_FULL_MM`` scores 1), ``holidays``
(an Indonesian public holiday during the trip, or the two weeks before Lebaran or Nataru, via
the ``holidays`` package), ``sea_crossing`` and ``route_history`` (the route's own mean delay
in ``gold.shipments``, ``HISTORY_FULL_HOURS`` scoring 1).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse.catalog.reference import Regency, regencies
from lakehouse.config.settings import DATASETS_DIR, SupplySettings
from lakehouse.domain.supply_chain.supply import ROUTE_SEPARATOR, great_circle_km, route_id

RAINFALL_FILE = DATASETS_DIR / "panel_monthly_jabar_jakarta.csv"
#: the panel's locations at their regency (the province-wide rows are left out)
RAINFALL_PLACES = {
    "Bandung": "32.73",
    "Bekasi": "32.75",
    "Bogor": "32.71",
    "Cirebon": "32.74",
    "Depok": "32.76",
    "Jakarta Pusat": "31.71",
    "Kab. Cirebon": "32.09",
    "Kab. Tasikmalaya": "32.06",
    "Sukabumi": "32.72",
    "Tasikmalaya": "32.78",
}
SEA_SHARE = 0.5  # of the distance between ends on two islands, travelled by sea (a rule)
RAIN_FULL_MM = 400.0  # monthly rainfall scoring 1
HISTORY_FULL_HOURS = 24.0  # a route's mean delay scoring 1
PRE_FESTIVE_DAYS = 14  # the weeks before Lebaran (Idul Fitri) and Nataru (Christmas)
MIN_FIT_SHIPMENTS = 30
FACTORS = ("rainfall", "holidays", "sea_crossing", "route_history")
#: hours of delay a factor adds at score 1 before history allows a fit (rules)
RULE_HOURS = {"rainfall": 6.0, "holidays": 8.0, "sea_crossing": 12.0, "route_history": 24.0}


@cache
def rainfall_climatology(path: Path = RAINFALL_FILE) -> dict[str, dict[int, float]]:
    """Mean monthly rainfall (mm) per calendar month at each panel place's regency."""
    sums: dict[tuple[str, int], list[float]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            code = RAINFALL_PLACES.get(row["location_name"])
            if code and row["precipitation_mm"]:
                month = int(row["year_month"][5:7])
                sums.setdefault((code, month), []).append(float(row["precipitation_mm"]))
    climate: dict[str, dict[int, float]] = {}
    for (code, month), values in sums.items():
        climate.setdefault(code, {})[month] = sum(values) / len(values)
    return climate


def rainfall_mm(place: Regency, month: int) -> tuple[float, str]:
    """The month's mean rainfall at the nearest panel place and which place that is (the
    panel covers DKI Jakarta and Jawa Barat only: farther places get its monsoon pattern,
    docs/supply.md says so)."""
    climate = rainfall_climatology()
    nearest = min(
        climate,
        key=lambda code: great_circle_km(
            place.latitude, place.longitude, regencies()[code].latitude, regencies()[code].longitude
        ),
    )
    return climate[nearest][month], regencies()[nearest].name


@cache
def festive_days(years: tuple[int, ...]) -> tuple[set[date], set[date]]:
    """Indonesia's public holidays of ``years`` and the days in the ``PRE_FESTIVE_DAYS`` before
    Lebaran and Christmas (the package is loaded on first use: the API starts without it)."""
    import holidays

    calendar = holidays.country_holidays("ID", years=list(years), language="en_US")
    public = set(calendar)
    before: set[date] = set()
    for day, name in calendar.items():
        if "Eid al-Fitr" in name or "Christmas" in name:
            before |= {day - timedelta(days=d) for d in range(1, PRE_FESTIVE_DAYS + 1)}
    return public, before


def holiday_score(departure: date, days: float) -> float:
    """1 when a public holiday falls during the trip, 0.7 when it runs in the weeks before
    Lebaran or Nataru, else 0."""
    trip = {departure + timedelta(days=d) for d in range(int(days) + 1)}
    public, before = festive_days(tuple(sorted({d.year for d in trip})))
    if trip & public:
        return 1.0
    return 0.7 if trip & before else 0.0


@dataclass(frozen=True)
class Leg:
    road_km: float
    sea_km: float
    crossing: bool
    hours: float


def leg(
    origin: Regency, destination: Regency, cfg: SupplySettings, distance_km: float | None = None
) -> Leg:
    """Distance and transit time between two regencies (``distance_km`` overrides the
    great-circle × road factor)."""
    crossing = origin.island != destination.island
    total = distance_km or (
        great_circle_km(
            origin.latitude, origin.longitude, destination.latitude, destination.longitude
        )
        * cfg.road_factor
    )
    sea = total * SEA_SHARE if crossing else 0.0
    road = total - sea
    hours = (
        road / cfg.road_speed_kmh + sea / cfg.sea_speed_kmh + (cfg.port_hours if crossing else 0.0)
    )
    return Leg(road, sea, crossing, hours)


def scores(
    origin: Regency,
    destination: Regency,
    departure: date,
    crossing: bool,
    transit_hours: float,
    route_delays: Sequence[float],
) -> dict[str, float]:
    """Each factor's score in [0, 1] for one trip."""
    month = departure.month
    rain = (rainfall_mm(origin, month)[0] + rainfall_mm(destination, month)[0]) / 2
    history = sum(route_delays) / len(route_delays) if route_delays else 0.0
    return {
        "rainfall": min(rain / RAIN_FULL_MM, 1.0),
        "holidays": holiday_score(departure, transit_hours / 24),
        "sea_crossing": 1.0 if crossing else 0.0,
        "route_history": min(history / HISTORY_FULL_HOURS, 1.0),
    }


def fit_hours(samples: Sequence[tuple[dict[str, float], float]]) -> tuple[dict[str, float], bool]:
    """Hours per factor at score 1 fitted on (scores, delay hours) of past shipments — or the
    rule hours while there are fewer than ``MIN_FIT_SHIPMENTS`` or the fit explains nothing.
    Returns the hours and whether they were fitted."""
    if len(samples) < MIN_FIT_SHIPMENTS:
        return dict(RULE_HOURS), False
    from scipy.optimize import nnls

    x = np.array([[s[f] for f in FACTORS] for s, _ in samples])
    y = np.array([delay for _, delay in samples])
    coef, _ = nnls(x, y)
    if coef.sum() <= 0:
        return dict(RULE_HOURS), False
    return dict(zip(FACTORS, (float(c) for c in coef), strict=True)), True


def weights(hours: dict[str, float]) -> dict[str, float]:
    """Each factor's share of the hours, in percent (summing to 100)."""
    total = sum(hours.values())
    shares = {f: round(100 * hours[f] / total, 2) for f in FACTORS}
    shares[FACTORS[0]] = round(100 - sum(shares[f] for f in FACTORS[1:]), 2)
    return shares


def expected_delay(score: dict[str, float], hours: dict[str, float]) -> tuple[float, float]:
    """Expected delay in hours and the delay risk 0–100."""
    w = weights(hours)
    return sum(score[f] * hours[f] for f in FACTORS), sum(score[f] * w[f] for f in FACTORS)


@dataclass(frozen=True)
class PastShipment:
    """An arrived shipment of ``gold.shipments``, what the fit learns from."""

    route_id: str
    departed: date
    planned_hours: float
    delay_hours: float


def _ends(route: str) -> tuple[Regency, Regency] | None:
    origin, _, destination = route.partition(ROUTE_SEPARATOR)
    known = regencies()
    return (known[origin], known[destination]) if origin in known and destination in known else None


def training_samples(history: Sequence[PastShipment]) -> list[tuple[dict[str, float], float]]:
    """Each past shipment's factor scores — its route's history from the shipments before it —
    and its delay."""
    samples = []
    earlier: dict[str, list[float]] = {}
    for past in sorted(history, key=lambda p: p.departed):
        ends = _ends(past.route_id)
        if ends is None:
            continue
        crossing = ends[0].island != ends[1].island
        score = scores(
            *ends, past.departed, crossing, past.planned_hours, earlier.get(past.route_id, [])
        )
        samples.append((score, past.delay_hours))
        earlier.setdefault(past.route_id, []).append(past.delay_hours)
    return samples


def analyze(
    origin: Regency,
    destination: Regency,
    departure: date,
    history: Sequence[PastShipment],
    cfg: SupplySettings,
    distance_km: float | None = None,
) -> dict[str, Any]:
    """The route analysis answered by ``GET /api/v1/supply/route/analyze``."""
    route = route_id(origin.code, destination.code)
    trip = leg(origin, destination, cfg, distance_km)
    own = [p.delay_hours for p in history if p.route_id == route]
    score = scores(origin, destination, departure, trip.crossing, trip.hours, own)
    samples = training_samples(history)
    hours, fitted = fit_hours(samples)
    delay, risk = expected_delay(score, hours)
    share = weights(hours)
    month = departure.month
    details = {
        "rainfall": "mean monthly rainfall {:.0f} mm near {} and {:.0f} mm near {} "
        "(Open-Meteo, nearest panel place)".format(
            *rainfall_mm(origin, month), *rainfall_mm(destination, month)
        ),
        "holidays": "public holiday during the trip (1), the weeks before Lebaran or Nataru "
        "(0.7), none (0)",
        "sea_crossing": f"{origin.island} → {destination.island}",
        "route_history": f"{len(own)} arrived shipments on this route, mean delay "
        f"{(sum(own) / len(own)) if own else 0:.1f} h",
    }
    return {
        "route_id": route,
        "origin": _place(origin),
        "destination": _place(destination),
        "departure": departure,
        "distance_km": round(trip.road_km + trip.sea_km, 1),
        "road_km": round(trip.road_km, 1),
        "sea_km": round(trip.sea_km, 1),
        "sea_crossing": trip.crossing,
        "transit_hours": round(trip.hours, 1),
        "expected_delay_hours": round(delay, 1),
        "expected_arrival_hours": round(trip.hours + delay, 1),
        "delay_risk": round(risk, 1),
        "factors": [
            {
                "name": f,
                "score": round(score[f], 3),
                "weight": share[f],
                "hours_at_full_score": round(hours[f], 2),
                "detail": details[f],
            }
            for f in FACTORS
        ],
        "weights_fitted": fitted,
        "fitted_on_shipments": len(samples),
        "rules": [
            "distance: great-circle × road factor; a sea leg of half of it between islands",
            "transit: road and sea speeds, port hours per crossing",
            "factor scores: rainfall / 400 mm, holiday calendar, crossing, route mean delay / 24 h",
        ]
        + ([] if fitted else ["factor hours: rule defaults (too few arrived shipments to fit)"]),
    }


def _place(regency: Regency) -> dict[str, str]:
    return {
        "regency_code": regency.code,
        "regency": regency.name,
        "province": regency.province,
        "island": regency.island,
    }
