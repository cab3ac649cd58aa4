"""The statistical price rules on one province × commodity — pure pandas, run by Spark once per
group (``groupBy(region, commodity).applyInPandas`` in
:func:`streaming_jobs.silver.price_statistics`).

One pass over a group replaces the windows, range join and aggregates the rules would take as
Spark operators (each a shuffle and a stage): a micro-batch's judging costs one shuffle, and on
a cluster the groups spread over the executors. The rules and their thresholds are described in
:mod:`streaming_jobs.silver`; percentiles interpolate linearly between the two nearest ranks,
as Spark's ``percentile`` does.

A group's frame holds the series' history and the candidates (``_candidate``), with
``observed_at`` as epoch seconds (``_sec``) and as a local day number (``_day``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from lakehouse.rules import PriceRules

RECENT = 3  # a price's change is measured against the median of this many previous prices
MIN_IQR = 0.005  # spread floor of the changes (0.5 %): a flat series still tolerates small moves
VERDICT_SCHEMA = (
    "event_id string, stat_flags array<string>, stat_reasons array<string>, "
    "details map<string,double>"
)


def percentile(ordered: np.ndarray, q: float) -> float:
    """Spark's ``percentile`` of ascending ``ordered`` values (NaN when there is none)."""
    n = len(ordered)
    if n == 0:
        return math.nan
    position = q * (n - 1)
    lower, higher = math.floor(position), math.ceil(position)
    if lower == higher:
        return float(ordered[lower])
    return float((higher - position) * ordered[lower] + (position - lower) * ordered[higher])


def _changes(series: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Each price's change against the median of the ``RECENT`` prices before it in its series
    (NaN for a series' first); rows are in series order."""
    before = np.full((len(prices), RECENT), math.nan)
    for back in range(1, RECENT + 1):
        same = np.zeros(len(prices), dtype=bool)
        same[back:] = series[back:] == series[:-back]
        before[back:, back - 1] = np.where(same[back:], prices[:-back], math.nan)
    ordered = np.sort(before, axis=1)  # NaN last
    count = RECENT - np.isnan(before).sum(axis=1)
    # the median of 1, 2 or 3 values, interpolated as :func:`percentile` does
    base = np.select(
        [count == 1, count == 2, count == 3],
        [ordered[:, 0], 0.5 * ordered[:, 0] + 0.5 * ordered[:, 1], ordered[:, 1]],
        math.nan,
    )
    return prices / base - 1


def _window_stats(changes: np.ndarray, prices: np.ndarray) -> tuple[float, ...]:
    """n, mean, sample standard deviation, Q1, Q3 of the ``changes`` (NaN skipped) of a
    window, and the median of its ``prices``."""
    window = np.sort(changes[~np.isnan(changes)])
    n = len(window)
    return (
        n,
        float(window.mean()) if n else math.nan,
        float(window.std(ddof=1)) if n > 1 else math.nan,
        percentile(window, 0.25),
        percentile(window, 0.75),
        percentile(np.sort(prices), 0.5),
    )


def _cross_markets(
    markets: np.ndarray,
    days: np.ndarray,
    prices: np.ndarray,
    wanted: Iterable[tuple[str, int]],
) -> dict[tuple[str, int], tuple[float, int]]:
    """Per ``wanted`` market × day, the median of the other markets' daily medians that day
    and how many markets it rests on."""
    daily: dict[int, dict[str, float]] = {}
    frame = pd.DataFrame({"market": markets, "day": days, "price": prices})
    for (day, market), rows in frame.groupby(["day", "market"], sort=False)["price"]:
        daily.setdefault(day, {})[market] = percentile(np.sort(rows.to_numpy()), 0.5)
    out = {}
    for market, day in set(wanted):
        others = np.sort([v for m, v in daily[day].items() if m != market])
        if len(others):
            out[(market, day)] = (percentile(others, 0.5), len(others))
    return out


def judge(group: pd.DataFrame, rules: PriceRules) -> pd.DataFrame:
    """The verdicts (:data:`VERDICT_SCHEMA`) on the candidates of one province × commodity."""
    group = group.sort_values(["market_id", "_sec", "event_id"], kind="stable")
    markets = group["market_id"].to_numpy()
    series = pd.factorize(markets)[0].astype(np.int64)
    secs = group["_sec"].to_numpy(dtype=np.int64)
    prices = group["price"].to_numpy(dtype=float)
    days = group["_day"].to_numpy()
    changes = _changes(series, prices)
    candidate = group["_candidate"].to_numpy(dtype=bool)
    # each candidate's window: its series' points in the history_days before it (its own
    # second excluded), found by binary search on (series, time)
    key = series << 40 | (secs - secs.min())
    at = key[candidate]
    bounds = np.stack(
        [
            np.searchsorted(key, at - rules.history_days * 86400, "left"),
            np.searchsorted(key, at - 1, "right"),
        ],
        axis=1,
    )
    windows, which = np.unique(bounds, axis=0, return_inverse=True)
    stats = np.array([_window_stats(changes[lo:hi], prices[lo:hi]) for lo, hi in windows])
    stats = stats.reshape(-1, 6)[which.reshape(-1)]
    cross = (
        _cross_markets(markets, days, prices, zip(markets[candidate], days[candidate], strict=True))
        if group["region"].notna().all()
        else {}
    )
    verdicts = [
        _verdict(event_id, price, change, row_stats, cross.get((market, day)), rules)
        for event_id, price, change, row_stats, market, day in zip(
            group["event_id"].to_numpy()[candidate],
            prices[candidate],
            changes[candidate],
            stats,
            markets[candidate],
            days[candidate],
            strict=True,
        )
    ]
    return pd.DataFrame(verdicts, columns=["event_id", "stat_flags", "stat_reasons", "details"])


def _verdict(
    event_id: str,
    price: float,
    change: float,
    stats: np.ndarray,
    cross: tuple[float, int] | None,
    rules: PriceRules,
) -> tuple[str, list[str], list[str], dict[str, float]]:
    n, mean, std, q1, q3, median = stats
    enough = n >= rules.min_history and not math.isnan(change)
    details = {"history_n": float(n)}
    flags = []
    if enough:
        spread = MIN_IQR if math.isnan(std) else max(std, MIN_IQR)
        z = (change - mean) / spread
        iqr = max(q3 - q1, MIN_IQR)
        low, high = q1 - rules.iqr_factor * iqr, q3 + rules.iqr_factor * iqr
        details |= {
            "change": change,
            "z_score": z,
            "change_iqr_low": low,
            "change_iqr_high": high,
            "rolling_median": median,
        }
        if abs(z) > rules.zscore_max:
            flags.append("zscore")
        if change < low or change > high:
            flags.append("iqr")
        if abs(price / median - 1) > rules.median_deviation_max:
            flags.append("median_deviation")
    strong = False
    if cross is not None and cross[1] >= rules.cross_market_min_markets:
        details["cross_market_median"] = cross[0]
        deviation = abs(price / cross[0] - 1)
        if deviation > rules.cross_market_deviation:
            flags.append("cross_market")
        strong = deviation > rules.cross_market_strong
    quarantined = len(flags) >= rules.quarantine_min_flags or strong
    return event_id, flags, flags if quarantined else [], details
