"""Prepared views of the gold tables: pure builders (Arrow tables → in-memory structures, built
once per Delta version by ``serving_api.cache``) and the lookups a request makes on them.

Nothing here sees a request: filters arrive validated, so no user input reaches a query engine.
"""

from __future__ import annotations

import base64
import binascii
import statistics
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.reference import NATIONAL, regencies
from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_ANOMALIES,
    GOLD_DATA_QUALITY_DAILY,
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_HOURLY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    SILVER_PRICES,
)
from lakehouse.config.settings import Settings
from lakehouse.domain.metrics import REFERENCE_DAYS, median_close_before
from serving_api.cache import Read, Tables, ViewSpec
from serving_api.models import FORECAST_HEADER_FIELDS, FORECAST_POINT_FIELDS

Granularity = Literal["day", "hour"]
SeriesKey = tuple[str, str, str]  # commodity, market_id, region ("" when null)
EPOCH = datetime(1970, 1, 1)
_PRICE_COLUMNS = ("open", "high", "low", "close", "mean")


def encode(payload: Any) -> bytes:
    """JSON bytes of a response body (orjson: datetimes as ISO-8601, non-str keys allowed)."""
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)


def encode_kept(payload: Any) -> bytes:
    """``encode``, copied into bytes of its own size: for JSON a view keeps. orjson returns its
    output in the buffer it wrote it in, at least 4 KiB and rounded up to a power of two
    (orjson 3.12 on): ten to twenty times the JSON of a live item or a market."""
    return bytes(memoryview(encode(payload)))


