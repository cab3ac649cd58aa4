"""The verdict the pipeline would give prices now, without publishing them (``POST
/api/v1/validation/price/check``): the silver query's own rules on the same inputs.

- the hard rules: ``hard_rules.price_rules`` over pandas columns — the conditions the silver
  query evaluates over Spark columns;
- the statistical rules: ``price_judge.judge`` on a pool of the prices (candidates, judged
  together as one micro-batch would judge them) and the history the query's state would hold —
  the prices of the same provinces × commodities that passed the hard rules: those of
  ``silver.prices`` and the held ones of ``silver.holds`` (``history``, read by the caller);
- a price the statistical rules quarantine is held, with the level before the move
  (``holds.baseline_of``, as the hold records it) and the move; an accepted one is measured
  against the same level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.rules import QualityRules
from lakehouse.domain.validation import holds, price_judge
from lakehouse.domain.validation.hard_rules import (
    PriceTerms,
    price_rules,
    unit_factors,
    unit_key,
    window,
)
from lakehouse.domain.validation.verdicts import (
    DETAILS,
    FLAGS_MASK,
    REASONS_MASK,
    STAT_RULES,
    detail_column,
)

#: what a candidate price brings: the fields of a price event
PRICE_FIELDS = ("event_id", "market_id", "commodity", "price", "unit", "observed_at")
#: what the history holds of each earlier price (in the catalogue's unit)
HISTORY_FIELDS = ("event_id", "market_id", "commodity", "observed_at", "price")
Outcome = Literal["accepted", "held", "quarantined"]


@dataclass(frozen=True)
class Verdict:
    """What the pipeline would do with one price."""

    event_id: str
    verdict: Outcome
    reasons: list[str]  # why it is quarantined (hard rules) or held (statistical rules)
    flags: list[str] = field(default_factory=list)  # the statistical rules that flagged it
    price: float | None = None  # in the catalogue's unit
    unit: str | None = None
    details: dict[str, float] = field(default_factory=dict)  # the numbers behind the rules
    baseline: float | None = None  # the level it was compared with
    move: float | None = None  # price / baseline − 1


@dataclass(frozen=True)
class Window:
    """The history a set of prices needs: per province × commodity, from ``start`` to ``end``."""

    groups: list[tuple[str, str]]
    start: datetime
    end: datetime


def _group(conf: Conf, market_ids: pd.Series, commodities: pd.Series) -> pd.Series:
    """The province × commodity of each price (``silver.series_group``)."""
    provinces = market_ids.map({m.market_id: m.province for m in conf.markets.values()})
    return provinces + "|" + commodities


def history_window(prices: pd.DataFrame, conf: Conf, rules: QualityRules) -> Window:
    """What history the statistical rules of ``prices`` look at: their provinces × commodities,
    ``history_days`` before the earliest to a day after the latest (the other markets that
    day)."""
    groups = _group(conf, prices["market_id"], prices["commodity"]).dropna()
    pairs = sorted({tuple(g.split("|", 1)) for g in groups})
    start = prices["observed_at"].min() - timedelta(days=rules.prices.history_days + 1)
    end = prices["observed_at"].max() + timedelta(days=1)
    return Window(pairs, start.to_pydatetime(), end.to_pydatetime())  # type: ignore[arg-type]


def _hard(prices: pd.DataFrame, conf: Conf, rules: QualityRules, now: datetime) -> pd.DataFrame:
    """The hard reasons of each price and its price in the catalogue's unit."""
    catalogue = conf.commodities
    unit = prices["commodity"].map({c.id: c.unit for c in catalogue.values()})
    factors = unit_factors(rules)
    factor = pd.Series(
        [
            factors.get(unit_key(reported, target)) if isinstance(target, str) else None
            for reported, target in zip(prices["unit"], unit, strict=True)
        ],
        index=prices.index,
        dtype=float,
    )
    converted = prices["price"] * factor
    tolerance, retention = window(rules)
    conditions = price_rules(
        PriceTerms(
            known_market=prices["market_id"].isin(list(conf.markets)),
            known_commodity=unit.notna(),
            known_unit=factor.notna(),
            price=prices["price"],
            converted=converted,
            min_price=prices["commodity"].map({c.id: c.min_price for c in catalogue.values()}),
            max_price=prices["commodity"].map({c.id: c.max_price for c in catalogue.values()}),
            observed_at=prices["observed_at"],
            latest=pd.Timestamp(now + tolerance),
            earliest=pd.Timestamp(now - retention),
        )
    )
    reasons = [
        [rule for rule, hit in zip((r for r, _ in conditions), row, strict=True) if hit]
        for row in zip(*(c.fillna(False).to_numpy(dtype=bool) for _, c in conditions), strict=True)
    ]
    return prices.assign(
        hard_reasons=reasons, converted_price=converted.fillna(prices["price"]), catalogue_unit=unit
    )


