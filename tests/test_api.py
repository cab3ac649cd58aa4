"""The serving API against gold tables the real pipeline produced (``replayed``), plus auth,
ingest into the real Kafka broker, cache refresh and live alerts on lakehouses of their own."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_DATA_QUALITY_DAILY,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_HOURLY,
    GOLD_PRICE_LATEST,
    GOLD_REGION_DAILY,
    SILVER_PRICES,
    Table,
)
from lakehouse.config.settings import ApiKey, Settings
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.lake import Lakehouse
from serving_api.app import create_app
from serving_api.auth import mint_key
from tests.api_samples import API, alert, upsert_alerts, with_api
from tests.conftest import isolated
from tests.kafka_helpers import consume, end_offsets


def rows(table: Table, settings: Settings) -> list[dict[str, Any]]:
    """A gold table read directly with delta-rs, independent of the API."""
    return Lakehouse(settings)[table].open().to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def client(replayed: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replayed)) as c:
        yield c


@pytest.fixture(scope="module")
def bare_client(
    conf_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The API over an empty lakehouse: enough for answers that depend only on the request and
    the reference data (no replay, no services)."""
    own = with_api(conf_settings, tmp_path_factory.mktemp("empty") / "lakehouse")
    with TestClient(create_app(own)) as c:
        yield c


# ---- values equal a direct Delta read -----------------------------------------------------


def test_live_prices_equal_gold_and_their_changes(client: TestClient, replayed: Settings) -> None:
    latest = rows(GOLD_PRICE_LATEST, replayed)
    daily = rows(GOLD_PRICE_DAILY, replayed)
    answer = client.get(f"{API}/prices/live").json()
    assert len(answer) == len(latest) > 0
    by_key = {(r["market_id"], r["commodity"]): r for r in answer}
    for expected in latest:
        got = by_key[(expected["market_id"], expected["commodity"])]
        assert got["price"] == expected["price"]
        assert got["event_id"] == expected["event_id"]
        assert got["flags"] == (expected["flags"] or [])
        assert datetime.fromisoformat(got["observed_at"]) == expected["observed_at"]
        day = expected["observed_at"].astimezone(replayed.tz).date()
        closes = sorted(
            (d["date"], d["close"])
            for d in daily
            if (d["market_id"], d["commodity"]) == (expected["market_id"], expected["commodity"])
        )
        before = [c for d, c in closes if d < day]
        week = [c for d, c in closes if day - timedelta(days=7) <= d < day]
        assert got["previous_close"] == (before[-1] if before else None)
        assert got["median_7d"] == (statistics.median(week) if week else None)
        if before:
            assert got["change_previous_day"] == pytest.approx(expected["price"] - before[-1])


def test_live_filters(client: TestClient, replayed: Settings) -> None:
    latest = rows(GOLD_PRICE_LATEST, replayed)
    some = latest[0]
    answer = client.get(
        f"{API}/prices/live",
        params={"commodity": some["commodity"], "region": some["region"].upper()},
    ).json()
    expected = {
        r["market_id"]
        for r in latest
        if r["commodity"] == some["commodity"] and r["region"] == some["region"]
    }
    assert {r["market_id"] for r in answer} == expected


def test_markets_list_the_commodities_seen(client: TestClient, replayed: Settings) -> None:
    seen: dict[str, set[str]] = {}
    for r in rows(GOLD_PRICE_LATEST, replayed):
        seen.setdefault(r["market_id"], set()).add(r["commodity"])
    answer = {m["market_id"]: m for m in client.get(f"{API}/markets").json()}
    for market_id, commodities in seen.items():
        assert set(answer[market_id]["commodities"]) == commodities
        assert answer[market_id]["province"]


def test_region_summary_is_the_newest_day(client: TestClient, replayed: Settings) -> None:
    regional = rows(GOLD_REGION_DAILY, replayed)
    region, commodity = regional[0]["region"], regional[0]["commodity"]
    newest = max(
        (r for r in regional if (r["region"], r["commodity"]) == (region, commodity)),
        key=lambda r: r["date"],
    )
    answer = client.get(f"{API}/regions/{region}/summary", params={"commodity": commodity})
    assert answer.status_code == 200
    (item,) = answer.json()["items"]
    assert item["date"] == newest["date"].isoformat()
    for key in ("median", "min", "max", "spread", "markets"):
        assert item[key] == newest[key]


