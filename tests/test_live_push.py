"""The live view and the prices WebSocket move forward with Arrow kernels: the same rows as the
row-by-row rules they replace, on random commits with ties; the answers the live view prepares
are what filtering its items on each request gave."""

from __future__ import annotations

import itertools
import random
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.catalog.tables import GOLD_PRICE_DAILY, GOLD_PRICE_LATEST, SILVER_PRICES
from lakehouse.config.settings import Settings
from serving_api import views
from serving_api.push import Filter, wanted_prices
from serving_api.views import (
    RECENT_CLOSES,
    Closes,
    LiveView,
    build_live,
    encode,
    newest_per_series,
    update_live,
)
from tests.api_samples import PRICES

MARKETS = ("IP-001", "IP-002", "IP-030")
COMMODITIES = ("beras", "cabai_merah", "gula_pasir")
REGIONS = ("31", "32")


def commit(count: int, seed: int) -> pa.Table:
    """Prices as a commit of silver.prices adds them: few series, repeated times."""
    rnd = random.Random(seed)
    start = datetime(2025, 3, 21, tzinfo=UTC)
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"e-{i}",
                "market_id": rnd.choice(MARKETS),
                "commodity": rnd.choice(COMMODITIES),
                "region": rnd.choice(REGIONS),
                "price": float(i),
                "unit": "kg",
                "observed_at": start + timedelta(minutes=rnd.randrange(5)),
                "source": "csv",
                "flags": [],
            }
            for i in range(count)
        ]
    )


