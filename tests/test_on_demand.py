"""Answers on demand: forecasts and anomalies by province and regency, the commodity catalogue
as an endpoint, bad places explained; the price check's verdicts (its agreement with the
pipeline itself: ``tests/test_price_check_pipeline.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import GOLD_ANOMALIES, GOLD_FORECASTS, Table, arrow_schema
from lakehouse.config.settings import Settings
from lakehouse.domain.validation.price_check import HISTORY_FIELDS, check
from serving_api.app import create_app
from serving_api.auth import mint_key
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
        for surabaya in ("35.78", "Kota Surabaya"):  # by official code and name
            assert where("anomalies", regency=surabaya) == [("JI-SBY-KEPUTRAN", "Jawa Timur")]
        assert where("forecasts", regency="Kota Bogor") == [("IP-060", "Jawa Barat")]
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


# ---- the price check ---------------------------------------------------------------------------

NOW = datetime(2026, 3, 20, 5, tzinfo=UTC)  # noon in Jakarta


def history(settings: Settings) -> pd.DataFrame:
    """Three weeks of a steady beras price (±1 %) at two Jakarta markets, daily at 09:00 local."""
    rows = [
        {
            "event_id": f"h-{market}-{day}",
            "market_id": market,
            "commodity": "beras",
            "observed_at": NOW - timedelta(days=day, hours=3),
            "price": 14000.0 * (1 + 0.01 * ((day * 7) % 3 - 1)),
        }
        for market in ("IP-001", "IP-003")
        for day in range(1, 22)
    ]
    return pd.DataFrame(rows, columns=list(HISTORY_FIELDS))


def price(event_id: str, value: float, **change) -> dict:
    return {
        "event_id": event_id, "market_id": "IP-001", "commodity": "beras", "price": value,
        "unit": "kg", "observed_at": NOW - timedelta(hours=1), **change,
    }  # fmt: skip


def test_the_check_gives_accepted_held_and_quarantined_with_reasons_and_baseline(conf_settings):
    conf = conf_of(conf_settings)
    prices = pd.DataFrame(
        [
            price("usual", 14050),
            price("spike", 25500),  # +82 %: the statistical rules hold it
            price("grams", 14.1, unit="g"),  # 14.1 per gram = 14 100 per kg: accepted
            price("nowhere", 14000, market_id="XX-404"),
            price("coffee", 14000, commodity="kopi_luwak"),
            price("cheap", 10, unit="kg"),
            price("litres", 14000, unit="liter"),
            price("tomorrow", 14000, observed_at=NOW + timedelta(days=1)),
        ]
    )
    verdicts = {
        v.event_id: v
        for v in check(prices, history(conf_settings), conf, conf.quality, NOW, conf_settings.tz)
    }
    usual, spike, grams = verdicts["usual"], verdicts["spike"], verdicts["grams"]
    assert (usual.verdict, usual.reasons, usual.flags) == ("accepted", [], [])
    assert usual.baseline == pytest.approx(14000, rel=0.011)
    assert usual.details["history_n"] >= conf.quality.prices.min_history
    assert spike.verdict == "held"
    assert {"zscore", "iqr", "median_deviation"} <= set(spike.reasons) <= set(spike.flags)
    assert spike.move == pytest.approx(25500 / spike.baseline - 1)
    assert (grams.verdict, grams.price, grams.unit) == ("accepted", 14100, "kg")
    assert {
        k: (v.verdict, v.reasons) for k, v in verdicts.items() if v.verdict == "quarantined"
    } == {
        "nowhere": ("quarantined", ["unknown_market"]),
        "coffee": ("quarantined", ["unknown_commodity"]),
        "cheap": ("quarantined", ["price_out_of_range"]),
        "litres": ("quarantined", ["unit_mismatch"]),
        "tomorrow": ("quarantined", ["future_timestamp"]),
    }
    # without history the statistical rules abstain: the spike passes, as in the pipeline
    alone = check(prices[:2], history(conf_settings)[:0], conf, conf.quality, NOW, conf_settings.tz)
    assert [v.verdict for v in alone] == ["accepted", "accepted"]


def test_the_check_endpoint_needs_an_ingest_key_and_publishes_nothing(settings, tmp_path: Path):
    key, entry = mint_key("partner", "ingest")
    own = with_api(settings, tmp_path / "lakehouse", keys=[entry])
    body = [{**price("a", 14050), "observed_at": datetime.now(UTC).isoformat(), "source": "t"}]
    body[0]["event_id"] = "6b0e0c5e-0000-4000-8000-0000000000aa"
    with TestClient(create_app(own)) as c:
        assert c.post(f"{API}/validation/price/check", json=body).status_code == 401
        answer = c.post(f"{API}/validation/price/check", json=body, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        [verdict] = answer.json()["verdicts"]
        assert (verdict["event_id"], verdict["verdict"]) == (body[0]["event_id"], "accepted")
        bad = c.post(f"{API}/validation/price/check", json=[], headers={"X-API-Key": key})
        assert bad.status_code == 422
        far = [{**body[0], "observed_at": "2263-01-01T00:00:00Z"}]  # found by the fuzzer: a 500
        beyond = c.post(f"{API}/validation/price/check", json=far, headers={"X-API-Key": key})
        assert beyond.status_code == 422 and "outside the times" in beyond.text