def test_quality_equals_gold(client: TestClient, replayed: Settings) -> None:
    expected = rows(GOLD_DATA_QUALITY_DAILY, replayed)
    answer = client.get(f"{API}/quality").json()
    assert len(answer) == len(expected) > 0
    got = {(q["date"], q["source"], q["device_id"]): q for q in answer}
    for e in expected:
        q = got[(e["date"].isoformat(), e["source"], e["device_id"])]
        assert q["received"] == e["received"] == q["accepted"] + q["quarantined"] + q["duplicates"]
        assert q["quarantined_by_reason"] == dict(e["quarantined_by_reason"] or [])
    source = expected[0]["source"]
    assert {
        q["source"] for q in client.get(f"{API}/quality", params={"source": source}).json()
    } == {source}


def test_tables_not_written_yet_are_empty_lists(client: TestClient) -> None:
    for path in ("/forecasts", "/anomalies"):  # the replay ran no retrain
        answer = client.get(API + path)
        assert answer.status_code == 200, answer.text
        assert answer.json() == []


def test_alerts_of_the_replay_equal_gold(client: TestClient, replayed: Settings) -> None:
    """The replay's spikes opened alerts in the pipeline's alert step."""
    gold = {row["alert_id"]: row for row in rows(GOLD_ALERTS, replayed)}
    served = client.get(API + "/alerts", params={"limit": 1000}).json()
    assert gold and len(served) == min(len(gold), 1000)
    for item in served:
        assert item["status"] == gold[item["alert_id"]]["status"]
        assert item["severity"] == gold[item["alert_id"]]["severity"]


# ---- pagination -----------------------------------------------------------------------------


def walk(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(f"{API}/prices/history", params={**params, "cursor": cursor})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= params["limit"]
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_history_pages_walk_everything_once(client: TestClient, replayed: Settings) -> None:
    expected = {
        (r["market_id"], r["commodity"], r["date"].isoformat()): r
        for r in rows(GOLD_PRICE_DAILY, replayed)
    }
    items = walk(client, limit=1000)
    keys = [(i["market_id"], i["commodity"], i["period"]) for i in items]
    assert len(keys) == len(set(keys)) == len(expected)
    for item in items:
        e = expected[(item["market_id"], item["commodity"], item["period"])]
        for column in ("open", "high", "low", "close", "mean", "count"):
            assert item[column] == e[column]


def test_filtered_history_pages(client: TestClient, replayed: Settings) -> None:
    some = rows(GOLD_PRICE_LATEST, replayed)[0]
    start, end = date(2024, 3, 1), date(2024, 6, 30)
    expected = sorted(
        r["date"].isoformat()
        for r in rows(GOLD_PRICE_DAILY, replayed)
        if r["market_id"] == some["market_id"]
        and r["commodity"] == some["commodity"]
        and start <= r["date"] <= end
    )
    items = walk(
        client,
        limit=7,
        market_id=some["market_id"],
        commodity=some["commodity"],
        start=start.isoformat(),
        end=end.isoformat(),
    )
    assert [i["period"] for i in items] == expected


def test_hourly_history_is_local_time(client: TestClient, replayed: Settings) -> None:
    hourly = rows(GOLD_PRICE_HOURLY, replayed)
    items = walk(client, limit=1000, granularity="hour")
    assert len(items) == len(hourly)
    offset = datetime(2025, 1, 1, tzinfo=replayed.tz).utcoffset()
    first = datetime.fromisoformat(items[0]["period"])
    assert first.utcoffset() == offset


def test_a_cursor_only_continues_its_own_query(client: TestClient) -> None:
    cursor = client.get(f"{API}/prices/history", params={"limit": 1}).json()["next_cursor"]
    other = client.get(
        f"{API}/prices/history", params={"limit": 1, "cursor": cursor, "end": "2025-01-01"}
    )
    assert other.status_code == 422
    assert "another query" in other.json()["detail"]


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/prices/live", {"commodity": "beras_x"}, 404, "did you mean 'beras'"),
        ("/prices/live", {"market_id": "IP-0001"}, 404, "did you mean 'IP-001'"),
        ("/prices/history", {"region": "Atlantis"}, 404, "unknown province"),
        ("/regions/Atlantis/summary", {}, 404, "unknown province"),
        ("/prices/history", {"start": "2025-02-31"}, 422, "query parameter 'start'"),
        ("/prices/history", {"start": "yesterday"}, 422, "valid date"),
        ("/prices/history", {"limit": -5}, 422, "greater than or equal to 1"),
        ("/prices/history", {"limit": 1001}, 422, "less than or equal to 1000"),
        ("/prices/history", {"start": "2025-02-01", "end": "2025-01-01"}, 422, "is after end"),
        ("/prices/history", {"cursor": "not-a-cursor"}, 422, "cursor"),
        ("/prices/history", {"granularity": "week"}, 422, "granularity"),
        ("/anomalies", {"min_score": 2}, 422, "less than or equal to 1"),
        ("/alerts", {"since": "2025-13-01"}, 422, "since"),
    ],
)
def test_bad_input_is_explained(
    bare_client: TestClient, path: str, params: dict[str, Any], status: int, says: str
) -> None:
    answer = bare_client.get(API + path, params=params)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    if status == 404:
        assert answer.json()["choices"]