def newest_row_by_row(rows: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    """The rule it replaces: walk the rows, keep a row when it is at least as new."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows.to_pylist():
        key = (r["market_id"], r["commodity"])
        if key not in latest or r["observed_at"] >= latest[key]["observed_at"]:
            latest[key] = r
    return latest


def test_newest_per_series_is_the_row_by_row_rule() -> None:
    for seed in range(20):
        rows = commit(random.Random(seed).randrange(0, 200), seed)
        newest = newest_per_series(rows).to_pylist()
        assert len({(r["market_id"], r["commodity"]) for r in newest}) == len(newest)
        assert {(r["market_id"], r["commodity"]): r for r in newest} == newest_row_by_row(rows)


def no_rows() -> dict[str, pa.Table]:
    return {t.qualified_name: pa.table({}) for t in (SILVER_PRICES, GOLD_PRICE_LATEST)} | {
        GOLD_PRICE_DAILY.qualified_name: pa.table({})
    }


def test_the_price_feed_keeps_what_a_subscriber_wants(conf_settings: Settings) -> None:
    live = build_live(conf_settings, no_rows())
    rows = commit(300, 7)
    everything = wanted_prices(live, rows, [Filter.of()])
    assert [p["event_id"] for p in everything] == [
        r["event_id"] for r in rows.sort_by("observed_at").to_pylist()
    ]
    wanted = [
        Filter.of(market_id="IP-030", commodity="BERAS"),
        Filter.of(region="32", commodity=None),
    ]
    kept = wanted_prices(live, rows, wanted)
    assert kept == [p for p in everything if any(f.matches(p) for f in wanted)]
    assert 0 < len(kept) < len(everything)
    assert wanted_prices(live, rows, [Filter.of(market_id="IP-404")]) == []


# ---- the answers prepared with the view ---------------------------------------------------


def closes_row_by_row(closes: Closes, rows: pa.Table) -> Closes:
    """The rule the Arrow pass replaces: every row into its series, then the newest days."""
    closes = {series: dict(days) for series, days in closes.items()}
    for r in rows.to_pylist():
        closes.setdefault((r["commodity"], r["market_id"], r["region"] or ""), {})[r["date"]] = r[
            "close"
        ]
    return {s: {d: days[d] for d in sorted(days)[-RECENT_CLOSES:]} for s, days in closes.items()}


def filtered(items: list[dict[str, Any]], wanted: tuple[str | None, ...]) -> bytes:
    """What a request got before: the items matching the filters, encoded then."""
    commodity, region, market_id = wanted
    return encode(
        [
            r
            for r in sorted(items, key=lambda r: (r["commodity"], r["market_id"]))
            if (commodity is None or r["commodity"] == commodity)
            and (region is None or r["region"] == region)
            and (market_id is None or r["market_id"] == market_id)
        ]
    )


CLOSES = pa.schema(
    [
        ("market_id", pa.string()),
        ("commodity", pa.string()),
        ("region", pa.string()),
        ("date", pa.date32()),
        ("close", pa.float64()),
    ]
)


def prices(rnd: random.Random, count: int, start: datetime) -> pa.Table:
    """Prices of few series at few times (ties), a region now and then another or none."""
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"e-{rnd.random()}",
                "market_id": rnd.choice(MARKETS),
                "commodity": rnd.choice(COMMODITIES),
                "region": rnd.choice([*REGIONS, REGIONS[0], None]),
                "price": float(rnd.randrange(90, 110)),
                "unit": "kg",
                "observed_at": start + timedelta(hours=rnd.randrange(4) * 12),
                "source": "test",
                "flags": rnd.choice([[], ["zscore"], None]),
            }
            for _ in range(count)
        ],
        schema=PRICES,
    )


def closes(rnd: random.Random, count: int, last: date) -> pa.Table:
    """Daily closes over more days than the view keeps, some days twice (the later wins)."""
    rows = [
        {
            "market_id": rnd.choice(MARKETS),
            "commodity": rnd.choice(COMMODITIES),
            "region": rnd.choice([*REGIONS, None]),
            "date": last - timedelta(days=rnd.randrange(3 * RECENT_CLOSES)),
            "close": float(rnd.randrange(80, 120)),
        }
        for _ in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=CLOSES) if rows else pa.table({})


def expect(view: LiveView, latest: dict, daily: Closes) -> None:
    """``view`` holds the closes of the row-by-row rule, every newest price described with
    them, and answers every filter — known or not — as filtering those items would."""
    assert view.closes == daily
    items = {key: view.describe(row) for key, row in latest.items()}
    assert view.items == items
    newest = max((r["observed_at"] for r in latest.values()), default=None)
    assert view.newest == (newest.timestamp() if newest else None)
    for wanted in itertools.product(
        (None, *COMMODITIES, "bawang"), (None, *REGIONS, "33"), (None, *MARKETS, "IP-404")
    ):
        assert view.answer(*wanted) == filtered(list(items.values()), wanted), wanted


def as_read(rows: pa.Table, rnd: random.Random) -> pa.Table:
    """``rows`` as the live view reads gold.price_daily: file by file, its series' names
    dictionary-encoded (or, half of the time, as a full build reads them: plain)."""
    if not rows.num_rows or rnd.random() < 0.5:
        return rows
    for name in ("commodity", "market_id", "region"):
        i = rows.schema.get_field_index(name)
        rows = rows.set_column(i, name, pc.dictionary_encode(rows[name]))
    return rows


@pytest.mark.parametrize("renumbered", [False, True])
def test_the_prepared_answers_are_the_filtered_items(
    conf_settings: Settings, renumbered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if renumbered:  # as if there were too many series to number them as they come
        monkeypatch.setattr(views, "SERIES_CODES", 1)
    for seed in range(25):
        rnd = random.Random(seed)
        start = datetime(2025, 3, 21, tzinfo=UTC)
        today = start.date()
        gold_latest = prices(rnd, rnd.randrange(0, 8), start - timedelta(days=1))
        silver = prices(rnd, rnd.randrange(0, 30), start)
        daily = closes(rnd, rnd.randrange(0, 300), today)
        view = build_live(
            conf_settings,
            {
                SILVER_PRICES.qualified_name: silver,
                GOLD_PRICE_LATEST.qualified_name: gold_latest,
                GOLD_PRICE_DAILY.qualified_name: as_read(daily, rnd),
            },
        )
        latest = newest_row_by_row(pa.concat_tables([gold_latest, silver]))
        all_daily = daily
        reference = closes_row_by_row({}, daily)
        expect(view, latest, reference)
        for step in range(6):
            at = start + timedelta(days=rnd.randrange(3))
            silver, gold_latest = prices(rnd, rnd.randrange(0, 20), at), prices(rnd, 2, at)
            daily = closes(rnd, rnd.randrange(0, 60), at.date())
            if step == 3 and all_daily.num_rows:  # a MERGE adds back a whole file of history
                daily = pa.concat_tables([all_daily, daily]) if daily.num_rows else all_daily
            view = update_live(
                conf_settings,
                view,
                {
                    SILVER_PRICES.qualified_name: silver,
                    GOLD_PRICE_LATEST.qualified_name: gold_latest,
                    GOLD_PRICE_DAILY.qualified_name: as_read(daily, rnd),
                },
            )
            for key, row in newest_row_by_row(pa.concat_tables([silver, gold_latest])).items():
                if key not in latest or row["observed_at"] >= latest[key]["observed_at"]:
                    latest[key] = row
            if daily.num_rows:
                all_daily = pa.concat_tables([all_daily, daily]) if all_daily.num_rows else daily
            reference = closes_row_by_row(reference, daily)
            expect(view, latest, reference)


def test_rows_added_back_unchanged_are_not_described_again(conf_settings: Settings) -> None:
    rnd = random.Random(3)
    start = datetime(2025, 3, 21, tzinfo=UTC)
    tables = {
        SILVER_PRICES.qualified_name: prices(rnd, 30, start),
        GOLD_PRICE_LATEST.qualified_name: prices(rnd, 5, start - timedelta(days=1)),
        GOLD_PRICE_DAILY.qualified_name: closes(rnd, 200, start.date()),
    }
    view = build_live(conf_settings, tables)
    again = update_live(conf_settings, view, tables)  # a MERGE rewrote the files as they were
    assert again.answers == view.answers
    assert all(again.items[key] is item for key, item in view.items.items())


# ---- what the view keeps per series -----------------------------------------------------------


#: bytes the live view may keep per series (the national load adds ~1 000 series a minute, up to
#: 400 000): its price and served item, their JSON, the JSON lists of its filters of no market
SERIES_BYTES = 5000


def national_prices(count: int) -> pa.Table:
    """The first price of ``count`` series, of as many markets × commodities as the national
    load has: 25 commodities, 38 provinces."""
    commodities = [f"commodity_{c:02d}" for c in range(25)]
    at = datetime(2025, 3, 21, 9, tzinfo=UTC)
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"00000000-0000-4000-8000-{i:012d}",
                "market_id": f"NAT-{i // 25:05d}",
                "commodity": commodities[i % 25],
                "region": f"Province {i // 25 % 38}",
                "price": 12_500.0 + i % 100,
                "unit": "kg",
                "observed_at": at + timedelta(seconds=i),
                "source": "bench-national",
                "flags": [],
            }
            for i in range(count)
        ],
        schema=PRICES,
    )


def test_the_live_view_keeps_a_bounded_size_per_series(conf_settings: Settings) -> None:
    """Its memory is proportional to the series served, at a few KB each: every item's JSON
    at its own size (not in orjson's buffer, 4 KiB or more), a filter naming a market joined
    when asked (not four more copies of every item)."""
    first = national_prices(4000)
    view = update_live(conf_settings, build_live(conf_settings, no_rows()), no_rows())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        added = {**no_rows(), SILVER_PRICES.qualified_name: first}
        view = update_live(conf_settings, view, added)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(view.items) == first.num_rows
    assert all(views.prepared(f) for f in view.answers)
    assert kept / first.num_rows < SERIES_BYTES, f"{kept / first.num_rows:.0f} bytes a series"
