"""Answers on demand: forecasts and anomalies by province and regency, the commodity catalogue
as an endpoint, bad places explained."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import GOLD_ANOMALIES, GOLD_FORECASTS, Table, arrow_schema
from lakehouse.config.settings import Settings
from serving_api.app import create_app
from tests.api_samples import API, with_api

#: (market, province) of the rows planted: Bogor and Bandung in Jawa Barat, Surabaya, and Jawa
#: Barat's own series (no market)
PLACES = [
    ("IP-060", "Jawa Barat"),
    ("JB-BDG-KOSAMBI", "Jawa Barat"),
    ("JI-SBY-KEPUTRAN", "Jawa Timur"),
    (None, "Jawa Barat"),
]


def plant(settings: Settings, table: Table, rows: list[dict]) -> None:
    schema = arrow_schema(table)
    full = [{c: None for c in schema.names} | r for r in rows]
    write_deltalake(table.path(settings), pa.Table.from_pylist(full, schema=schema))


def test_forecasts_and_anomalies_filter_by_province_and_regency(settings, tmp_path: Path):
    own = with_api(settings, tmp_path / "lakehouse")
    day = date(2026, 3, 2)
    plant(
        own,
        GOLD_FORECASTS,
        [
            {
                "series_id": f"{m or p}|beras", "series_kind": "market" if m else "region",
                "market_id": m, "region": p, "commodity": "beras", "origin_date": day,
                "target_date": day, "horizon": 1, "yhat": 14000.0,
            }
            for m, p in PLACES
        ],
    )  # fmt: skip
    plant(
        own,
        GOLD_ANOMALIES,
        [
            {
                "market_id": m, "region": p, "commodity": "beras", "date": day, "score": 0.9,
                "kind": "temporal", "price": 14000.0, "explanation": "far above the usual",
            }
            for m, p in PLACES
            if m
        ],
    )  # fmt: skip
    with TestClient(create_app(own)) as c:

        def where(path: str, **params: str) -> list[tuple]:
            answer = c.get(f"{API}/{path}", params=params)
            assert answer.status_code == 200, answer.text
            return sorted((r["market_id"] or "", r["region"]) for r in answer.json())

        assert len(where("forecasts")) == 4
        assert where("forecasts", province="jabar") == [
            ("", "Jawa Barat"),
            ("IP-060", "Jawa Barat"),
            ("JB-BDG-KOSAMBI", "Jawa Barat"),
        ]
        assert where("forecasts", province="32", regency="bogor") == [("IP-060", "Jawa Barat")]
        assert where("forecasts", province="Jawa Timur", regency="Bogor") == []
        assert where("anomalies", regency="Surabaya") == [("JI-SBY-KEPUTRAN", "Jawa Timur")]
        assert len(where("anomalies", province="Jawa Barat")) == 2
        for path, params in (
            ("forecasts", {"regency": "Gotham"}),
            ("anomalies", {"province": "X"}),
        ):
            answer = c.get(f"{API}/{path}", params=params)
            assert answer.status_code == 404 and answer.json()["choices"], answer.text


def test_the_commodity_catalogue_is_an_endpoint(settings, tmp_path: Path):
    own = with_api(settings, tmp_path / "lakehouse")
    with TestClient(create_app(own)) as c:
        answer = c.get(f"{API}/commodities")
    assert answer.status_code == 200
    catalogue = conf_of(own).commodities
    by_id = {row["id"]: row for row in answer.json()}
    assert list(by_id) == list(catalogue)
    assert by_id["beras"] | {"aliases": []} == {
        "id": "beras",
        "name": "Beras Medium",
        "name_en": "Medium rice",
        "unit": "kg",
        "min_price": catalogue["beras"].min_price,
        "max_price": catalogue["beras"].max_price,
        "aliases": [],
    }