# ---- cache refresh --------------------------------------------------------------------------


def own_copy(replayed: Settings, tmp_path: Path, **api: Any) -> Settings:
    """Settings of an API over a copy of the replayed lakehouse, for a test that writes to it."""
    shutil.copytree(replayed.paths.lakehouse_root, tmp_path / "lakehouse")
    return with_api(replayed, tmp_path / "lakehouse", **api)


def live_beras_grows(c: TestClient, rows: int) -> list[dict[str, Any]]:
    """``/prices/live?commodity=beras`` once it has more than ``rows`` rows (or after 30 s): a
    request starts a look for a new version (in a worker thread) and gets the view there is
    (stale-while-revalidate); new rows show as soon as the rebuild is done."""
    deadline = time.monotonic() + 30
    while True:
        after = c.get(f"{API}/prices/live", params={"commodity": "beras"}).json()
        if len(after) > rows or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def test_cache_refreshes_when_a_new_version_lands(replayed: Settings, tmp_path: Path) -> None:
    settings = own_copy(replayed, tmp_path, cache_check_ms=0)
    with TestClient(create_app(settings)) as c:
        before = c.get(f"{API}/prices/live", params={"commodity": "beras"}).json()
        assert all(r["market_id"] != "IP-030" for r in before)
        # a silver batch appends its prices (gold MERGEs gold.price_latest later): live from silver
        silver = Lakehouse(settings)[SILVER_PRICES].open()
        row = silver.to_pyarrow_table().slice(0, 1).to_pylist()[0] | {
            "market_id": "IP-030",
            "commodity": "beras",
            "region": "DKI Jakarta",
            "price": 14100.0,
            "unit": "kg",
            "observed_at": datetime(2025, 3, 21, 3, tzinfo=UTC),
            "event_id": "00000000-0000-4000-8000-000000000001",
            "source": "test",
            "flags": ["zscore"],
        }
        write_deltalake(
            silver.table_uri,
            pa.Table.from_pylist([row], schema=silver.to_pyarrow_table().schema),
            mode="append",
            partition_by=list(SILVER_PRICES.partition_by),
        )
        after = live_beras_grows(c, len(before))
        (new,) = [r for r in after if r["market_id"] == "IP-030"]
        assert new["price"] == 14100.0 and new["flags"] == ["zscore"]
        assert len(after) == len(before) + 1
        scraped = c.get("/metrics").text
        assert 'smartmarket_api_cache_total{result="miss",view="live"} 1.0' in scraped
        assert f'table_version{{table="silver.prices"}} {silver.version() + 1}.0' in scraped
        # moved forward from the commit alone, the view answers what a full build answers
        with TestClient(create_app(settings)) as fresh:
            assert fresh.get(f"{API}/prices/live").json() == c.get(f"{API}/prices/live").json()


def test_live_view_catches_up_with_gold_price_latest(replayed: Settings, tmp_path: Path) -> None:
    """A view built while gold lagged behind silver by more commits than it reads of silver
    gets the prices it missed when gold.price_latest commits them."""
    settings = own_copy(replayed, tmp_path, cache_check_ms=0)
    with TestClient(create_app(settings)) as c:
        before = c.get(f"{API}/prices/live", params={"commodity": "beras"}).json()
        assert all(r["market_id"] != "IP-031" for r in before)
        latest = Lakehouse(settings)[GOLD_PRICE_LATEST].open()
        schema = latest.to_pyarrow_table().schema
        row = latest.to_pyarrow_table().slice(0, 1).to_pylist()[0] | {
            "market_id": "IP-031",
            "commodity": "beras",
            "price": 14200.0,
            "observed_at": datetime(2025, 3, 21, 4, tzinfo=UTC),
        }
        write_deltalake(latest.table_uri, pa.Table.from_pylist([row], schema=schema), mode="append")
        after = live_beras_grows(c, len(before))
        (new,) = [r for r in after if r["market_id"] == "IP-031"]
        assert new["price"] == 14200.0


