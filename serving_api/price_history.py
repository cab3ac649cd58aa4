"""The history the price check judges prices against (``lakehouse.domain.validation.price_check``):
the prices of a window's provinces × commodities that passed the hard rules — accepted
(``silver.prices``) or held (``silver.holds``) — as ``price_check.HISTORY_FIELDS``.

The API keeps the recent part of both tables in memory, as a view of the gold cache
(``PRICE_HISTORY``, followed like every view: a look for new commits at most every
``api.cache_check_ms``, the view moved forward in a worker thread while requests keep the
previous one):

- ``silver.prices`` (append-only, partitioned by local ``observed_date``): its build reads the
  partitions from ``kept_from`` on — ``history_days`` and the window's day
  (``price_check.history_window``) and a day of margin before today — and each new commit's
  rows are added as it lands;
- ``silver.holds`` (small, MERGEd in place: a new hold is inserted, a decision changes its
  status): read whole at build, then the rows each MERGE rewrote, the newest row of an event
  replacing the older;
- rows observed before the kept time are dropped as it moves on.

A window inside what memory holds is answered from it (``RecentHistory.rows``, each frame indexed
by series: ``SeriesIndex``); one reaching further back — a back-dated price — is read from the
tables with delta-rs (``read_history``), as every window was before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.tables import SILVER_HOLDS, SILVER_PRICES
from lakehouse.config.settings import Settings
from lakehouse.domain.validation.price_check import HISTORY_FIELDS, Window
from lakehouse.io.fast_read import Condition, TableMissing, sql_strings
from lakehouse.io.lake import Lakehouse
from serving_api.cache import Read, Tables, ViewSpec

#: days kept before the window the newest prices need: a price observed up to this long before
#: now is still checked from memory
MARGIN_DAYS = 1


def window_bounds(window: Window) -> tuple[datetime, datetime]:
    """The window's first and last times in UTC, to the whole second (as ``read_history``'s
    SQL compares them): a price observed between them, both included, is in the window."""
    start, end = (at.astimezone(UTC).replace(microsecond=0) for at in (window.start, window.end))
    return start, end


def _markets(conf: Conf, province: str) -> list[str]:
    return [m.market_id for m in conf.markets.values() if m.province == province]


def read_history(lake: Lakehouse, conf: Conf, window: Window) -> pd.DataFrame:
    """The history of ``window`` read from ``silver.prices`` and ``silver.holds`` with delta-rs
    (a table not written yet holds none)."""
    series = [
        f"(t.commodity = {sql_strings([commodity])}"
        f" AND t.market_id IN ({sql_strings(_markets(conf, province))}))"
        for province, commodity in window.groups
    ]
    if not series:
        return _frame(pa.table({}))
    bounds = window_bounds(window)
    start, end = (at.strftime("%Y-%m-%d %H:%M:%S") for at in bounds)
    first, last = (at.astimezone(lake.settings.tz).date() for at in bounds)
    where = (
        f"t.observed_at BETWEEN TIMESTAMP '{start}' AND TIMESTAMP '{end}'"
        f" AND ({' OR '.join(series)})"
    )
    frames = []
    for table, extra in (
        (SILVER_PRICES, f" AND t.observed_date BETWEEN DATE '{first}' AND DATE '{last}'"),
        (SILVER_HOLDS, ""),
    ):
        try:
            frames.append(lake[table].where(where + extra))
        except TableMissing:
            continue
    return _frame(*frames)


def _frame(*tables: pa.Table) -> pd.DataFrame:
    """The ``HISTORY_FIELDS`` of the rows of ``tables``, one after the other, as a frame with
    UTC times (a table read with no row may have no column)."""
    parts = [t.select(list(HISTORY_FIELDS)).to_pandas() for t in tables if t.num_rows]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_FIELDS}).astype(
            {"observed_at": "datetime64[us, UTC]", "price": float}
        )
    rows = pd.concat(parts, ignore_index=True)
    return rows.assign(observed_at=pd.to_datetime(rows["observed_at"], utc=True))


def kept_from(settings: Settings) -> date:
    """The first local day memory keeps: the window of a price observed now reaches
    ``history_days`` and a day back (``price_check.history_window``), and ``MARGIN_DAYS`` more
    keep that of a price observed up to then too."""
    days = conf_of(settings).quality.prices.history_days + 1 + MARGIN_DAYS
    return (datetime.now(settings.tz) - timedelta(days=days)).date()


def _kept_since(settings: Settings) -> datetime:
    return datetime.combine(kept_from(settings), time(), settings.tz).astimezone(UTC)


def _from_kept_days(settings: Settings) -> list[Condition]:
    return [("observed_date", ">=", kept_from(settings))]


@dataclass(frozen=True)
class SeriesIndex:
    """The rows of a frame of ``HISTORY_FIELDS`` by series (market × commodity), so that a
    window's rows are found without a look at the others."""

    markets: dict[str, int]  # a market's number
    commodities: dict[str, int]  # a commodity's number
    order: (
        np.ndarray
    )  # the frame's positions, series after series (code = commodity × markets + market)
    starts: (
        np.ndarray
    )  # per series code, where its positions begin in ``order`` (one more at the end)
    observed_at: np.ndarray  # per position, its time (UTC, tz-naive ``datetime64``)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> SeriesIndex:
        """The index of ``frame`` (a row without a market or commodity in no series)."""
        market, markets = pd.factorize(frame["market_id"].to_numpy())
        commodity, commodities = pd.factorize(frame["commodity"].to_numpy())
        code = np.where(
            (market < 0) | (commodity < 0), -1, commodity.astype(np.int64) * len(markets) + market
        )
        order = np.argsort(code, kind="stable")
        starts = np.searchsorted(code[order], np.arange(len(markets) * len(commodities) + 1))
        return cls(
            {m: i for i, m in enumerate(markets)},
            {c: i for i, c in enumerate(commodities)},
            order,
            starts,
            frame["observed_at"].dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(),
        )

    def positions(self, series: set[tuple[str, str]], start: datetime, end: datetime) -> np.ndarray:
        """The positions, ascending, of the rows of ``series`` (market, commodity) observed from
        ``start`` to ``end`` (UTC, both included)."""
        codes = np.array(
            [
                self.commodities[c] * len(self.markets) + self.markets[m]
                for m, c in series
                if m in self.markets and c in self.commodities
            ],
            dtype=np.int64,
        )
        first, sizes = self.starts[codes], self.starts[codes + 1] - self.starts[codes]
        # the runs first … first + size − 1 of ``order``, one after the other
        offsets = np.repeat(first - (np.cumsum(sizes) - sizes), sizes)
        rows = self.order[offsets + np.arange(int(sizes.sum()))]
        at = self.observed_at[rows]
        bounds = (np.datetime64(t.astimezone(UTC).replace(tzinfo=None), "us") for t in (start, end))
        low, high = bounds
        return np.sort(rows[(at >= low) & (at <= high)])