#: longer than any local day: the prices of a candidate's local day are observed less than this
#: before or after it
DAY_SPAN = np.timedelta64(2, "D")


def _utc(times: pd.Series) -> pd.Series:
    """``pd.to_datetime(times, utc=True)``, without its look at every value when ``times`` are
    aware already (the same times, in the same unit)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_convert(UTC)
    return pd.to_datetime(times, utc=True)


def _judged_with(history: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    """Which rows of ``history`` the judge's verdicts on ``candidates`` can rest on: those of a
    candidate's series (its window, and the prices before them its changes are measured from)
    and those observed within ``DAY_SPAN`` of a candidate (the other markets of its province that
    day). The verdicts are the same without the others: a smaller pool costs less to judge."""
    pairs = set(zip(candidates["market_id"], candidates["commodity"], strict=True))
    markets = history["market_id"].to_numpy()
    commodities = history["commodity"].to_numpy()
    near = np.flatnonzero(history["market_id"].isin({m for m, _ in pairs}).to_numpy())
    series = np.zeros(len(history), dtype=bool)
    series[near] = [pair in pairs for pair in zip(markets[near], commodities[near], strict=True)]
    at = _utc(history["observed_at"]).to_numpy(dtype="datetime64[ns]")
    times = np.sort(candidates["observed_at"].to_numpy(dtype="datetime64[ns]"))
    after = np.searchsorted(times, at)
    nearest = np.minimum(
        np.abs(at - times[np.maximum(after - 1, 0)]),
        np.abs(times[np.minimum(after, len(times) - 1)] - at),
    )
    return series | (nearest < DAY_SPAN)


def _pool(
    candidates: pd.DataFrame, history: pd.DataFrame, conf: Conf, tz: ZoneInfo
) -> pd.DataFrame:
    """The candidates (first) and the history the judge needs of their provinces × commodities
    (``_judged_with``; the rows of an event agree on its market, commodity and time, so its
    first is the one kept as before), as the judge takes them (``price_judge.POOL_COLUMNS``)."""
    history = history[_judged_with(history, candidates)]
    earlier = history[~history["event_id"].isin(candidates["event_id"])].drop_duplicates("event_id")
    rows = pd.concat(
        [
            candidates[["event_id", "market_id", "commodity", "observed_at"]].assign(
                price=candidates["converted_price"], _candidate=True
            ),
            earlier[list(HISTORY_FIELDS)].assign(_candidate=False),
        ],
        ignore_index=True,
    )
    at = _utc(rows["observed_at"])
    local_day = at.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    pool = rows.assign(
        _group=_group(conf, rows["market_id"], rows["commodity"]),
        _sec=at.astype("int64") // 10**9,
        _day=(local_day - pd.Timestamp("1970-01-01")).dt.days,
    )
    groups = set(pool.loc[pool["_candidate"], "_group"])
    return pool[pool["_group"].isin(groups)].reset_index(drop=True)


def _rules_of(mask: int) -> list[str]:
    return [rule for i, rule in enumerate(STAT_RULES) if mask & (1 << i)]


def check(
    prices: pd.DataFrame,
    history: pd.DataFrame,
    conf: Conf,
    rules: QualityRules,
    now: datetime,
    tz: ZoneInfo,
) -> list[Verdict]:
    """The verdict on each of ``prices`` (columns ``PRICE_FIELDS``, ``observed_at`` aware), in
    their order, given the ``history`` (columns ``HISTORY_FIELDS``) of ``history_window``."""
    hard = _hard(prices.reset_index(drop=True), conf, rules, now)
    passed = hard[hard["hard_reasons"].map(len) == 0]
    judged = pd.DataFrame()
    if len(passed):
        pool = _pool(passed, history, conf, tz)
        verdicts = price_judge.judge(pool[list(price_judge.POOL_COLUMNS)], rules.prices)
        candidates = pool[pool["_candidate"]]
        judged = candidates.join(verdicts.drop(columns="event_id")).set_index("event_id")
        baseline = holds.baseline_of(judged)
        judged = judged.assign(baseline=baseline, move=judged["price"] / baseline - 1)
    out = []
    for row in hard.itertuples(index=False):
        if row.hard_reasons:
            out.append(Verdict(row.event_id, "quarantined", row.hard_reasons))
            continue
        j = judged.loc[row.event_id]
        details = {
            d: float(j[detail_column(d)])
            for d in DETAILS
            if detail_column(d) in j and not np.isnan(j[detail_column(d)])
        }
        reasons = _rules_of(int(j[REASONS_MASK]))
        out.append(
            Verdict(
                row.event_id,
                "held" if reasons else "accepted",
                reasons,
                flags=_rules_of(int(j[FLAGS_MASK])),
                price=float(row.converted_price),
                unit=row.catalogue_unit,
                details=details,
                baseline=None if pd.isna(j["baseline"]) else float(j["baseline"]),
                move=None if pd.isna(j["move"]) else float(j["move"]),
            )
        )
    return out