def test_prices_websocket_pushes_each_new_silver_price(replayed: Settings, tmp_path: Path) -> None:
    settings = own_copy(replayed, tmp_path)
    silver = Lakehouse(settings)[SILVER_PRICES].open()
    template = silver.to_pyarrow_table().slice(0, 1).to_pylist()[0]
    pool = ThreadPoolExecutor(1)
    with (
        TestClient(create_app(settings)) as c,
        c.websocket_connect(f"{API}/prices/ws?market_id=IP-030&commodity=Beras") as ws,
    ):
        hub = c.app.state.resources.price_hub
        deadline = time.monotonic() + 60
        while hub.polls == 0:  # until the poller has seen the table as it was: nothing old
            assert time.monotonic() < deadline, "the price feed never polled"  # is pushed
            time.sleep(0.1)
        new = [
            template
            | {"event_id": f"ws-{i}", "market_id": market, "commodity": "beras", "price": price}
            | {"observed_at": datetime(2025, 3, 21, 3, i, tzinfo=UTC)}
            for i, (market, price) in enumerate((("IP-030", 14100.0), ("IP-001", 1.0)))
        ]
        write_deltalake(
            silver.table_uri,
            pa.Table.from_pylist(new, schema=silver.to_pyarrow_table().schema),
            mode="append",
            partition_by=list(SILVER_PRICES.partition_by),
        )
        pushed = pool.submit(ws.receive_json).result(timeout=60)  # a busy box
        assert pushed["type"] == "price"
        price = pushed["price"]
        assert (price["event_id"], price["market_id"], price["price"]) == ("ws-0", "IP-030", 14100)
        assert set(price) == set(c.get(f"{API}/prices/live").json()[0])  # the live item's fields
    pool.shutdown()


# ---- auth -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, ApiKey]]:
    return {role: mint_key(f"test-{role}", role) for role in ("reader", "ingest", "admin")}


def test_auth_rules(settings: Settings, tmp_path: Path, keys: dict) -> None:
    closed = with_api(
        settings, tmp_path, open_reads=False, keys=[entry for _key, entry in keys.values()]
    )
    reader, ingest, admin = (keys[r][0] for r in ("reader", "ingest", "admin"))
    with TestClient(create_app(closed)) as c:
        live = f"{API}/prices/live"
        assert c.get(live).status_code == 401
        assert c.get(live, headers={"X-API-Key": "smk_wrong"}).status_code == 401
        assert c.get(live, headers={"X-API-Key": reader}).status_code == 200
        assert c.get(live, headers={"X-API-Key": admin}).status_code == 200
        assert c.get(live, headers={"X-API-Key": ingest}).status_code == 403
        post = f"{API}/prices"
        assert c.post(post, json=[]).status_code == 401
        assert c.post(post, json=[], headers={"X-API-Key": reader}).status_code == 403
        assert c.get("/health").status_code == 200  # ops endpoints stay open
    opened = with_api(settings, tmp_path, keys=[keys["reader"][1]])
    with TestClient(create_app(opened)) as c:
        assert c.get(f"{API}/prices/live").status_code == 200
        assert c.get(f"{API}/prices/live", headers={"X-API-Key": "smk_wrong"}).status_code == 401
        assert c.post(f"{API}/prices", json=[]).status_code == 401  # writes are never open


# ---- ingest ---------------------------------------------------------------------------------


def test_posted_prices_land_in_kafka(settings: Settings, kafka, tmp_path: Path, keys: dict) -> None:
    own = with_api(isolated(settings, tmp_path), keys=[keys["ingest"][1]], max_events_per_request=3)
    ensure_topics(own)
    topic = own.kafka.topics.prices
    since = end_offsets(own, topic)
    event = {
        "market_id": "IP-001",
        "commodity": "bawang_merah",
        "price": 42054,
        "unit": "kg",
        "observed_at": "2025-03-21T10:00:00+07:00",
        "source": "partner-a",
    }
    headers = {"X-API-Key": keys["ingest"][0]}
    with TestClient(create_app(own)) as c:
        one = c.post(f"{API}/prices", json=event, headers=headers)
        assert one.status_code == 202, one.text
        many = c.post(
            f"{API}/prices", json=[event, {**event, "market_id": "IP-002"}], headers=headers
        )
        assert many.status_code == 202, many.text
        ids = one.json()["event_ids"] + many.json()["event_ids"]
        bad = c.post(f"{API}/prices", json={**event, "price": -1}, headers=headers)
        assert bad.status_code == 422 and "price" in bad.json()["detail"]
        extra = c.post(f"{API}/prices", json={**event, "colour": "red"}, headers=headers)
        assert extra.status_code == 422
        too_many = c.post(f"{API}/prices", json=[event] * 4, headers=headers)
        assert too_many.status_code == 413
        huge = c.post(
            f"{API}/prices",
            content=b"[" + b" " * (own.api.max_body_bytes + 1) + b"]",
            headers={**headers, "content-type": "application/json"},
        )
        assert huge.status_code == 413
    records = consume(own, topic, expected=3, since=since)
    assert sorted(v["event_id"] for _k, v in records) == sorted(ids)
    assert {k for k, _v in records} == {"IP-001:bawang_merah", "IP-002:bawang_merah"}
    assert all(v["price"] == 42054 and v["event_type"] == "price" for _k, v in records)


