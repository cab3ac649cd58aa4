"""The API at national size (issue 54): the list endpoints page with a total and filter by
province and regency, and the map's figure of each province (its published average, else its
markets' median) and regency. Over a lakehouse written with delta-rs (no Spark, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse.config.settings import Settings
from serving_api.app import create_app
from tests.api_samples import (
    API,
    LAST_DAY,
    LIVE_COMMODITIES,
    LIVE_MARKETS,
    alert,
    append_prices,
    price,
    upsert_alerts,
    with_api,
    write_live_tables,
)
from tests.shipped import SHIPPED


@pytest.fixture
def client(conf_settings: Settings, tmp_path: Path) -> TestClient:
    lake = with_api(conf_settings, tmp_path / "lakehouse")
    write_live_tables(lake)
    at = datetime.combine(LAST_DAY, time(5), UTC)
    append_prices(  # Jawa Barat's and Aceh's own averages of rice
        lake, [price("PROV-32", "beras", 15000.0, at), price("PROV-11", "beras", 13000.0, at)]
    )
    upsert_alerts(lake, [alert(f"a{n}", "warning", "DKI Jakarta") for n in range(5)])
    with TestClient(create_app(lake)) as c:
        yield c


def test_live_prices_come_a_page_at_a_time_with_the_total(client: TestClient) -> None:
    everything = client.get(f"{API}/prices/live")
    items = everything.json()
    total = len(LIVE_MARKETS) * len(LIVE_COMMODITIES) + 2
    assert len(items) == int(everything.headers["x-total-count"]) == total
    pages = [
        client.get(f"{API}/prices/live", params={"limit": 5, "offset": offset})
        for offset in range(0, total, 5)
    ]
    assert [i for p in pages for i in p.json()] == items  # the same order, nothing twice
    assert {p.headers["x-total-count"] for p in pages} == {str(total)}
    jakarta_pusat = client.get(f"{API}/prices/live", params={"regency": "31.71"})
    assert {i["market_id"] for i in jakarta_pusat.json()} == {"IP-003"}  # IP-001: Jakarta Timur
    by_name = client.get(f"{API}/prices/live", params={"regency": "kota bandung"})
    assert by_name.status_code == 200 and by_name.json() == []  # a regency without prices
    unknown = client.get(f"{API}/prices/live", params={"regency": "Atlantis"})
    assert unknown.status_code == 404 and "unknown regency 'Atlantis'" in unknown.json()["detail"]


def test_markets_page_and_filter_by_province_regency_and_kind(client: TestClient) -> None:
    everything = client.get(f"{API}/markets")
    assert (
        len(everything.json()) == int(everything.headers["x-total-count"]) == len(SHIPPED.markets)
    )
    first = everything.json()[0]
    assert {"regency_code", "regency"} <= first.keys()
    ip001 = next(m for m in everything.json() if m["market_id"] == "IP-001")
    assert ip001["regency_code"] == "31.75" and ip001["regency"].endswith("Jakarta Timur")
    page = client.get(f"{API}/markets", params={"province": "jabar", "limit": 2, "offset": 1})
    jabar = [m for m in everything.json() if m["province"] == "Jawa Barat"]
    assert page.json() == jabar[1:3] and page.headers["x-total-count"] == str(len(jabar))
    averages = client.get(f"{API}/markets", params={"kind": "aggregate"}).json()
    assert len(averages) == len(SHIPPED.provinces) + 1  # every province's, the nation's
    regency = client.get(f"{API}/markets", params={"regency": "31.71"}).json()
    assert {m["regency_code"] for m in regency} == {"31.71"} and len(regency) > 1


def test_the_map_figure_of_each_province_and_regency(client: TestClient) -> None:
    live = {
        (i["market_id"], i["commodity"]): i["price"]
        for i in client.get(f"{API}/prices/live").json()
    }
    provinces = client.get(f"{API}/prices/regions", params={"commodity": "beras"}).json()
    by_name = {r["name"]: r for r in provinces["items"]}
    assert set(by_name) == {"DKI Jakarta", "Jawa Barat", "Aceh"}
    jabar = by_name["Jawa Barat"]
    jabar_markets = sorted(live[(m, "beras")] for m in LIVE_MARKETS[2:])
    assert jabar["markets"] == 2 and jabar["median"] == sum(jabar_markets) / 2
    assert jabar["average"] == jabar["price"] == 15000.0  # its own average wins
    assert (jabar["code"], jabar["lat"]) == ("32", SHIPPED.provinces["32"].latitude)
    aceh = by_name["Aceh"]  # only its average: a colour all the same
    assert (aceh["markets"], aceh["median"], aceh["price"]) == (0, None, 13000.0)
    jakarta = by_name["DKI Jakarta"]
    assert jakarta["average"] is None and jakarta["price"] == jakarta["median"]
    prices = sorted(r["price"] for r in provinces["items"])
    assert provinces["national_median"] == prices[1]
    regencies = client.get(
        f"{API}/prices/regions", params={"commodity": "beras", "level": "regency"}
    ).json()
    codes = {SHIPPED.markets[m].regency_code for m in LIVE_MARKETS}
    assert {r["code"] for r in regencies["items"]} == codes
    assert all(r["average"] is None and r["markets"] >= 1 for r in regencies["items"])
    missing = client.get(f"{API}/prices/regions", params={"commodity": "durian"})
    assert missing.status_code == 404


def test_alerts_page_with_the_total(client: TestClient) -> None:
    everything = client.get(f"{API}/alerts").json()
    page = client.get(f"{API}/alerts", params={"limit": 2, "offset": 2})
    assert page.headers["x-total-count"] == "5" and len(everything) == 5
    assert [a["alert_id"] for a in page.json()] == [a["alert_id"] for a in everything[2:4]]
