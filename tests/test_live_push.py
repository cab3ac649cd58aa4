"""The live view and the prices WebSocket move forward with Arrow kernels: the same rows as the
row-by-row rules they replace, on random commits with ties."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from serving_api.push import Filter, wanted_prices
from serving_api.views import LiveView, newest_per_series

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


def test_the_price_feed_keeps_what_a_subscriber_wants() -> None:
    live = LiveView(ZoneInfo("Asia/Jakarta"), {}, {}, {}, [], None)
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