def _rows(table: pa.Table, sort: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return table.sort_by(sort).to_pylist() if table.num_rows else []


# ---- price history ------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryIndex:
    """OHLC rows sorted by (commodity, market_id, region, period), as numpy columns, with the
    row range of each series. ``period`` is days since 1970-01-01 (day) or microseconds since
    1970-01-01 of the naive local hour (hour)."""

    granularity: Granularity
    tz: ZoneInfo
    keys: list[SeriesKey]
    bounds: list[tuple[int, int]]
    period: np.ndarray
    columns: dict[str, np.ndarray]
    #: positions in ``keys`` of each commodity, market and region (to skip the other series)
    positions: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, key in enumerate(self.keys):
            for part, name in enumerate(key):
                self.positions.setdefault((part, name), []).append(i)

    def candidates(self, query: HistoryQuery) -> list[int]:
        """Positions of the series that may match ``query`` (the narrowest list at hand)."""
        lists = [
            self.positions.get((part, name), [])
            for part, name in enumerate((query.commodity, query.market_id, query.region))
            if name is not None
        ]
        return min(lists, key=len) if lists else list(range(len(self.keys)))

    def series(self, key: SeriesKey) -> tuple[int, int] | None:
        i = bisect_left(self.keys, key)
        return self.bounds[i] if i < len(self.keys) and self.keys[i] == key else None

    def to_period(self, day: date) -> int:
        """The first period of a local day."""
        days = (day - EPOCH.date()).days
        return days if self.granularity == "day" else days * 86_400_000_000

    def label(self, periods: np.ndarray) -> list[str]:
        if self.granularity == "day":
            return np.datetime_as_string(periods.astype("datetime64[D]")).tolist()
        return [
            (EPOCH + timedelta(microseconds=p)).replace(tzinfo=self.tz).isoformat()
            for p in periods.tolist()
        ]


def build_history(settings: Settings, tables: Tables, granularity: Granularity) -> HistoryIndex:
    source = GOLD_PRICE_DAILY if granularity == "day" else GOLD_PRICE_HOURLY
    table = tables[source.qualified_name]
    period_column = "date" if granularity == "day" else "hour"
    if table.num_rows == 0:
        empty = np.empty(0, dtype=np.int64)
        return HistoryIndex(
            granularity, settings.tz, [], [], empty, {c: empty for c in (*_PRICE_COLUMNS, "count")}
        )
    table = table.set_column(
        table.schema.get_field_index("region"), "region", pc.fill_null(table["region"], "")
    ).sort_by([(c, "ascending") for c in ("commodity", "market_id", "region", period_column)])
    unit = pa.int32() if granularity == "day" else pa.int64()
    period = table[period_column].cast(unit).to_numpy().astype(np.int64)
    key_columns = [
        table[c].to_numpy(zero_copy_only=False) for c in ("commodity", "market_id", "region")
    ]
    changed = np.zeros(table.num_rows, dtype=bool)
    changed[0] = True
    for column in key_columns:
        changed[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(changed).tolist()
    ends = [*starts[1:], table.num_rows]
    keys = [tuple(str(c[s]) for c in key_columns) for s in starts]
    columns = {c: table[c].to_numpy() for c in _PRICE_COLUMNS}
    columns["count"] = table["count"].to_numpy()
    return HistoryIndex(
        granularity,
        settings.tz,
        keys,  # type: ignore[arg-type]
        list(zip(starts, ends, strict=True)),
        period,
        columns,
    )


@dataclass(frozen=True)
class HistoryQuery:
    """A validated history request; ``fingerprint`` ties a cursor to the query that made it."""

    granularity: Granularity
    commodity: str | None = None
    market_id: str | None = None
    region: str | None = None
    start: date | None = None
    end: date | None = None

    @property
    def fingerprint(self) -> list[str | None]:
        return [
            self.granularity,
            self.commodity,
            self.market_id,
            self.region,
            self.start and self.start.isoformat(),
            self.end and self.end.isoformat(),
        ]

    def matches(self, key: SeriesKey) -> bool:
        commodity, market_id, region = key
        return (
            (self.commodity is None or commodity == self.commodity)
            and (self.market_id is None or market_id == self.market_id)
            and (self.region is None or region == self.region)
        )


class CursorError(ValueError):
    """A cursor this API did not issue for this query."""


def encode_cursor(query: HistoryQuery, key: SeriesKey, period: int) -> str:
    raw = encode({"q": query.fingerprint, "k": list(key), "p": period})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: HistoryQuery, cursor: str) -> tuple[SeriesKey, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key, period, fingerprint = tuple(data["k"]), int(data["p"]), data["q"]
        if len(key) != 3 or not all(isinstance(k, str) for k in key):
            raise TypeError
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CursorError("cursor is not one this API issued: pass next_cursor as is") from None
    if fingerprint != query.fingerprint:
        raise CursorError(
            "cursor belongs to another query: keep the other parameters the same while paging"
        )
    return key, period  # type: ignore[return-value]


def history_page(
    index: HistoryIndex, query: HistoryQuery, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of the series matching ``query``, in (commodity, market, region, period)
    order, after ``cursor`` (keyset pagination: no gaps or repeats while new rows land)."""
    after = decode_cursor(query, cursor) if cursor else None
    first = index.to_period(query.start) if query.start else None
    last = index.to_period(query.end + timedelta(days=1)) if query.end else None
    picked: list[tuple[SeriesKey, int, int]] = []  # (series, from row, to row)
    wanted = limit + 1  # one more than a page tells whether another page follows
    candidates = index.candidates(query)
    if after:
        first_key = bisect_left(index.keys, after[0])
        candidates = candidates[bisect_left(candidates, first_key) :]
    for position in candidates:
        key, (a, b) = index.keys[position], index.bounds[position]
        if not query.matches(key):
            continue
        periods = index.period[a:b]
        lo = a + int(np.searchsorted(periods, first, "left")) if first is not None else a
        hi = a + int(np.searchsorted(periods, last, "left")) if last is not None else b
        if after and key == after[0]:
            lo = max(lo, a + int(np.searchsorted(periods, after[1], "right")))
        if lo < hi:
            picked.append((key, lo, min(hi, lo + wanted)))
            wanted -= picked[-1][2] - lo
            if wanted <= 0:
                break
    items: list[dict[str, Any]] = []
    names = ("period", *index.columns)
    for (commodity, market_id, region), lo, hi in picked:
        values = [index.label(index.period[lo:hi])]
        values += [column[lo:hi].tolist() for column in index.columns.values()]
        series = {"market_id": market_id, "commodity": commodity, "region": region or None}
        items += [series | dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        key, row = _last_of_page(picked, limit)
        next_cursor = encode_cursor(query, key, int(index.period[row]))
    return {"granularity": index.granularity, "items": items, "next_cursor": next_cursor}


def _last_of_page(picked: list[tuple[SeriesKey, int, int]], limit: int) -> tuple[SeriesKey, int]:
    """The series and row of the ``limit``-th picked row."""
    remaining = limit
    for key, lo, hi in picked:
        if remaining <= hi - lo:
            return key, lo + remaining - 1
        remaining -= hi - lo
    raise AssertionError("page shorter than its limit")


# ---- live prices ----------------------------------------------------------------------------


LATEST_FIELDS = (
    "market_id",
    "commodity",
    "region",
    "price",
    "unit",
    "observed_at",
    "event_id",
    "source",
    "flags",
)
RECENT_CLOSES = 2 * REFERENCE_DAYS  # daily closes the live view keeps per series
CLOSE_COLUMNS = ("commodity", "market_id", "region", "date", "close")  # of gold.price_daily
#: rows turned into Python objects in one go: between two, the worker thread that prepares a
#: view lets the event loop have the interpreter (one go holds it throughout)
ROWS_AT_ONCE = 2048
SERIES_CODES = 2**31  # series numbers of newest_closes beyond which they are renumbered
LatestKey = tuple[str, str]  # market_id, commodity
LiveFilter = tuple[str | None, str | None, str | None]  # commodity, region, market_id (None: any)
Closes = dict[SeriesKey, dict[date, float]]


@dataclass(frozen=True)
class LiveQuery:
    """A /prices/live query, checked: the filters (None: any), the markets of the regency asked
    for (None: any) and the page (``limit`` None: every item from ``offset`` on)."""

    commodity: str | None = None
    region: str | None = None
    market_id: str | None = None
    markets: frozenset[str] | None = None
    offset: int = 0
    limit: int | None = None


def window(offset: int, limit: int | None) -> slice:
    """The items of a page: ``limit`` (None: all) from ``offset`` on."""
    return slice(offset, None if limit is None else offset + limit)


def json_list(encoded: list[bytes]) -> bytes:
    """The JSON list of items already encoded."""
    return b"[" + b",".join(encoded) + b"]"


def _served_order(key: LatestKey) -> tuple[str, str]:
    """Items are served by commodity, then market."""
    return key[1], key[0]


def prepared(wanted: LiveFilter) -> bool:
    """Whether the live view keeps the JSON list of the items of filter ``wanted``: one of no
    market (a market's filters match at most its commodities' items)."""
    return wanted[2] is None


def _filters(item: dict[str, Any]) -> set[LiveFilter]:
    """Every filter that matches ``item``: each part either its value or any."""
    return {
        (commodity, region, market_id)
        for commodity in (None, item["commodity"])
        for region in (None, item["region"])
        for market_id in (None, item["market_id"])
    }


@dataclass(frozen=True)
class LiveView:
    """The newest price per market × commodity with its changes against the previous close and
    the 7-day median, and the encoded answer of every filter of no market that matches an item.

    Built once from the tables, then moved forward with the rows each commit adds
    (``update_live``): a refresh costs what changed, not the size of the history — only the
    items whose inputs changed are described and encoded again, only the answers holding them
    joined again. Everything is prepared where the view is built (a worker thread), so an
    answer costs a request one dict lookup — or, for a filter naming a market (at most its
    commodities' items), the join of its items' JSON: prepared, those answers would keep four
    more copies of every item (``prepared``)."""

    tz: ZoneInfo
    latest: dict[LatestKey, dict[str, Any]]  # the newest price of each series (LATEST_FIELDS)
    closes: Closes  # the newest daily closes of each series
    items: dict[LatestKey, dict[str, Any]]  # the rows as served
    encoded: dict[LatestKey, bytes]  # each item's JSON
    members: dict[LiveFilter, list[LatestKey]]  # the items each filter matches, in served order
    answers: dict[LiveFilter, bytes]  # the JSON list of each ``prepared`` filter's items
    newest: float | None  # POSIX time of the newest observation

    def answer(self, commodity: str | None, region: str | None, market_id: str | None) -> bytes:
        """The JSON list of the items matching the filters (None: any), in served order."""
        wanted = (commodity, region, market_id)
        if prepared(wanted):
            return self.answers.get(wanted, b"[]")
        return json_list([self.encoded[k] for k in self.members.get(wanted, ())])

    def page(self, query: LiveQuery) -> tuple[bytes, int]:
        """The JSON list of ``query``'s page of items, in served order, and how many items
        match in all. The whole list of three filters is prepared (a dict lookup); a regency's
        or a page is joined from the prepared items (a pass over the filters' items)."""
        wanted = (query.commodity, query.region, query.market_id)
        keys = self.members.get(wanted, [])
        if query.markets is None and query.offset == 0 and query.limit is None:
            return self.answer(*wanted), len(keys)
        if query.markets is not None:
            keys = [k for k in keys if k[0] in query.markets]
        page = keys[window(query.offset, query.limit)]
        return json_list([self.encoded[k] for k in page]), len(keys)

    def matching(self, commodity: str | None) -> list[dict[str, Any]]:
        """The items of ``commodity`` (None: all), in served order."""
        return [self.items[k] for k in self.members.get((commodity, None, None), ())]

    def describe(self, price: dict[str, Any]) -> dict[str, Any]:
        """A price (a row of gold.price_latest or silver.prices) as /prices/live serves it."""
        return _describe(self.tz, self.closes, price)


def _describe(tz: ZoneInfo, closes: Closes, price: dict[str, Any]) -> dict[str, Any]:
    r = {k: price.get(k) for k in LATEST_FIELDS}
    local = r["observed_at"].astimezone(tz)
    today = local.date()
    series = closes.get((r["commodity"], r["market_id"], r["region"] or ""), {})
    before = sorted(d for d in series if d < today)
    previous = series[before[-1]] if before else None
    median = median_close_before(series, today)
    change = None if previous is None else r["price"] - previous
    return {
        **r,
        "observed_at": local,
        "flags": list(r["flags"] or []),
        "previous_close": previous,
        "change_previous_day": change,
        "change_previous_day_pct": _pct(change, previous),
        "median_7d": median,
        "change_median_7d_pct": _pct(None if median is None else r["price"] - median, median),
    }


def _pct(change: float | None, base: float | None) -> float | None:
    return None if change is None or not base else round(100 * change / base, 2)


def _live(
    tz: ZoneInfo,
    latest: dict[LatestKey, dict[str, Any]],
    closes: Closes,
    before: LiveView | None,
    touched: set[LatestKey],
) -> LiveView:
    """The view of ``latest`` and ``closes``: ``before``'s items, answers and newest time, with
    the ``touched`` series described, encoded and joined into their answers again (the
    structures of ``before`` are copied where they change, never changed: it keeps
    answering meanwhile)."""
    items = dict(before.items) if before else {}
    encoded = dict(before.encoded) if before else {}
    members = dict(before.members) if before else {}
    answers = dict(before.answers) if before else {}
    newest = before.newest if before else None
    joined: set[LiveFilter] = set()  # the answers to join again
    added: dict[LiveFilter, list[LatestKey]] = defaultdict(list)
    removed: dict[LiveFilter, set[LatestKey]] = defaultdict(set)
    for key in touched & latest.keys():
        old, new = items.get(key), _describe(tz, closes, latest[key])
        items[key], encoded[key] = new, encode_kept(new)
        was, now = _filters(old) if old else set(), _filters(new)
        for f in now - was:
            added[f].append(key)
        for f in was - now:  # the price moved to another region
            removed[f].add(key)
        joined |= was | now
        at = latest[key]["observed_at"].timestamp()
        newest = at if newest is None else max(newest, at)
    for f in joined:
        if added[f] or removed[f]:  # else the same items, some of them new
            keys = [k for k in members.get(f, ()) if k not in removed[f]] + added[f]
            members[f] = sorted(keys, key=_served_order)
        if not members[f]:
            del members[f]
            answers.pop(f, None)
        elif prepared(f):
            answers[f] = json_list([encoded[k] for k in members[f]])
    return LiveView(tz, latest, closes, items, encoded, members, answers, newest)


MapLevel = Literal["province", "regency"]


def _place(code: str, name: str, province: str, lat: float, lon: float) -> dict[str, Any]:
    return {"code": code, "name": name, "province": province, "lat": lat, "lon": lon}


def region_prices(items: list[dict[str, Any]], conf: Conf, level: MapLevel) -> dict[str, Any]:
    """The figure of each province or regency for one commodity's live items: ``median`` of its
    markets' newest prices, and — a province — ``average``, its own published average (its
    aggregate market ``PROV-<code>``); ``price`` is that average where there is one, else the
    median. ``national_median`` is the median of the regions' prices (the map's reference)."""
    prices: dict[str, list[float]] = defaultdict(list)
    averages: dict[str, float] = {}
    for r in items:
        market = conf.markets.get(r["market_id"])
        if market is None or market.province == NATIONAL:
            continue
        if market.kind != "pasar":
            if level == "province" and market.regency_code is None:
                averages[market.province] = r["price"]
            continue
        key = market.province if level == "province" else market.regency_code
        if key:
            prices[key].append(r["price"])
    if level == "province":
        places = {
            p.name: _place(p.code, p.name, p.name, p.latitude, p.longitude)
            for p in conf.provinces.values()
        }
    else:
        names = {p.code: p.name for p in conf.provinces.values()}
        places = {
            g.code: _place(g.code, g.name, names[g.province_code], g.latitude, g.longitude)
            for g in regencies().values()
        }
    regions = []
    for key in sorted(prices.keys() | averages.keys(), key=lambda k: places[k]["code"]):
        median = statistics.median(prices[key]) if prices[key] else None
        average = averages.get(key)
        price = average if average is not None else median
        regions.append(
            places[key]
            | {"markets": len(prices[key]), "median": median, "average": average, "price": price}
        )
    national = [r["price"] for r in regions]
    return {
        "level": level,
        "national_median": statistics.median(national) if national else None,
        "items": regions,
    }


def newest_per_series(rows: pa.Table) -> pa.Table:
    """The newest row of each market × commodity in ``rows`` (of equal times, the later row),
    by Arrow's compute kernels: a commit of many prices becomes at most one Python row per
    series, whatever its size."""
    if rows.num_rows < 2:
        return rows
    keys = [("market_id", "ascending"), ("commodity", "ascending")]
    ordered = rows.take(pc.sort_indices(rows, [*keys, ("observed_at", "ascending")]))
    market, commodity = (ordered[k].combine_chunks() for k, _ in keys)
    differs = pc.or_(
        pc.not_equal(market[1:], market[:-1]), pc.not_equal(commodity[1:], commodity[:-1])
    )
    return ordered.filter(pa.concat_arrays([differs, pa.array([True])]))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Integer codes of a string column's values, equal for equal values (0 for null), and how
    many codes there are: the indices of a dictionary-encoded column as they are."""
    array = column.combine_chunks()  # one dictionary for all chunks
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    codes = pc.fill_null(array.indices, -1).to_numpy().astype(np.int64) + 1
    return codes, len(array.dictionary) + 1


def newest_closes(rows: pa.Table, days: int = RECENT_CLOSES) -> pa.Table:
    """The rows of ``rows`` (of gold.price_daily) the live view can keep: of each series'
    newest ``days`` days, the last row of the day — by Arrow's kernels and numpy, so a MERGE
    that adds back a whole file of history becomes at most ``days`` Python rows per series."""
    if rows.num_rows < 2:
        return rows
    series, size = np.zeros(rows.num_rows, dtype=np.int64), 1
    for name in ("commodity", "market_id", "region"):
        codes, count = _codes(rows[name])
        series, size = series * count + codes, size * count
        if size > SERIES_CODES:  # numbered densely again, to leave room for the days below
            series = np.unique(series, return_inverse=True)[1]
            size = int(series.max()) + 1
    day = rows["date"].cast(pa.int32()).to_numpy().astype(np.int64)
    day -= day.min()
    # by series, day and position (a stable sort): the last row of a day is the last of its run
    order = np.argsort(series * (int(day.max()) + 1) + day, kind="stable")
    series, day = series[order], day[order]
    last_of_day = np.ones(len(order), dtype=bool)
    last_of_day[:-1] = (series[1:] != series[:-1]) | (day[1:] != day[:-1])
    order, series = order[last_of_day], series[last_of_day]
    # how many later days of the same series follow each day
    position = np.arange(len(order))
    last_of_series = np.ones(len(order), dtype=bool)
    last_of_series[:-1] = series[1:] != series[:-1]
    ends = np.minimum.accumulate(np.where(last_of_series, position, len(order))[::-1])[::-1]
    return rows.take(np.sort(order[ends - position < days]))


def _add_latest(latest: dict[LatestKey, dict[str, Any]], rows: pa.Table) -> set[LatestKey]:
    """Put the newest price of each series of ``rows`` into ``latest`` when it is at least as
    new as the one there; the series whose price changed."""
    touched = set()
    if not rows.num_rows:
        return touched
    fields = [f for f in LATEST_FIELDS if f in rows.column_names]
    for r in newest_per_series(rows).select(fields).to_pylist():
        key = (r["market_id"], r["commodity"])
        known = latest.get(key)
        if known is None or (r["observed_at"] >= known["observed_at"] and r != known):
            latest[key] = r
            touched.add(key)
    return touched


def _add_closes(closes: Closes, rows: pa.Table) -> set[LatestKey]:
    """Put the daily closes of ``rows`` into ``closes`` (copying each series it changes, so a
    view that shares the old one is untouched); keep the newest ``RECENT_CLOSES`` days. The
    series whose closes changed."""
    touched: set[LatestKey] = set()
    if not rows.num_rows:
        return touched
    kept = newest_closes(rows).select(list(CLOSE_COLUMNS))
    changed: dict[SeriesKey, dict[date, float]] = {}
    for batch in kept.to_batches(max_chunksize=ROWS_AT_ONCE):
        for commodity, market, region, day, close in zip(*batch.to_pydict().values(), strict=True):
            series = (commodity, market, region or "")
            if series not in changed:
                changed[series] = dict(closes.get(series, {}))
            changed[series][day] = close
    for series, days in changed.items():
        for old in sorted(days)[:-RECENT_CLOSES]:
            del days[old]
        if days != closes.get(series):
            closes[series] = days
            touched.add((series[1], series[0]))
    return touched


def build_live(settings: Settings, tables: Tables) -> LiveView:
    """From ``gold.price_latest``, the prices of silver's last commits (the gold query MERGEs
    them into ``gold.price_latest`` later, off the freshness path) and the daily closes."""
    latest: dict[LatestKey, dict[str, Any]] = {}
    closes: Closes = {}
    touched = _add_latest(latest, tables[GOLD_PRICE_LATEST.qualified_name])
    touched |= _add_latest(latest, tables[SILVER_PRICES.qualified_name])
    _add_closes(closes, tables[GOLD_PRICE_DAILY.qualified_name])
    return _live(settings.tz, latest, closes, None, touched)


def update_live(settings: Settings, view: LiveView, added: Tables) -> LiveView:
    """``view`` moved forward with the prices silver's new commits added, the rows gold's
    MERGEs of ``gold.price_latest`` rewrote (what a view built while gold lagged behind silver by
    more than the recent commits it read did not have) and the new daily closes (the old view
    keeps answering meanwhile, unchanged): a price is live as soon as silver holds it."""
    latest, closes = dict(view.latest), dict(view.closes)
    touched = _add_latest(latest, added[SILVER_PRICES.qualified_name])
    touched |= _add_latest(latest, added[GOLD_PRICE_LATEST.qualified_name])
    touched |= _add_closes(closes, added[GOLD_PRICE_DAILY.qualified_name])
    return _live(view.tz, latest, closes, view, touched)


# ---- markets, regions ---------------------------------------------------------------------


@dataclass(frozen=True)
class MarketsView:
    """Every market of the reference with the commodities it has prices of, by id: each one's
    JSON and the whole list's."""

    items: list[dict[str, Any]]
    encoded: list[bytes]
    answer: bytes

    def page(
        self,
        province: str | None = None,
        regency: str | None = None,
        kind: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[bytes, int]:
        """The JSON list of a page of the markets in ``province`` and ``regency`` of ``kind``
        (None: any), by id, and how many there are in all."""
        if province is None and regency is None and kind is None:
            chosen = self.encoded
        else:
            chosen = [
                e
                for m, e in zip(self.items, self.encoded, strict=True)
                if province in (None, m["province"])
                and regency in (None, m["regency_code"])
                and kind in (None, m["kind"])
            ]
        if chosen is self.encoded and offset == 0 and limit is None:
            return self.answer, len(chosen)
        return json_list(chosen[window(offset, limit)]), len(chosen)


def build_markets(settings: Settings, tables: Tables) -> MarketsView:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in tables[GOLD_PRICE_LATEST.qualified_name].to_pylist():
        seen[r["market_id"]].add(r["commodity"])
    known = regencies()
    items = [
        {
            "market_id": m.market_id,
            "name": m.name,
            "city": m.city,
            "province": m.province,
            "regency_code": m.regency_code,
            "regency": known[m.regency_code].name if m.regency_code else None,
            "lat": m.latitude,
            "lon": m.longitude,
            "kind": m.kind,
            "commodities": sorted(seen.get(m.market_id, ())),
        }
        for m in sorted(conf_of(settings).markets.values(), key=lambda m: m.market_id)
    ]
    encoded = [encode_kept(m) for m in items]
    return MarketsView(items, encoded, json_list(encoded))


def build_regions(settings: Settings, tables: Tables) -> dict[str, list[dict[str, Any]]]:
    """Per province, the newest day of each commodity, by commodity."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _rows(tables[GOLD_REGION_DAILY.qualified_name], [("date", "ascending")]):
        newest[(r["region"], r["commodity"])] = r
    by_region: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (region, _commodity), r in sorted(newest.items()):
        by_region[region].append({k: v for k, v in r.items() if k != "region"})
    return dict(by_region)


# ---- ML outputs, quality, alerts ----------------------------------------------------------


def build_forecasts(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    """The newest forecast (latest origin date) of each series, with its points; its
    ``surge_warn_at`` the one the ``surge_risk`` alert uses (the rule's default where the
    series has none)."""
    default_warn_at = conf_of(settings).alerts.surge_risk.warning
    rows = _rows(
        tables[GOLD_FORECASTS.qualified_name],
        [("series_id", "ascending"), ("origin_date", "ascending"), ("target_date", "ascending")],
    )
    newest_origin = {r["series_id"]: r["origin_date"] for r in rows}
    series: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["origin_date"] != newest_origin[r["series_id"]]:
            continue
        # surge_prob, served_because: absent from the forecasts of a lakehouse older than them
        header = {k: r.get(k) for k in FORECAST_HEADER_FIELDS}
        if header["surge_warn_at"] is None:
            header["surge_warn_at"] = default_warn_at
        s = series.setdefault(r["series_id"], header | {"points": []})
        s["points"].append({k: r[k] for k in FORECAST_POINT_FIELDS})
    return list(series.values())


def build_anomalies(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    return _rows(
        tables[GOLD_ANOMALIES.qualified_name],
        [("date", "descending"), ("score", "descending"), ("market_id", "ascending")],
    )


def build_quality(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    rows = _rows(
        tables[GOLD_DATA_QUALITY_DAILY.qualified_name],
        [("date", "descending"), ("source", "ascending"), ("device_id", "ascending")],
    )
    for r in rows:
        r["quarantined_by_reason"] = dict(r["quarantined_by_reason"] or [])
    return rows


def build_alerts(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    """Every alert, most recently updated first."""
    return _rows(
        tables[GOLD_ALERTS.qualified_name],
        [("updated_at", "descending"), ("alert_id", "ascending")],
    )


LIVE = ViewSpec(
    "live",
    (SILVER_PRICES, GOLD_PRICE_DAILY, GOLD_PRICE_LATEST),
    build_live,
    update_live,
    recent=(SILVER_PRICES,),
    reads={
        SILVER_PRICES.qualified_name: Read(LATEST_FIELDS),
        GOLD_PRICE_LATEST.qualified_name: Read(LATEST_FIELDS),
        GOLD_PRICE_DAILY.qualified_name: Read(CLOSE_COLUMNS, ("commodity", "market_id", "region")),
    },
)
MARKETS = ViewSpec("markets", (GOLD_PRICE_LATEST,), build_markets)
HISTORY: dict[Granularity, ViewSpec[HistoryIndex]] = {
    "day": ViewSpec("history_day", (GOLD_PRICE_DAILY,), partial(build_history, granularity="day")),
    "hour": ViewSpec(
        "history_hour", (GOLD_PRICE_HOURLY,), partial(build_history, granularity="hour")
    ),
}
REGIONS = ViewSpec("regions", (GOLD_REGION_DAILY,), build_regions)
FORECASTS = ViewSpec("forecasts", (GOLD_FORECASTS,), build_forecasts)
ANOMALIES = ViewSpec("anomalies", (GOLD_ANOMALIES,), build_anomalies)
QUALITY = ViewSpec("quality", (GOLD_DATA_QUALITY_DAILY,), build_quality)
ALERTS = ViewSpec("alerts", (GOLD_ALERTS,), build_alerts)
