"""The statistical price rules — pure numpy, no loop per price.

Run by the silver query's stateful step (``streaming_jobs.series_judge``) on a pool of prices:
the points its state holds (earlier prices that passed the hard rules) and the batch's
candidates, of one or several provinces × commodities (``_group``). Each candidate is compared
with the newest ``history_points`` prices of its market × commodity in the ``history_days``
before it (its own second excluded), so the verdict does not depend on how the stream was cut
into micro-batches:

- ``zscore`` and ``iqr`` look at the *change* of a price against the median of the series'
  previous ``RECENT`` prices, scored against the changes in that window — a trend is not an
  outlier, an abrupt jump is, and the price after a spike is not flagged for coming back;
- ``median_deviation`` compares the price level with the window's median;
- ``cross_market`` compares it with the median of the daily medians of the other markets of its
  province that day.

Percentiles interpolate linearly between the two nearest ranks, as Spark's ``percentile`` does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lakehouse.catalog.rules import PriceRules
from lakehouse.domain.validation.series_state import (
    PRICE_SERIES,
    SECONDS_PER_DAY,
    earlier_values,
    series_codes,
)
from lakehouse.domain.validation.verdicts import (
    DETAILS,
    FLAGS_MASK,
    REASONS_MASK,
    bit,
    detail_column,
)

RECENT = 3  # a price's change is measured against the median of this many previous prices
MIN_IQR = 0.005  # spread floor of the changes (0.5 %): a flat series still tolerates small moves
#: the pool a judge takes: one row per price, ``_candidate`` for the batch's own
POOL_COLUMNS = ("event_id", "_group", *PRICE_SERIES, "_sec", "_day", "price", "_candidate")
_CHUNK = 50_000  # candidates whose windows are gathered at once (memory: chunk × history_points)


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


def row_percentiles(ordered: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """:func:`percentile` of each row of ``ordered`` (ascending, its first ``counts`` values
    valid, NaN after them)."""
    position = q * (counts - 1)
    lower = np.floor(position).astype(np.int64).clip(0)
    higher = np.ceil(position).astype(np.int64).clip(0)
    rows = np.arange(len(ordered))
    low_value, high_value = ordered[rows, lower], ordered[rows, higher]
    mixed = (higher - position) * low_value + (position - lower) * high_value
    return np.where(counts == 0, np.nan, np.where(lower == higher, low_value, mixed))


def changes(series: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Each price's change against the median of the ``RECENT`` prices before it in its series
    (NaN for a series' first); rows are in series order."""
    before = earlier_values(series, prices, RECENT)
    ordered = np.sort(before, axis=1)  # NaN last
    count = RECENT - np.isnan(before).sum(axis=1)
    base = row_percentiles(ordered, count, 0.5)
    return prices / base - 1