@dataclass(frozen=True)
class RecentHistory:
    """The accepted and held prices observed since ``since`` (every one of them), as
    ``HISTORY_FIELDS``, each frame indexed by series when the view is made (in the worker
    thread that moves it forward, not in a request)."""

    since: datetime
    prices: pd.DataFrame
    holds: pd.DataFrame  # one row per event: its newest
    indexes: tuple[SeriesIndex, SeriesIndex] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        indexes = (SeriesIndex.of(self.prices), SeriesIndex.of(self.holds))
        object.__setattr__(self, "indexes", indexes)

    def covers(self, window: Window) -> bool:
        """Whether memory holds every price of ``window``."""
        return window_bounds(window)[0] >= self.since

    def rows(self, window: Window, conf: Conf) -> pd.DataFrame:
        """The history of ``window`` (which memory ``covers``), as ``read_history`` reads it:
        the accepted prices, then the held ones."""
        start, end = window_bounds(window)
        series = {(m, c) for province, c in window.groups for m in _markets(conf, province)}
        parts = [
            frame.take(index.positions(series, start, end))
            for frame, index in zip((self.prices, self.holds), self.indexes, strict=True)
        ]
        return pd.concat(parts, ignore_index=True)

    def trimmed(self, since: datetime) -> RecentHistory:
        """Without the prices observed before ``since`` (when it is later than ``self.since``)."""
        if since <= self.since:
            return self
        return RecentHistory(since, _since(self.prices, since), _since(self.holds, since))


def _since(rows: pd.DataFrame, since: datetime) -> pd.DataFrame:
    return rows[rows["observed_at"] >= since].reset_index(drop=True)


def build_history(settings: Settings, tables: Tables) -> RecentHistory:
    """Memory from ``silver.prices``' kept partitions and ``silver.holds``."""
    since = _kept_since(settings)
    prices, holds = (_frame(tables[t.qualified_name]) for t in (SILVER_PRICES, SILVER_HOLDS))
    return RecentHistory(since, _since(prices, since), _since(holds, since))


def update_history(settings: Settings, view: RecentHistory, added: Tables) -> RecentHistory:
    """``view`` with the prices silver's new commits appended and the holds the MERGEs of
    ``silver.holds`` rewrote (an event's newest row replacing its older one), without the prices
    observed before the kept days."""
    prices = pd.concat(
        [view.prices, _frame(added[SILVER_PRICES.qualified_name])], ignore_index=True
    )
    holds = pd.concat([view.holds, _frame(added[SILVER_HOLDS.qualified_name])], ignore_index=True)
    holds = holds.drop_duplicates("event_id", keep="last").reset_index(drop=True)
    return RecentHistory(view.since, prices, holds).trimmed(_kept_since(settings))


PRICE_HISTORY = ViewSpec(
    "price_history",
    (SILVER_PRICES, SILVER_HOLDS),
    build_history,
    update_history,
    reads={
        SILVER_PRICES.qualified_name: Read(HISTORY_FIELDS, filters=_from_kept_days),
        SILVER_HOLDS.qualified_name: Read(HISTORY_FIELDS),
    },
)


def price_history(
    lake: Lakehouse, conf: Conf, recent: RecentHistory, window: Window
) -> pd.DataFrame:
    """The history of ``window``: from memory when it holds the whole window, else read."""
    if recent.covers(window):
        return recent.rows(window, conf)
    return read_history(lake, conf, window)