# ---- live alerts ----------------------------------------------------------------------------


def test_websocket_pushes_new_and_resolved_alerts(settings: Settings, tmp_path: Path) -> None:
    own = with_api(settings, tmp_path / "lakehouse")
    upsert_alerts(own, [alert("old", "critical", "DKI Jakarta")])
    pool = ThreadPoolExecutor(1)
    with (
        TestClient(create_app(own)) as c,
        c.websocket_connect(
            f"{API}/alerts/ws?severity=critical&province=dki%20jakarta&commodity=cabai_rawit"
        ) as ws,
    ):
        time.sleep(1)  # the poller has seen the table as it was: "old" is not new
        upsert_alerts(
            own,
            [
                alert("a1", "warning", "DKI Jakarta"),
                alert("a2", "critical", "DKI Jakarta"),
                alert("a3", "critical", "Bali"),
            ],
        )
        pushed = pool.submit(ws.receive_json).result(timeout=10)
        assert pushed["type"] == "alert"
        assert (pushed["alert"]["alert_id"], pushed["alert"]["status"]) == ("a2", "open")
        # one language: Indonesian without ?lang or Accept-Language
        assert (pushed["alert"]["message"], pushed["alert"]["lang"]) == ("Harga naik", "id")
        assert "message_en" not in pushed["alert"]
        upsert_alerts(own, [alert("a2", "critical", "DKI Jakarta", status="resolved")])
        pushed = pool.submit(ws.receive_json).result(timeout=10)
        assert (pushed["alert"]["alert_id"], pushed["alert"]["status"]) == ("a2", "resolved")
        listed = c.get(f"{API}/alerts", params={"severity": "critical"}).json()
        assert {a["alert_id"] for a in listed} == {"old", "a2", "a3"}
    pool.shutdown()


def test_alert_messages_in_the_language_asked_for(settings: Settings, tmp_path: Path) -> None:
    own = with_api(settings, tmp_path / "lakehouse")
    upsert_alerts(own, [alert("a1", "warning", "DKI Jakarta")])
    english = {"Accept-Language": "en-GB,en;q=0.9,id;q=0.5"}
    with TestClient(create_app(own)) as c:
        for params, headers, message, lang in (
            ({}, {}, "Harga naik", "id"),  # Indonesian by default
            ({"lang": "en"}, {}, "Price up", "en"),
            ({}, english, "Price up", "en"),
            ({"lang": "id"}, english, "Harga naik", "id"),  # ?lang wins over the header
            ({}, {"Accept-Language": "fr, id;q=0.3"}, "Harga naik", "id"),
        ):
            (served,) = c.get(f"{API}/alerts", params=params, headers=headers).json()
            assert (served["message"], served["lang"]) == (message, lang)
            assert not {"message_id", "message_en"} & set(served)
        assert c.get(f"{API}/alerts", params={"lang": "fr"}).status_code == 422
        with c.websocket_connect(f"{API}/alerts/ws?lang=en") as ws:
            time.sleep(1)  # the poller has seen the table as it was
            upsert_alerts(own, [alert("a1", "warning", "DKI Jakarta", status="resolved")])
            pushed = ws.receive_json()
            assert (pushed["alert"]["message"], pushed["alert"]["lang"]) == ("Price up", "en")


def test_websocket_refuses_bad_filters_and_missing_keys(
    settings: Settings, tmp_path: Path, keys: dict
) -> None:
    from starlette.websockets import WebSocketDisconnect

    closed = with_api(settings, tmp_path, open_reads=False, keys=[keys["reader"][1]])
    with TestClient(create_app(closed)) as c:
        key = keys["reader"][0]
        for query, reason in (
            ("", "API key"),
            (f"?province=Atlantis&api_key={key}", "province"),
            (f"?lang=fr&api_key={key}", "lang"),
        ):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                c.websocket_connect(f"{API}/alerts/ws{query}"),
            ):
                pass
            assert refused.value.code == 1008 and reason in refused.value.reason
        with c.websocket_connect(f"{API}/alerts/ws?api_key={key}"):
            pass
