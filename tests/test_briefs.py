"""Weekly briefs: planted gold and silver rows of Jawa Barat, the brief fetched from the API as
CSV, XLSX and PDF and opened (cells read with openpyxl, text extracted with pypdf), every figure
equal to what the planted tables say; bad provinces and weeks answered with a 4xx; the board's
buttons download it in a real browser."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pypdf import PdfReader

from lakehouse.catalog.tables import (
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_HOLDS,
    SILVER_NEWS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    Table,
    arrow_schema,
)
from lakehouse.domain.briefs.brief import Week
from lakehouse.domain.briefs.brief_files import percent, rupiah
from serving_api.app import create_app
from serving_api.routers.reports import warm_up_briefs
from tests.api_samples import API, with_api
from tests.browser import chromium, open_page, serving, watch

WEEK = Week(2026, 9)  # 23 February – 1 March 2026
MARKETS = {"IP-060": 1.0, "JB-BDG-KOSAMBI": 1.1, "JB-CRB-KANOMAN": 0.9}  # Jawa Barat
ELSEWHERE = "JI-SBY-KEPUTRAN"  # Jawa Timur: never in the brief
BASE = {"beras": 14_000.0, "cabai_merah": 50_000.0}
#: the level of each week against the base, and one market's own move this week
WEEKS = {WEEK: 1.05, WEEK.before(): 1.0, WEEK.year_before(): 0.95}
MOVER = ("JB-CRB-KANOMAN", "cabai_merah", 1.3)


def close(market: str, commodity: str, week: Week, day: int) -> float:
    extra = MOVER[2] if (market, commodity, week) == (*MOVER[:2], WEEK) else 1.0
    return BASE[commodity] * MARKETS.get(market, 2.0) * WEEKS[week] * extra * (1 + 0.01 * day)


def write(settings, table: Table, rows: list[dict], typed: bool = False, **options) -> None:
    if typed:
        schema = arrow_schema(table)
        data = pa.Table.from_pylist([{c: None for c in schema.names} | r for r in rows], schema)
    else:
        data = pa.Table.from_pylist(rows)
    write_deltalake(table.path(settings), data, **options)


def at(day: date, hour: int = 3) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)  # 10:00 in Jakarta


def plant(settings) -> None:
    daily = [
        {"market_id": m, "commodity": c, "region": "Jawa Barat", "date": w.start + timedelta(d),
         "close": close(m, c, w, d)}
        for w in WEEKS for m in [*MARKETS, ELSEWHERE] for c in BASE for d in range(7)
    ]  # fmt: skip
    write(settings, GOLD_PRICE_DAILY, daily)
    forecast = {"region": "Jawa Barat", "commodity": "beras", "target_date": WEEK.end}
    write(
        settings,
        GOLD_FORECASTS,
        [
            forecast | {"series_id": "IP-060|beras", "origin_date": WEEK.end - timedelta(2),
                        "surge_prob": 0.3},
            forecast | {"series_id": "IP-060|beras", "origin_date": WEEK.end - timedelta(4),
                        "surge_prob": 0.9},  # an older origin: not the newest
            forecast | {"series_id": "Jawa Barat|beras", "origin_date": WEEK.end - timedelta(2),
                        "surge_prob": 0.6},
            forecast | {"series_id": "Jawa Timur|beras", "origin_date": WEEK.end,
                        "surge_prob": 0.99, "region": "Jawa Timur"},
        ],
        typed=True,
    )  # fmt: skip
    write(
        settings,
        GOLD_SUPPLY_REGION_DAILY,
        [
            {"province": "Jawa Barat", "commodity": "beras", "date": WEEK.end - timedelta(1),
             "days_of_cover": 4.5},
            {"province": "Jawa Barat", "commodity": "beras", "date": WEEK.end,
             "days_of_cover": 3.2},
            {"province": "Bali", "commodity": "beras", "date": WEEK.end, "days_of_cover": 0.5},
        ],
        typed=True,
    )  # fmt: skip
    monday = WEEK.start
    write(
        settings,
        SILVER_PRICES,
        [
            {"event_id": f"p{i}", "market_id": "IP-060", "commodity": "beras",
             "observed_at": at(monday), "observed_date": monday}
            for i in range(8)
        ] + [{"event_id": "p-sby", "market_id": ELSEWHERE, "commodity": "beras",
              "observed_at": at(monday), "observed_date": monday}],
        partition_by=["observed_date"],
    )  # fmt: skip
    write(
        settings,
        SILVER_QUARANTINE,
        [
            {"event_id": q, "event_type": "price", "market_id": "IP-060", "subject": "beras",
             "observed_at": at(monday)}
            for q in ("q-held", "q-hard")
        ],
    )  # fmt: skip
    write(
        settings,
        SILVER_HOLDS,
        [{"event_id": "q-held", "market_id": "IP-060", "observed_at": at(monday)}],
    )
    news = {"source": "Antara", "mentions": [{"commodity": "beras", "direction": "up"}]}
    write(
        settings,
        SILVER_NEWS,
        [
            news | {"event_id": "n1", "title": "Harga beras di Bogor naik",
                    "published_at": at(monday, 4), "province": "Jawa Barat"},
            news | {"event_id": "n2", "title": "Stok beras nasional “aman” — Bulog",
                    "published_at": at(monday + timedelta(2)), "province": None},
            news | {"event_id": "n3", "title": "Beras di Surabaya naik",
                    "published_at": at(monday), "province": "Jawa Timur"},
            news | {"event_id": "n4", "title": "Beras naik pekan lalu",
                    "published_at": at(monday - timedelta(3)), "province": "Jawa Barat"},
        ],
        typed=True,
    )  # fmt: skip


def expected_level(commodity: str, week: Week) -> float:
    closes = [close(m, commodity, week, d) for m in MARKETS for d in range(7)]
    return sum(closes) / len(closes)


@pytest.fixture
def client(settings, tmp_path: Path):
    own = with_api(settings, tmp_path / "lakehouse")
    plant(own)
    with TestClient(create_app(own)) as c:
        yield c


def get(client: TestClient, fmt: str, lang: str = "id", **params) -> bytes:
    query = {"province": "jabar", "week": str(WEEK), "format": fmt, "lang": lang, **params}
    answer = client.get(f"{API}/reports/brief", params=query)
    assert answer.status_code == 200, answer.text
    assert f"brief-Jawa_Barat-{WEEK}.{fmt}" in answer.headers["content-disposition"]
    return answer.content


def test_the_brief_s_figures_are_the_tables_in_every_format(client):
    beras = expected_level("beras", WEEK)
    change_week = beras / expected_level("beras", WEEK.before()) - 1
    change_year = beras / expected_level("beras", WEEK.year_before()) - 1

    rows = list(csv.DictReader(io.StringIO(get(client, "csv", "en").decode())))
    by_name = {r["Commodity"]: r for r in rows}
    assert sorted(by_name) == ["Big red chili", "Medium rice"]
    rice = by_name["Medium rice"]
    assert float(rice["Average price (Rp)"]) == pytest.approx(beras)
    assert float(rice["vs last week"]) == pytest.approx(change_week)
    assert float(rice["vs last year"]) == pytest.approx(change_year)
    assert float(rice["Surge probability next week"]) == pytest.approx(0.6)
    assert float(rice["Stock cover (days)"]) == pytest.approx(3.2)
    assert (rice["Reports"], float(rice["Held"]), float(rice["Quarantined"])) == ("10", 0.1, 0.1)
    assert rice["Headlines"] == (
        "Stok beras nasional “aman” — Bulog (Antara); Harga beras di Bogor naik (Antara)"
    )
    chili = by_name["Big red chili"]
    assert chili["Markets that moved most"].startswith(
        "Pasar Kanoman (Cirebon) +36.5%; Pasar Sukasari (Bogor) +5.0%"
    )
    assert (chili["Surge probability next week"], chili["Reports"], chili["Held"]) == ("", "0", "")

    book = load_workbook(io.BytesIO(get(client, "xlsx")))
    sheet = book.worksheets[0]
    assert sheet["A1"].value.startswith("Ringkasan mingguan harga pangan — Jawa Barat, minggu")
    header = [c.value for c in sheet[2]]
    cells = {
        r[0].value: dict(zip(header, (c.value for c in r), strict=True))
        for r in sheet.iter_rows(min_row=3)
    }
    assert cells["Beras Medium"]["Harga rata-rata (Rp)"] == pytest.approx(beras)
    assert cells["Beras Medium"]["vs minggu lalu"] == pytest.approx(change_week)
    assert cells["Beras Medium"]["Cakupan stok (hari)"] == pytest.approx(3.2)
    assert len(sheet._charts) == 1
    assert book.worksheets[1].cell(row=2, column=1).value in ("Beras Medium", "Cabai Merah Besar")

    pdf = PdfReader(io.BytesIO(get(client, "pdf")))
    text = " ".join(page.extract_text() for page in pdf.pages)
    for figure in (
        rupiah(beras),
        percent(change_week, "id", signed=True),
        percent(change_year, "id", signed=True),
        "60,0 %",
        "3,2",
        "Stok beras nasional “aman” — Bulog",
        "Pasar Kanoman (Cirebon) +36,5 %",
    ):
        assert figure in text, (figure, text[:2000])
    assert "Beras di Surabaya" not in text and "pekan lalu" not in text


def test_the_api_loads_the_renderers_once_it_has_started(settings, tmp_path: Path):
    """The first brief after a start does not pay for the renderers: the API's start loads
    them on a thread of their own (once a process), by rendering a brief in every format."""
    warm_up_briefs.cache_clear()
    with TestClient(create_app(with_api(settings, tmp_path / "lakehouse"))):
        assert warm_up_briefs.cache_info().currsize == 1  # started by the lifespan
        warming = warm_up_briefs()
        warming.join(timeout=120)
        assert not warming.is_alive()


def test_bad_provinces_and_weeks_are_a_4xx(client):
    for params, code in (
        ({"province": "Atlantis"}, 404),
        ({"week": "2026-W60"}, 422),
        ({"week": "next tuesday"}, 422),
        ({"week": str(Week.of(date.today() + timedelta(days=14)))}, 422),
        ({"format": "docx"}, 422),
    ):
        query = {"province": "Jawa Barat", "week": str(WEEK), **params}
        answer = client.get(f"{API}/reports/brief", params=query)
        assert answer.status_code == code, (params, answer.text)
    empty = client.get(f"{API}/reports/brief", params={"province": "Bali", "week": "2026-02-25"})
    assert empty.status_code == 200 and empty.content.startswith(b"%PDF")


def test_the_board_s_button_downloads_the_brief_of_its_province(settings, tmp_path: Path):
    own = with_api(settings, tmp_path / "lakehouse")
    plant(own)
    with serving(own) as url, chromium() as browser:
        page = open_page(watch(browser, url))
        assert page.is_disabled("#brief-pdf")  # no province chosen yet
        page.select_option("#board-province", "Jawa Barat")
        with page.expect_download() as pdf:
            page.click("#brief-pdf")
        assert pdf.value.suggested_filename.startswith("brief-Jawa_Barat-")
        assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
        with page.expect_download() as xlsx:
            page.click("#brief-xlsx")
        book = load_workbook(io.BytesIO(Path(xlsx.value.path()).read_bytes()))
        assert book.worksheets[0]["A1"].value.startswith("Ringkasan")
