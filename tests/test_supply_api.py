"""Supply chain without services: the entity registry over HTTP, the route analysis and its
bad input, the reference data (issue 35)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from lakehouse.catalog.reference import island_of, regencies
from lakehouse.config.settings import Settings
from lakehouse.domain.supply_chain.supply import reference_entities
from lakehouse.domain.supply_chain.supply_routes import (
    FACTORS,
    MIN_FIT_SHIPMENTS,
    RULE_HOURS,
    PastShipment,
    analyze,
    fit_hours,
    holiday_score,
    training_samples,
    weights,
)
from producers.supply_csv import read_supply_csv, supply_kind
from serving_api.app import create_app
from serving_api.auth import mint_key
from tests.shipped import SHIPPED

API = "/api/v1/supply"


@pytest.fixture
def api(conf_settings: Settings, tmp_path: Path):
    operator_key, operator = mint_key("logistics", "operator")
    ingest_key, ingest = mint_key("bulog-wms", "ingest")
    own = conf_settings.model_copy(
        update={
            "paths": conf_settings.paths.model_copy(
                update={"data_dir": tmp_path, "lakehouse_root": tmp_path / "lakehouse"}
            ),
            "api": conf_settings.api.model_copy(update={"keys": [operator, ingest]}),
        }
    )
    with TestClient(create_app(own)) as client:
        client.headers["X-API-Key"] = operator_key
        client.ingest_key = ingest_key
        yield client


def test_reference_entities_sit_at_their_regency_centroid():
    entities = reference_entities(SHIPPED)
    assert {e.kind for e in entities.values()} == {
        "warehouse",
        "distributor",
        "farmer_group",
        "market",
    }
    for entity in entities.values():
        regency = regencies()[entity.regency_code]
        assert (entity.latitude, entity.longitude) == (regency.latitude, regency.longitude)
    assert island_of("32") == island_of("31") == "Jawa"
    assert island_of("73") == "Sulawesi" and island_of("51") == "Bali"


def test_entity_registry_crud(api: TestClient):
    seeded = api.get(f"{API}/entities").json()
    assert {e["entity_id"] for e in seeded} == set(reference_entities(SHIPPED))
    body = {
        "entity_id": "WH-3204-TEST",
        "name": "Gudang Uji",
        "kind": "warehouse",
        "regency_code": "32.04",
        "commodities": ["beras"],
    }
    created = api.post(f"{API}/entities", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["province"] == "Jawa Barat"
    assert api.post(f"{API}/entities", json=body).status_code == 409
    bad = api.post(f"{API}/entities", json={**body, "entity_id": "X1", "regency_code": "99.99"})
    assert bad.status_code == 422 and "regency" in bad.json()["detail"]
    unknown = api.post(f"{API}/entities", json={**body, "entity_id": "X2", "commodities": ["x"]})
    assert unknown.status_code == 422 and "unknown" in unknown.json()["detail"]
    changed = api.patch(
        f"{API}/entities/WH-3204-TEST", json={"commodities": ["beras", "gula_pasir"]}
    )
    assert changed.json()["commodities"] == ["beras", "gula_pasir"]
    assert api.delete(f"{API}/entities/WH-3204-TEST").status_code == 204
    assert api.get(f"{API}/entities/WH-3204-TEST").status_code == 404
    assert api.get(f"{API}/stock/WH-3204-TEST").status_code == 404


def test_route_analysis_names_weighted_factors(api: TestClient):
    answer = api.get(
        f"{API}/route/analyze",
        params={"origin": "FG-3215-KRWG", "destination": "73.71", "departure": "2025-03-24"},
    )
    assert answer.status_code == 200, answer.text
    route = answer.json()
    assert route["sea_crossing"] is True and route["sea_km"] > 0
    assert [f["name"] for f in route["factors"]] == list(FACTORS)
    assert sum(f["weight"] for f in route["factors"]) == pytest.approx(100)
    assert 0 <= route["delay_risk"] <= 100
    assert route["transit_hours"] > 0 and route["distance_km"] > 1000
    by_id = api.get(f"{API}/route/analyze", params={"route_id": "32.15>31.72", "distance_km": 90})
    assert by_id.json()["distance_km"] == 90 and by_id.json()["sea_crossing"] is False


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"origin": "NOWHERE", "destination": "31.71"}, 404),
        ({"route_id": "32.15>99.99"}, 404),
        ({"origin": "32.15", "destination": "31.71", "distance_km": 0}, 422),
        ({"origin": "32.15", "destination": "31.71", "distance_km": -5}, 422),
        ({"origin": "32.15"}, 422),
        ({"origin": "32.15", "destination": "31.71", "distance_km": 1e300}, 422),
        ({"origin": "32.15", "destination": "31.71", "departure": "9999-12-31"}, 422),
        ({"route_id": "32.15"}, 422),
        ({"origin": "32.15", "destination": "31.71", "commodity": "durian"}, 404),
    ],
)
def test_route_analysis_refuses_bad_input_with_a_message(api: TestClient, params, code):
    answer = api.get(f"{API}/route/analyze", params=params)
    assert answer.status_code == code
    assert answer.json()["detail"]


def test_stock_views_answer_before_any_data(api: TestClient):
    assert api.get(f"{API}/stock/WH-3212-BULOG").json()["commodities"] == []
    assert api.get(f"{API}/stock", params={"commodity": "beras"}).json() == []
    assert api.get(f"{API}/stock", params={"region": "Atlantis"}).status_code == 404
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/supply/stock/{entity_id}", "/api/v1/supply/stock"} <= set(paths)


def test_delay_hours_are_fitted_once_history_allows(conf_settings: Settings):
    routes = ["32.15>31.72", "73.08>73.71", "32.12>73.71"]
    history = [
        PastShipment(routes[i % 3], date(2025, 1, 1 + i % 28), 10.0, 30.0 if i % 3 == 2 else 2.0)
        for i in range(MIN_FIT_SHIPMENTS + 6)
    ]
    hours, fitted = fit_hours(training_samples(history))
    assert fitted and hours["sea_crossing"] > hours["rainfall"]
    assert fit_hours(training_samples(history[:5])) == (RULE_HOURS, False)
    assert sum(weights(hours).values()) == pytest.approx(100)
    route = analyze(
        regencies()["32.12"], regencies()["73.71"], date(2025, 2, 1), history, conf_settings.supply
    )
    assert route["weights_fitted"] and route["fitted_on_shipments"] == len(history)


def test_holidays_and_the_weeks_before_lebaran_raise_the_score():
    assert holiday_score(date(2025, 3, 31), 1) == 1.0  # Idul Fitri 2025
    assert holiday_score(date(2025, 3, 20), 1) == 0.7  # the weeks before it
    assert holiday_score(date(2025, 7, 8), 1) == 0.0


def test_supply_csv_files_are_recognised_by_their_header(tmp_path: Path):
    stock = tmp_path / "stock.csv"
    stock.write_text(
        "entity_id;commodity;quantity;observed_at\n"
        "WH-3212-BULOG;Beras Medium;1250000;2025-03-21 18:00\n"
        "WH-3212-BULOG;beras;banyak;2025-03-21 18:00\n",
        encoding="utf-8",
    )
    shipment = tmp_path / "shipments.csv"
    shipment.write_text(
        "shipment_id,commodity,quantity,origin_id,destination_id,departed_at,expected_at,arrived_at\n"
        "S-1,beras,20000,FG-3215-KRWG,WH-3172-BULOG,2025-03-21 06:00,2025-03-21 12:00,"
        "2025-03-21 14:30\n",
        encoding="utf-8",
    )
    prices = tmp_path / "prices.csv"
    prices.write_text("market_id,commodity,price,observed_at\nIP-001,beras,14000,2025-03-21\n")
    assert (supply_kind(stock), supply_kind(shipment), supply_kind(prices)) == (
        "stock",
        "shipment",
        None,
    )
    found = read_supply_csv(stock, ZoneInfo("Asia/Jakarta"), SHIPPED)
    (event,) = found.events
    assert event.commodity == "beras" and event.observed_at.utcoffset() == timedelta(hours=7)
    assert [(line, "quantity" in reason) for line, _, reason in found.rejected] == [(3, True)]
    (moved,) = read_supply_csv(shipment, ZoneInfo("Asia/Jakarta"), SHIPPED).events
    assert moved.observed_at == moved.arrived_at  # an arrival report


def test_supply_events_are_checked_before_kafka(api: TestClient):
    stock = {
        "event_type": "stock",
        "entity_id": "WH-3212-BULOG",
        "commodity": "beras",
        "quantity": 1000,
        "observed_at": "2025-03-21T18:00:00+07:00",
        "source": "test",
    }
    assert api.post(f"{API}/events", json=stock).status_code == 403  # an operator may not ingest
    ingest = {"X-API-Key": api.ingest_key}
    assert api.post(f"{API}/events", json=[], headers=ingest).status_code == 422
    wrong = api.post(f"{API}/events", json={**stock, "event_type": "price"}, headers=ingest)
    assert wrong.status_code == 422
    missing = api.post(f"{API}/events", json={**stock, "entity_id": None}, headers=ingest)
    assert missing.status_code == 422 and "entity_id" in missing.json()["detail"]