def _window_stats(values: np.ndarray, ordered_prices: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of windows (NaN: no point): n, mean, sample standard deviation, Q1 and Q3 of the
    changes (``values``), and the median of the prices (rows already ascending)."""
    ordered = np.sort(values, axis=1)
    n = (~np.isnan(ordered)).sum(axis=1)
    total = np.nansum(ordered, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        squares = np.nansum((ordered - mean[:, None]) ** 2, axis=1)
        std = np.where(n > 1, np.sqrt(squares / (n - 1)), np.nan)
    price_n = (~np.isnan(ordered_prices)).sum(axis=1)
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "q1": row_percentiles(ordered, n, 0.25),
        "q3": row_percentiles(ordered, n, 0.75),
        "median": row_percentiles(ordered_prices, price_n, 0.5),
    }


def _windows(
    key: np.ndarray,
    values: np.ndarray,
    prices: np.ndarray,
    at: np.ndarray,
    rules: PriceRules,
) -> dict[str, np.ndarray]:
    """The window statistics of each candidate at sorted position key ``at``: the newest
    ``history_points`` of its series' points in the ``history_days`` before it."""
    width = rules.history_points
    lower = np.searchsorted(key, at - rules.history_days * SECONDS_PER_DAY, "left")
    upper = np.searchsorted(key, at - 1, "right")
    lower = np.maximum(lower, upper - width)
    parts = []
    for start in range(0, len(at), _CHUNK):
        lo, hi = lower[start : start + _CHUNK], upper[start : start + _CHUNK]
        index = hi[:, None] - width + np.arange(width)[None, :]
        inside = index >= lo[:, None]
        index = index.clip(0, max(len(key) - 1, 0))
        window_values = np.where(inside, values[index], np.nan)
        window_prices = np.sort(np.where(inside, prices[index], np.nan), axis=1)
        parts.append(_window_stats(window_values, window_prices))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _cross_markets(
    groups: np.ndarray,
    series: np.ndarray,
    days: np.ndarray,
    prices: np.ndarray,
    candidate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate, the median of the daily medians of the other series of its group on its
    day and how many series it rests on (NaN and 0 when there is none)."""
    # one number per group × day; the daily median of each series: the middle of its run
    slot = groups * (int(days.max()) - int(days.min()) + 2) + (days - int(days.min()))
    order = np.lexsort((prices, series, slot))
    at, market, price = slot[order], series[order], prices[order]
    starts = np.flatnonzero(np.r_[True, (at[1:] != at[:-1]) | (market[1:] != market[:-1])])
    sizes = np.diff(np.r_[starts, len(order)])
    low, high = starts + (sizes - 1) // 2, starts + sizes // 2
    daily_slot, daily_market = at[starts], market[starts]
    daily_median = 0.5 * (price[low] + price[high])
    median = np.full(int(candidate.sum()), np.nan)
    count = np.zeros(len(median), dtype=np.int64)
    wanted = np.stack([slot[candidate], series[candidate]], axis=1)
    pairs, which = np.unique(wanted, axis=0, return_inverse=True)
    which = which.reshape(-1)
    for i, (that_slot, that_market) in enumerate(pairs):
        start, end = np.searchsorted(daily_slot, [that_slot, that_slot + 1])
        others = daily_median[start:end][daily_market[start:end] != that_market]
        rows = which == i
        median[rows] = percentile(np.sort(others), 0.5)
        count[rows] = len(others)
    return median, count


def judge(pool: pd.DataFrame, rules: PriceRules) -> pd.DataFrame:
    """The verdicts on the candidates of a ``pool`` (columns :data:`POOL_COLUMNS`; ``_sec`` the
    observation time in epoch seconds, ``_day`` its local day number): per candidate
    ``event_id``, the flags and reasons masks and the detail columns, indexed as the candidates
    are in ``pool``."""
    secs = pool["_sec"].to_numpy(dtype=np.int64)
    event_ids = pool["event_id"].to_numpy()
    codes = series_codes(pool, PRICE_SERIES)
    order = np.lexsort((event_ids, secs, codes))
    series = codes[order]
    secs = secs[order]
    groups = pd.factorize(pool["_group"].to_numpy())[0].astype(np.int64)[order]
    prices = pool["price"].to_numpy(dtype=float)[order]
    days = pool["_day"].to_numpy(dtype=np.int64)[order]
    candidate = pool["_candidate"].to_numpy(dtype=bool)[order]
    change = changes(series, prices)
    key = series << 40 | (secs - secs.min())
    stats = _windows(key, change, prices, key[candidate], rules)
    cross, cross_n = _cross_markets(groups, series, days, prices, candidate)

    price, change = prices[candidate], change[candidate]
    enough = (stats["n"] >= rules.min_history) & ~np.isnan(change)
    spread = np.fmax(np.where(np.isnan(stats["std"]), MIN_IQR, stats["std"]), MIN_IQR)
    z = (change - stats["mean"]) / spread
    iqr = np.fmax(stats["q3"] - stats["q1"], MIN_IQR)
    low, high = stats["q1"] - rules.iqr_factor * iqr, stats["q3"] + rules.iqr_factor * iqr
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.abs(price / stats["median"] - 1)
        compared = cross_n >= rules.cross_market_min_markets
        deviation = np.where(compared, np.abs(price / cross - 1), np.nan)
    flagged = {
        "zscore": enough & (np.abs(z) > rules.zscore_max),
        "iqr": enough & ((change < low) | (change > high)),
        "median_deviation": enough & (level > rules.median_deviation_max),
        "cross_market": compared & (deviation > rules.cross_market_deviation),
    }
    flags = sum((hit.astype(np.int64) * bit(rule) for rule, hit in flagged.items()), np.int64(0))
    count = sum(hit.astype(np.int64) for hit in flagged.values())
    quarantined = (count >= rules.quarantine_min_flags) | (
        compared & (deviation > rules.cross_market_strong)
    )
    numbers = {
        "history_n": stats["n"].astype(float),
        "change": np.where(enough, change, np.nan),
        "z_score": np.where(enough, z, np.nan),
        "change_iqr_low": np.where(enough, low, np.nan),
        "change_iqr_high": np.where(enough, high, np.nan),
        "rolling_median": np.where(enough, stats["median"], np.nan),
        "cross_market_median": np.where(compared, cross, np.nan),
    }
    return pd.DataFrame(
        {
            "event_id": event_ids[order][candidate],
            FLAGS_MASK: np.broadcast_to(flags, len(price)).astype(np.int64),
            REASONS_MASK: np.where(quarantined, flags, 0).astype(np.int64),
            **{detail_column(d): numbers.get(d, np.nan) for d in DETAILS},
        },
        index=pool.index[order][candidate],
    )
