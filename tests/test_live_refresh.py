"""The live view and the prices WebSocket while writes flow: each silver.prices commit is read
once for both, and not at all while nobody wants it; no file is touched on the event loop;
requests answered during a rebuild get the previous view (counted ``stale``); a pushed item is
encoded once for all its subscribers; of the columns read, one a file predates reads null. Over
a lakehouse written with delta-rs (no Spark)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient

import lakehouse.io.lake
import serving_api.routers.ops
from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.config.settings import Settings
from lakehouse.io.lake import Lakehouse
from serving_api.app import create_app
from serving_api.cache import GoldCache
from serving_api.metrics import ApiMetrics
from serving_api.push import Filter, Hub
from serving_api.views import LATEST_FIELDS, LIVE, encode
from tests.api_samples import (
    API,
    LAST_DAY,
    LIVE_MARKETS,
    PRICES,
    WAIT,
    append_prices,
    price,
    until,
    with_api,
    write_live_tables,
)
from tests.shipped import SHIPPED


@pytest.fixture
def lake(conf_settings: Settings, tmp_path: Path) -> Settings:
    own = with_api(
        conf_settings, tmp_path / "lakehouse", cache_check_ms=0, prices_poll_seconds=0.05
    )
    own = own.model_copy(update={"paths": own.paths.model_copy(update={"data_dir": tmp_path})})
    write_live_tables(own)
    return own


def later(hours: int) -> datetime:
    return datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=hours)


def test_silver_commits_are_read_once_and_only_when_wanted(
    lake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []  # the silver data files read
    silver = str(SILVER_PRICES.path(lake))
    parquet_file = pq.ParquetFile

    def counted(source: Any, **options: Any) -> Any:
        if str(source).startswith(silver):
            read.append(str(source))
        return parquet_file(source, **options)

    monkeypatch.setattr(pq, "ParquetFile", counted)
    market = LIVE_MARKETS[1]
    pool = ThreadPoolExecutor(1)
    with TestClient(create_app(lake)) as c:
        append_prices(lake, [price(market, "beras", 12001.0, later(7))])
        append_prices(lake, [price(market, "beras", 12002.0, later(8))])
        time.sleep(1)  # the poller follows the table's versions meanwhile
        assert read == []  # nobody subscribed, nobody asked for live prices
        with c.websocket_connect(f"{API}/prices/ws?commodity=beras") as ws:
            time.sleep(0.5)  # subscribed before the next commit
            append_prices(lake, [price(market, "beras", 12003.0, later(9))])
            pushed = pool.submit(ws.receive_json).result(timeout=WAIT)
        assert pushed["price"]["price"] == 12003.0  # not the prices of before
        assert read  # read for the subscriber
        live = f"{API}/prices/live?commodity=beras&market_id={market}"
        until(lambda: c.get(live).json()[0]["price"] == 12003.0)
    pool.shutdown()
    assert len(read) == len(set(read)) == 4  # the first commit and three more, once each


def test_no_file_is_touched_on_the_event_loop(
    lake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []

    def guard(module: Any, name: str) -> None:
        original = getattr(module, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread
                pass
            else:
                on_loop.append(f"{module.__name__}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, guarded)

    for module, name in (
        (lakehouse.io.lake, "exists"),
        (serving_api.routers.ops, "exists"),
        (lakehouse.io.lake, "read_text"),
        (lakehouse.io.lake, "DeltaTable"),
        (pq, "ParquetFile"),
    ):
        guard(module, name)
    market = LIVE_MARKETS[2]
    pool = ThreadPoolExecutor(1)
    with (
        TestClient(create_app(lake)) as c,
        c.websocket_connect(f"{API}/prices/ws?market_id={market}") as ws,
        c.websocket_connect(f"{API}/alerts/ws"),
    ):
        live = f"{API}/prices/live?market_id={market}"
        assert c.get(live).status_code == 200
        append_prices(lake, [price(market, "cabai_rawit", 15000.0, later(9))])
        assert pool.submit(ws.receive_json).result(timeout=WAIT)["price"]["price"] == 15000.0
        until(lambda: any(r["price"] == 15000.0 for r in c.get(live).json()))
        for path in ("/metrics", f"{API}/markets", f"{API}/prices/history", "/ready"):
            assert c.get(path).status_code in (200, 503), path
    pool.shutdown()
    assert on_loop == []


def test_a_rebuild_answers_the_previous_view_meanwhile(
    lake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = ApiMetrics()
    cache = GoldCache(lake, metrics)
    release = threading.Event()
    rebuild = cache._rebuild

    def held(*args: Any) -> Any:
        release.wait(WAIT)
        return rebuild(*args)

    monkeypatch.setattr(cache, "_rebuild", held)

    def looked_up(result: str) -> float:
        labels = {"view": "live", "result": result}
        return metrics.registry.get_sample_value("smartmarket_api_cache_total", labels) or 0

    async def test() -> None:
        first = await cache.get(LIVE)
        append_prices(lake, [price(LIVE_MARKETS[0], "beras", 12345.0, later(9))])
        deadline = time.monotonic() + WAIT
        while not looked_up("stale"):  # once a look found the commit, during the rebuild
            assert cache.ready(LIVE) is first and time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert cache.ready(LIVE) is first
        release.set()
        while (view := cache.ready(LIVE)) is first:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert b"12345.0" in view.answer("beras", None, LIVE_MARKETS[0])
        assert looked_up("miss") == 1 and looked_up("hit") >= 1

    asyncio.run(test())


def test_an_item_is_encoded_once_for_all_its_subscribers() -> None:
    made: list[dict[str, Any]] = []

    async def message(item: dict[str, Any]) -> dict[str, Any]:
        made.append(item)
        return {"type": "price", "price": item}

    async def nothing(_wanted: list[Filter]) -> list[dict[str, Any]]:
        return []

    async def test() -> None:
        metrics = ApiMetrics()
        hub = Hub("prices", nothing, 1.0, metrics, metrics.prices_pushed, message)
        beras, anything, gula = (
            hub.subscribe(Filter.of(commodity=c)) for c in ("beras", None, "gula_pasir")
        )
        items = [{"commodity": "beras", "price": 1.0}, {"commodity": "cabai_rawit", "price": 2.0}]
        await hub.publish(items)
        assert made == items
        first, second = (encode({"type": "price", "price": i}).decode() for i in items)
        queues = (s.queue for s in (beras, anything, gula))
        queued = [[q.get_nowait() for _ in range(q.qsize())] for q in queues]
        assert queued == [[first], [first, second], []]
        assert queued[0][0] is queued[1][0]  # one encoding, shared
        assert metrics.registry.get_sample_value("smartmarket_api_prices_pushed_total") == 3

    asyncio.run(test())


def test_a_file_older_than_a_column_reads_it_as_null(lake: Settings, tmp_path: Path) -> None:
    """The live view reads some columns of each file: one written before a column existed
    has not got it (schema evolution)."""
    own = with_api(lake, tmp_path / "evolved")
    old = price(LIVE_MARKETS[0], "beras", 12001.0, later(7))
    write_deltalake(
        str(SILVER_PRICES.path(own)),
        pa.Table.from_pylist([{k: v for k, v in old.items() if k != "flags"}]),
    )
    write_deltalake(
        str(SILVER_PRICES.path(own)),
        pa.Table.from_pylist([price(LIVE_MARKETS[0], "beras", 12002.0, later(8))], PRICES),
        mode="append",
        schema_mode="merge",
    )
    read = LIVE.read(SILVER_PRICES)
    _, rows = Lakehouse(own)[SILVER_PRICES].added_since(-1, read.columns, read.dictionary)
    assert rows.column_names == list(LATEST_FIELDS)
    assert rows.sort_by("price")["flags"].to_pylist() == [None, []]


def test_before_gold_is_written_the_live_view_keeps_every_silver_commit(
    conf_settings: Settings, tmp_path: Path
) -> None:
    """The live view reads silver.prices' last ``RECENT_COMMITS`` commits over gold's latest
    prices; before gold has written them (a first start, a gold batch minutes long at the
    national count) it reads all of silver, so a series priced long ago stays on the board."""
    own = with_api(conf_settings, tmp_path / "lakehouse", cache_check_ms=0)
    markets = sorted(SHIPPED.markets)[: serving_api.cache.RECENT_COMMITS + 5]
    for hour, market in enumerate(markets):  # a commit per series
        append_prices(own, [price(market, "beras", 12000.0 + hour, later(hour % 24))])
    with TestClient(create_app(own)) as c:
        assert sorted(beras(c)) == markets
        append_prices(own, [price(markets[0], "beras", 13000.0, later(23))])  # one more commit
        moved = until(lambda: (rows := beras(c)) and rows[markets[0]] == 13000.0 and rows)
    assert sorted(moved) == markets


def beras(client: TestClient) -> dict[str, float]:
    """Market → the live price of beras."""
    live = client.get(f"{API}/prices/live", params={"commodity": "beras", "limit": 1000})
    return {row["market_id"]: row["price"] for row in live.json()}
