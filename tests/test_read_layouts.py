"""Whatever Arrow layout a writer produces, every reader gets the same: strings and binaries
plain, lists plain, timestamps in UTC microseconds (``lakehouse.io.fast_read.plain``).

delta-rs 1.x writes the files of a MERGE with ``string_view`` columns, which Arrow's sort
kernels do not take: the API's live view once froze on the simulator's first round because of
it. These tests write every table an API view reads with the writers the pipeline uses
(``lakehouse.io.table_writes``: delta-rs append, then MERGE) and move every view forward over
the new commits; a view that still fails to rebuild is counted and shown by ``/ready``."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import GOLD_PRICE_LATEST, Table
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing, plain
from lakehouse.io.lake import Lakehouse
from serving_api import news_views, views
from serving_api.app import create_app
from serving_api.cache import GoldCache, ViewSpec
from serving_api.metrics import ApiMetrics
from serving_api.routers import quarantine
from tests.api_samples import LAST_DAY, LIVE_MARKETS, PRICES, price, with_api, write_live_tables

#: every prepared view the API serves
VIEWS: tuple[ViewSpec[Any], ...] = (
    views.LIVE,
    views.MARKETS,
    *views.HISTORY.values(),
    views.REGIONS,
    views.FORECASTS,
    views.ANOMALIES,
    views.QUALITY,
    views.ALERTS,
    news_views.NEWS,
    news_views.NEWS_SIGNAL,
    quarantine.QUARANTINE,
    quarantine.HELD,
)

LAYOUTS = [  # (array as some writer lays it out, the plain type every reader gets)
    (pa.array(["a", None, "b"], pa.string_view()), pa.string()),
    (pa.array(["a", None, "b"], pa.large_string()), pa.string()),
    (pa.array([b"a", None, b"b"], pa.binary_view()), pa.binary()),
    (pa.array([b"a", None, b"b"], pa.large_binary()), pa.binary()),
    (pc.dictionary_encode(pa.array(["a", None, "a"], pa.string_view())), pa.string()),
    (pc.dictionary_encode(pa.array(["a", None, "a"], pa.large_string())), pa.string()),
    (pa.array([["a"], None, []], pa.list_(pa.string_view())), pa.list_(pa.string())),
    (pa.array([["a"], None, []], pa.large_list(pa.large_string())), pa.list_(pa.string())),
    (pa.array([["a"], None, []], pa.list_view(pa.string_view())), pa.list_(pa.string())),
    (
        pa.array([[("a", 1)], None, []], pa.map_(pa.string_view(), pa.int64())),
        pa.map_(pa.string(), pa.int64()),
    ),
    (
        pa.array([{"s": "a"}, None, {"s": None}], pa.struct([("s", pa.large_string())])),
        pa.struct([("s", pa.string())]),
    ),
    (
        pa.array([datetime(2025, 1, 1, 7), None, datetime(2025, 1, 2)], pa.timestamp("ns")),
        pa.timestamp("us", tz="UTC"),
    ),
]


@pytest.mark.parametrize("array, expected", LAYOUTS, ids=lambda v: str(getattr(v, "type", v)))
def test_every_layout_reads_plain_with_the_same_values(
    array: pa.Array, expected: pa.DataType
) -> None:
    read = plain(pa.table({"c": array}))
    assert read.schema.field("c").type == expected
    assert read["c"].to_pylist() == _decoded(array).to_pylist()
    if not pa.types.is_nested(expected):  # what the view layouts could not do
        pc.sort_indices(read, [("c", "ascending")])


@pytest.mark.parametrize("array", [a for a, kind in LAYOUTS if pa.types.is_string(kind)])
def test_a_column_asked_as_dictionary_reads_as_a_dictionary_of_plain_strings(
    array: pa.Array,
) -> None:
    read = plain(pa.table({"c": array}), dictionary=["c"])
    assert read.schema.field("c").type == pa.dictionary(pa.int32(), pa.string())
    assert read["c"].to_pylist() == _decoded(array).to_pylist()


def test_a_plain_table_is_returned_as_it_is() -> None:
    table = pa.table({"s": ["a"], "at": pa.array([datetime(2025, 1, 1, tzinfo=UTC)])})
    assert plain(table) is table


def _decoded(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        return array.dictionary.cast(pa.string()).take(array.indices)
    if pa.types.is_timestamp(array.type):
        return pc.assume_timezone(array, "UTC")
    return array


# ---- the views over files of the pipeline's writers ----------------------------------------


@pytest.fixture
def lake(conf_settings: Settings, tmp_path: Path) -> Settings:
    own = with_api(conf_settings, tmp_path / "lakehouse", cache_check_ms=0)
    write_live_tables(own)
    return own


def _merge_newer_prices(settings: Settings, value: float) -> None:
    """A commit of gold.price_latest as the gold query makes it: a delta-rs MERGE."""
    at = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=8)
    rows = [price(m, "beras", value, at) for m in LIVE_MARKETS]
    Lakehouse(settings)[GOLD_PRICE_LATEST].merge(
        pa.Table.from_pylist(rows, schema=PRICES),
        replace_when="s.observed_at >= t.observed_at",
    )


def test_the_live_view_follows_gold_merges_of_delta_rs(lake: Settings) -> None:
    """The frozen board: every commit after the first round was a MERGE whose files hold
    ``string_view`` columns; the view now moves forward over them."""
    metrics = ApiMetrics()
    cache = GoldCache(lake, metrics)

    async def follow() -> bytes:
        await cache.get(views.LIVE)
        for value in (12345.0, 23456.0):  # the second MERGE rewrites the first one's file
            _merge_newer_prices(lake, value)
            await cache._follow(views.LIVE, cache._slots[views.LIVE.name])
        return cache.current(views.LIVE).answer("beras", None, LIVE_MARKETS[0])

    assert b"23456.0" in asyncio.run(follow())
    layouts = {
        str(f.type)
        for path in Path(GOLD_PRICE_LATEST.path(lake)).glob("*.parquet")
        for f in pq.read_schema(path)
    }
    assert "string_view" in layouts  # the premise (were it to change, the test still holds)
    assert cache.failing() == {}


def test_a_filtered_read_holds_over_files_of_a_merge(lake: Settings) -> None:
    """A filter on a string column (the supply views' ``state = 'in_transit'``) read over the
    ``string_view`` files of a MERGE: Arrow has no kernel comparing the two layouts, and the
    Supply tab once stayed blank on it; ``LakeTable.read`` compares them as plain strings."""
    _merge_newer_prices(lake, 12345.0)
    first = LIVE_MARKETS[0]
    where = [("commodity", "=", "beras"), ("market_id", "in", [first]), ("price", ">", 1.0)]
    read = Lakehouse(lake)[GOLD_PRICE_LATEST].read(["market_id", "price"], where)
    assert read.to_pylist() == [{"market_id": first, "price": 12345.0}]
    others = Lakehouse(lake)[GOLD_PRICE_LATEST].read(
        ["market_id"], [("market_id", "not in", [first])]
    )
    assert first not in others["market_id"].to_pylist() and others.num_rows > 0
    assert read.schema.field("market_id").type == pa.string()


def test_a_view_that_cannot_rebuild_is_counted_told_once_and_not_ready(
    lake: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ApiMetrics()
    cache = GoldCache(lake, metrics)

    def broken(*_: Any) -> Any:
        raise pa.ArrowTypeError("Unsupported type for RecordBatch sorting: binary_view")

    async def fail_twice_then_recover() -> tuple[list[float], dict[str, str]]:
        first = await cache.get(views.MARKETS)
        slot = cache._slots[views.MARKETS.name]
        waits = []
        with monkeypatch.context() as patched:
            patched.setattr(cache, "_rebuild", broken)
            for value in (1.0, 2.0):
                _merge_newer_prices(lake, value)
                await cache._follow(views.MARKETS, slot)
                waits.append(cache._backoff(slot))
                assert cache.current(views.MARKETS) is first  # the previous view answers
        failing = cache.failing()
        await cache._follow(views.MARKETS, slot)
        return waits, failing

    waits, failing = asyncio.run(fail_twice_then_recover())
    assert waits[0] < waits[1]  # the looks space out while it keeps failing
    assert "binary_view" in failing[views.MARKETS.name]  # what /ready reports
    labels = {"view": views.MARKETS.name}
    assert metrics.registry.get_sample_value("smartmarket_api_view_failures_total", labels) == 2
    told = [r for r in caplog.records if r.getMessage().startswith("view rebuild failed")]
    assert len(told) == 1 and told[0].exc_info is None  # one line, no traceback
    assert cache.failing() == {}  # rebuilt once the cause was gone


def test_ready_says_which_view_fails(lake: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GoldCache, "failing", lambda _: {"live": "ArrowTypeError: binary_view"})
    with TestClient(create_app(lake)) as client:
        answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["views"] == {
        "ok": False,
        "detail": "live: ArrowTypeError: binary_view",
    }


def test_every_view_follows_commits_of_the_real_pipeline_and_of_delta_rs_merges(
    replayed: Settings, tmp_path: Path
) -> None:
    """Every view the API serves, over a lakehouse the real pipeline wrote (Spark's and
    delta-rs's writers), then over a MERGE (delta-rs) of every table's own rows into it."""
    root = tmp_path / "lakehouse"
    shutil.copytree(replayed.paths.lakehouse_root, root)
    lake = with_api(replayed, root, cache_check_ms=0)
    cache = GoldCache(lake, ApiMetrics())
    tables = sorted({t for spec in VIEWS for t in spec.tables}, key=lambda t: t.qualified_name)

    async def follow() -> None:
        built = {spec.name: await cache.get(spec) for spec in VIEWS}
        written = [t for t in tables if _write_again(t, lake)]
        assert GOLD_PRICE_LATEST in written
        for spec in VIEWS:
            slot = cache._slots[spec.name]
            await cache._follow(spec, slot)
            assert slot.failure is None, (spec.name, slot.failure)
            if set(spec.tables) & set(written):
                assert cache.current(spec) is not built[spec.name], spec.name

    asyncio.run(follow())


def _write_again(table: Table, settings: Settings) -> bool:
    """A delta-rs commit of the table's own rows: a MERGE on its keys replacing them, or an
    append where it has none. False when the pipeline did not write the table."""
    try:
        rows = Lakehouse(settings)[table].read()
    except TableMissing:
        return False
    if table.keys:
        Lakehouse(settings)[table].merge(rows, replace_when="true")
    else:
        Lakehouse(settings)[table].append(rows)
    return True
