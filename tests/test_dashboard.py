"""The dashboard at ``GET /`` in a real browser (Debian's Chromium driven by Playwright) against
the real API serving a copy of the ``replayed`` lakehouse; plus the quarantine endpoint it
browses. Screenshots of every page, at desktop and phone width, go to the test's output
folder (printed)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from lakehouse.catalog.events import PriceEvent
from lakehouse.catalog.tables import (
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_LATEST,
    SILVER_QUARANTINE,
    arrow_schema,
)
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.lake import Lakehouse
from ml.impact import fit_if_missing
from serving_api.app import create_app
from serving_api.auth import mint_key
from serving_api.routers.dashboard import BUNDLE_DIR
from streaming_jobs.medallion import silver_query
from tests.api_samples import API, PRICES, alert, price, upsert_alerts, with_api
from tests.browser import DESKTOP, WAIT_MS, chromium, open_page, serving, watch
from tests.conftest import drain
from tests.shipped import SHIPPED

# the first test also waits for the session's replay (minutes on a busy 2-core box)
pytestmark = pytest.mark.timeout(1800)
PAGES = ("board", "map", "series", "alerts", "quality")
PHONE = {"width": 390, "height": 844}
SERIES = ("IP-001", "cabai_merah")  # a series of the replayed PIHPS file


@pytest.fixture(scope="module")
def lakehouse(replayed: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the replayed lakehouse and its checkpoints, which the tests may write to (new
    prices through the pipeline, alerts, forecasts)."""
    if not (BUNDLE_DIR / "main.js").is_file():
        pytest.fail(f"{BUNDLE_DIR} is not built: run ./run.sh setup")
    root = tmp_path_factory.mktemp("dashboard")
    paths = {"lakehouse_root": root / "lakehouse", "checkpoint_root": root / "chk"}
    for name, target in paths.items():
        shutil.copytree(getattr(replayed.paths, name), target)
    own = with_api(replayed, cache_check_ms=0)
    return own.model_copy(
        update={
            "paths": own.paths.model_copy(update=paths),
            "dashboard": own.dashboard.model_copy(update={"poll_seconds": 1.0}),
        }
    )


@pytest.fixture(scope="module")
def url(lakehouse: Settings) -> Iterator[str]:
    with serving(lakehouse) as address:
        yield address


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"dashboard screenshots: {folder}")
    return folder


# ---- the pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_loads_clean_and_stays_local(
    browser: Browser, url: str, shots: Path, viewport: dict[str, int]
) -> None:
    watched = watch(browser, url, viewport)
    page = open_page(watched)
    for name in PAGES:
        page.click(f"#tabs a[data-page={name}]")
        page.wait_for_selector(f"body[data-page={name}]")
        page.wait_for_load_state("networkidle")
        width = "phone" if viewport is PHONE else "desktop"
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=name != "map")
        if viewport is PHONE:  # nothing wider than the phone: no sideways scrolling of the page
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    watched.assert_clean(url)
    page.context.close()


def test_board_shows_the_live_prices_in_rupiah(browser: Browser, url: str) -> None:
    watched = watch(browser, url)
    page = open_page(watched)
    live = page.request.get(f"{API}/prices/live").json()
    assert page.locator("#board tbody tr").count() == len(live) > 0
    row = live[0]
    cells = page.locator(f'#board tr[data-key="{row["market_id"]}|{row["commodity"]}"] td')
    grouped = f"{round(row['price']):,}".replace(",", ".")
    assert cells.nth(2).inner_text().startswith(f"Rp {grouped}")
    assert "WIB" in cells.nth(5).inner_text()
    page.select_option("#board-commodity", row["commodity"])
    same = [r for r in live if r["commodity"] == row["commodity"]]
    assert page.locator("#board tbody tr").count() == len(same)
    watched.assert_clean(url)
    page.context.close()


def test_a_price_produced_to_kafka_appears_without_reload(
    browser: Browser, url: str, lakehouse: Settings, spark
) -> None:
    watched = watch(browser, url)
    page = open_page(watched)
    page.evaluate("window.sameDocument = true")
    key = "IP-030|beras"
    assert page.locator(f'#board tr[data-key="{key}"]').count() == 0
    producer = EventProducer(lakehouse)
    producer.send(
        PriceEvent(
            market_id="IP-030",
            commodity="beras",
            price=14100,
            unit="kg",
            observed_at=datetime.now(UTC),
            source="dashboard-test",
        )
    )
    producer.flush()
    # the silver query, while the page is open: the board follows silver's commits (gold's
    # latest prices come with the pipeline's next gold batch, up to a minute later)
    drain(spark, lakehouse, silver_query)
    row = page.locator(f'#board tr[data-key="{key}"]')
    row.wait_for()
    assert "Rp 14.100" in row.inner_text()
    assert page.evaluate("window.sameDocument") is True
    watched.assert_clean(url)
    page.context.close()


def test_an_empty_board_says_how_to_get_data_in(
    browser: Browser, settings: Settings, tmp_path: Path
) -> None:
    """A first start before any price: the board names the ways in, in both languages."""
    paths = settings.paths.model_copy(update={"lakehouse_root": tmp_path / "lakehouse"})
    empty = with_api(settings.model_copy(update={"paths": paths}), cache_check_ms=0)
    with serving(empty) as address:
        watched = watch(browser, address)
        page = open_page(watched)
        box = page.locator("#board-empty")
        assert box.is_visible() and not page.locator("#board").is_visible()
        assert "Belum ada harga." in box.inner_text()
        for way in ("price_simulator.enabled: false", "./run.sh ingest", "./run.sh watch DIR"):
            assert way in box.inner_text()
        page.click("#lang")
        assert "No prices yet." in box.inner_text()
        assert "docs/ingestion.md" in box.inner_text()
        watched.assert_clean(address)
        page.context.close()


def test_config_names_every_commodity_in_both_languages(conf_settings: Settings) -> None:
    with TestClient(create_app(conf_settings)) as c:
        names = c.get("/dashboard/config.json").json()["commodities"]
    assert set(names) == set(SHIPPED.commodities)
    assert names["cabai_merah"] == ["Cabai Merah Besar", "Big red chili"]


def test_board_and_alerts_name_commodities_in_the_page_language(browser: Browser, url: str) -> None:
    watched = watch(browser, url)
    page = open_page(watched)
    market, commodity = SERIES
    cells = page.locator(f'#board tr[data-key="{market}|{commodity}"] td')
    assert cells.nth(1).inner_text() == "Cabai Merah Besar"
    assert "DKI Jakarta" in cells.nth(0).inner_text()  # the market's province under its name
    page.click("#lang")
    assert cells.nth(1).inner_text() == "Big red chili"
    page.click("#lang")
    watched.assert_clean(url)
    page.context.close()


def test_language_switch(browser: Browser, url: str) -> None:
    watched = watch(browser, url)
    page = open_page(watched)
    assert page.inner_text("h1") == "Harga Pasar Rakyat"
    assert page.inner_text("#tabs a[data-page=quality]") == "Kualitas data"
    page.click("#lang")
    assert page.inner_text("h1") == "Traditional Market Prices"
    assert page.inner_text("#tabs a[data-page=quality]") == "Data quality"
    assert page.get_attribute("html", "lang") == "en"
    assert "prices" in page.inner_text("#board-count")
    watched.settle()  # the re-render's fetches, before the reload
    page.reload()  # the choice is remembered
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("h1") == "Traditional Market Prices"
    page.click("#lang")
    assert page.inner_text("h1") == "Harga Pasar Rakyat"
    watched.assert_clean(url)
    page.context.close()


def test_map_has_one_marker_per_market_and_opens_its_panel(browser: Browser, url: str) -> None:
    watched = watch(browser, url)
    page = open_page(watched, "map")
    placed = [m for m in SHIPPED.markets.values() if m.latitude is not None]
    markers = page.locator("path.market-marker")
    assert markers.count() == len(placed) > 50
    assert page.locator("path.leaflet-interactive").count() == len(placed)  # outlines are inert
    assert page.locator(".leaflet-overlay-pane path").count() > len(placed)  # provinces drawn
    page.locator("#map-commodity").select_option(SERIES[1])
    markers.first.click(force=True)
    panel = page.locator("#market-panel")
    panel.wait_for(state="visible")
    names = {m.name for m in placed}
    assert panel.locator("h2").inner_text() in names
    watched.assert_clean(url)
    page.context.close()


def test_chart_draws_history_forecast_bands_and_alerts(
    browser: Browser, url: str, lakehouse: Settings, shots: Path
) -> None:
    market_id, commodity = SERIES
    closes = page_of_history(url, market_id, commodity)
    last = date.fromisoformat(closes[-1]["period"])
    write_forecast(lakehouse, market_id, commodity, last)
    opened = datetime.combine(last, datetime.min.time(), UTC) + timedelta(hours=3)
    planted = alert("dash-chart", "critical", "DKI Jakarta") | {
        "market_id": market_id,
        "commodity": commodity,
        "opened_at": opened,
        "updated_at": opened,
    }
    upsert_alerts(lakehouse, [planted])
    wait_served(url, "/forecasts", {"market_id": market_id, "commodity": commodity}, bool)

    def with_planted(alerts: list[dict]) -> bool:
        return any(a["alert_id"] == "dash-chart" for a in alerts)

    wait_served(url, "/alerts", {"commodity": commodity, "limit": 1000}, with_planted)
    watched = watch(browser, url)
    page = open_page(watched, f"series/{market_id}/{commodity}")
    page.wait_for_function("document.querySelector('#series-chart').dataset.forecast === '7'")
    page.screenshot(path=str(shots / "series-forecast-desktop.png"))
    canvas = page.locator("#series-chart")
    assert 80 <= int(canvas.get_attribute("data-history")) <= 91  # the last 90 days, by default
    page.select_option("#series-range", "0")
    assert int(canvas.get_attribute("data-history")) == len(closes)
    assert canvas.get_attribute("data-band80") == canvas.get_attribute("data-band95") == "7"
    assert int(canvas.get_attribute("data-alerts")) >= 1
    assert "prophet" in page.inner_text("#series-note")
    # how good it has been, beside it: the backtest against naive, the bands' coverage
    assert "MAPE) 2,1 %, naif 2,5 %" in page.inner_text("#series-note")
    assert "80 %: 80,0 %, 95 %: 95,0 %" in page.inner_text("#series-note")
    assert canvas.get_attribute("data-backtest") == "2.14"
    assert canvas.get_attribute("data-surge") == "0.62"  # the surge warning is marked ...
    assert canvas.get_attribute("data-surge-warned") == "true"  # ... red: at its own threshold
    assert "peringatan mulai 55 %" in page.inner_text("#series-note")  # and why
    assert "Mengapa: surge classifier 0.62 (warns at ≥ 0.55)" in page.inner_text("#series-note")
    watched.assert_clean(url)
    page.context.close()


def test_the_impact_view_names_a_factor_only_when_the_model_earned_it(
    browser: Browser, conf_settings: Settings, tmp_path: Path
) -> None:
    """Under the chart, a critical alert's impact: the dominant factor where the commodity's
    model passes its hold-out bar (shallot, at a lenient impact.min_explained_r2); "mostly
    unexplained" with the hold-out R², the bars greyed and no factor named where it does not
    (red chili, whose MAPE is above naive's at any bar) — in the page's language."""
    paths = {"data_dir": tmp_path, "lakehouse_root": tmp_path / "lakehouse"}
    own = conf_settings.model_copy(
        update={
            "paths": conf_settings.paths.model_copy(update=paths),
            "impact": conf_settings.impact.model_copy(update={"min_explained_r2": -1.0}),
        }
    )
    own = with_api(own, cache_check_ms=0)
    assert fit_if_missing(own) is not None  # a first start's model, of the shipped data
    market, day = "PIHPS-AGG", date(2025, 2, 12)
    write_series(own, market, ("bawang_merah", "cabai_merah"), day)
    opened = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=3)
    upsert_alerts(
        own,
        [
            alert(f"impact-{commodity}", "critical", "Indonesia")
            | {"market_id": market, "commodity": commodity, "opened_at": opened}
            for commodity in ("bawang_merah", "cabai_merah")
        ],
    )
    with serving(own) as address:
        watched = watch(browser, address)
        page = open_page(watched, f"series/{market}/cabai_merah")
        box = page.locator("#impact[data-status=mostly_unexplained]")
        box.wait_for()
        where = {"commodity": "cabai_merah", "market_id": market, "date": day.isoformat()}
        fit = page.request.get(f"{API}/impact", params=where).json()["fit"]
        r2 = f"{fit['r2']:.2f}"
        title = box.locator("h3").inner_text()
        assert f"sebagian besar tidak terjelaskan (R² uji {r2.replace('.', ',')})" in title
        assert "dominan" not in title
        assert "tidak lebih baik dari naif" in box.locator(".verdict").inner_text()
        assert box.locator(".bar").count() == 7  # the weights stay, greyed
        page.click("#lang")
        page.wait_for_function(
            "document.querySelector('#impact h3').innerText.includes('mostly unexplained')"
        )
        assert f"mostly unexplained (hold-out R² {r2})" in box.locator("h3").inner_text()
        assert "no better than naive" in box.locator(".verdict").inner_text()
        page.click("#lang")

        page = open_page(watched, f"series/{market}/bawang_merah")
        box = page.locator("#impact[data-status=explained]")
        box.wait_for()
        where["commodity"] = "bawang_merah"
        dominant = page.request.get(f"{API}/impact", params=where).json()["dominant_factor"]
        assert dominant and f"faktor dominan {dominant}" in box.locator("h3").inner_text()
        assert box.locator(".verdict").inner_text().startswith(f"Faktor dominan: {dominant}.")
        watched.assert_clean(address)
        page.context.close()


def test_a_planted_alert_appears_in_the_feed(
    browser: Browser, url: str, lakehouse: Settings
) -> None:
    watched = watch(browser, url)
    page = open_page(watched, "alerts")
    assert page.locator('[data-alert="dash-feed"]').count() == 0
    upsert_alerts(lakehouse, [alert("dash-feed", "critical", "DKI Jakarta")])
    item = page.locator('[data-alert="dash-feed"]')
    item.wait_for()
    assert "Harga naik" in item.inner_text() and "kritis" in item.inner_text().lower()
    # the page's language is the messages': a switch asks the API for them in English, and the
    # WebSocket pushes the next ones in English too
    page.click("#lang")
    page.wait_for_function(
        "document.querySelector('[data-alert=\"dash-feed\"]')?.innerText.includes('Price up')"
    )
    upsert_alerts(lakehouse, [alert("dash-feed-en", "warning", "DKI Jakarta")])
    pushed = page.locator('[data-alert="dash-feed-en"]')
    pushed.wait_for()
    assert "Price up" in pushed.inner_text() and "Harga naik" not in pushed.inner_text()
    assert any("/alerts?" in u and "lang=en" in u for u in watched.requested)
    watched.assert_clean(url)
    page.context.close()


def test_quality_page_browses_the_quarantine(browser: Browser, url: str) -> None:
    watched = watch(browser, url)
    page = open_page(watched, "quality")
    page.wait_for_selector("#quality-sources tbody tr")
    total = page.request.get(f"{API}/quarantine", params={"limit": 1}).json()["total"]
    assert total > 0
    rows = page.locator("#quarantine tbody tr")
    rows.first.wait_for()
    assert rows.count() == min(total, 20)
    assert f"{total}" in page.inner_text("#q-page")
    watched.assert_clean(url)
    page.context.close()


def test_a_tab_whose_first_answer_failed_says_so_and_loads_when_shown_again(
    browser: Browser, url: str
) -> None:
    """The Supply tab once stayed blank for good after one failed answer (its set-up kept as
    failed): the error shows on the tab, and the tab is set up again the next time it is shown."""
    watched = watch(browser, url)
    page = open_page(watched)
    page.route("**/api/v1/supply/stock*", lambda route: route.fulfill(status=500, body="{}"))
    page.goto("/#supply")
    page.wait_for_selector("#page-supply > p[data-setup-error]")
    assert page.evaluate("document.body.dataset.page") == "board"
    page.unroute("**/api/v1/supply/stock*")
    page.goto("/#board")
    page.goto("/#supply")
    page.wait_for_selector("body[data-page=supply]")
    assert page.locator("#page-supply > p[data-setup-error]").count() == 0
    assert page.locator("#supply-map.leaflet-container").count() == 1
    for own in ("#brief-error", "#ops-error"):  # the pages' own error lines stay
        assert page.locator(own).count() == 1, own
    page.goto("/#ops")
    page.wait_for_selector("body[data-page=ops]")
    assert page.locator("#ops-error").count() == 1
    page.context.close()


def test_the_page_asks_for_a_key_when_reads_need_one(browser: Browser, lakehouse: Settings) -> None:
    key, entry = mint_key("dashboard-test", "reader")
    closed = with_api(lakehouse, open_reads=False, keys=[entry])
    with serving(closed) as base:
        context = browser.new_context(base_url=base)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto("/")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", "smk_wrong")
        page.click("#key-form button")
        page.wait_for_selector("#key-dialog[open] #key-error:not([hidden])")
        page.fill("#key-input", key)
        page.click("#key-form button")
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#board tbody tr").count() > 0
        page.reload()  # kept for the session: not asked again
        page.wait_for_selector("body[data-ready=true]")
        assert not page.locator("#key-dialog").evaluate("d => d.open")
        context.close()


# ---- helpers and the quarantine endpoint -----------------------------------------------------


def page_of_history(url: str, market_id: str, commodity: str) -> list[dict]:
    with httpx.Client(base_url=url) as client:
        answer = client.get(
            f"{API}/prices/history",
            params={"market_id": market_id, "commodity": commodity, "limit": 1000},
        ).json()
    assert answer["next_cursor"] is None
    return answer["items"]


def wait_served(url: str, path: str, params: dict, done: Callable[[Any], bool]) -> None:
    """Ask until the API's answer is ``done``: the first request after a new Delta version is
    answered from the previous one while the view is rebuilt (stale-while-revalidate)."""
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url) as client:
        while not done(client.get(f"{API}{path}", params=params).json()):
            assert time.monotonic() < deadline, f"{path} did not serve the new rows"
            time.sleep(0.1)


def write_series(
    settings: Settings, market_id: str, commodities: tuple[str, ...], last: date, days: int = 28
) -> None:
    """What gold holds of a few series of one market: ``days`` daily closes up to ``last`` and
    the newest price (which lists the series under the market)."""
    region = SHIPPED.markets[market_id].province
    daily = [
        {"market_id": market_id, "commodity": c, "region": region, "date": last - timedelta(d)}
        | dict.fromkeys(("open", "high", "low", "close", "mean"), 30000.0 + 100 * d)
        | {"count": 1}
        for c in commodities
        for d in range(days)
    ]
    write_deltalake(str(GOLD_PRICE_DAILY.path(settings)), pa.Table.from_pylist(daily))
    noon = datetime.combine(last, datetime.min.time(), UTC) + timedelta(hours=5)
    latest = [price(market_id, c, 30000.0, noon) for c in commodities]
    write_deltalake(
        str(GOLD_PRICE_LATEST.path(settings)), pa.Table.from_pylist(latest, schema=PRICES)
    )


def write_forecast(settings: Settings, market_id: str, commodity: str, origin: date) -> None:
    """What ``./run.sh retrain`` writes for one series: 7 days with both intervals."""
    rows = [
        {
            "series_id": f"{market_id}:{commodity}",
            "series_kind": "market",
            "market_id": market_id,
            "region": "DKI Jakarta",
            "commodity": commodity,
            "origin_date": origin,
            "target_date": origin + timedelta(days=h),
            "horizon": h,
            "yhat": 40000.0 + 100 * h,
            "yhat_lower_80": 38000.0,
            "yhat_upper_80": 42000.0 + 100 * h,
            "yhat_lower_95": 36000.0,
            "yhat_upper_95": 44000.0 + 200 * h,
            "surge_prob": 0.62,
            "surge_warn_at": 0.55,
            "surge_because": "surge classifier 0.62 (warns at ≥ 0.55): ret_7 +8.3% (+0.91)",
            "backtest_mape": 2.14,
            "naive_mape": 2.5,
            "coverage_80": 0.8,
            "coverage_95": 0.95,
            "model_name": "prophet",
            "model_version": "1",
            "run_id": "0" * 32,
            "data_version": 1,
            "created_at": datetime.now(UTC),
        }
        for h in range(1, 8)
    ]
    table = pa.Table.from_pylist(rows, schema=arrow_schema(GOLD_FORECASTS))
    write_deltalake(str(GOLD_FORECASTS.path(settings)), table, mode="append")


def test_quarantine_endpoint_pages_silver_quarantine(replayed: Settings) -> None:
    stored = Lakehouse(replayed)[SILVER_QUARANTINE].open().to_pyarrow_table().to_pylist()
    assert stored
    with TestClient(create_app(replayed)) as client:
        first = client.get(f"{API}/quarantine", params={"limit": 5}).json()
        assert first["total"] == len(stored)
        assert len(first["items"]) == min(5, len(stored))
        times = [r["quarantined_at"] for r in first["items"]]
        assert times == sorted(times, reverse=True)
        reason = stored[0]["reasons"][0]
        by_reason = client.get(f"{API}/quarantine", params={"reason": reason, "limit": 500})
        expected = sum(reason in r["reasons"] for r in stored)
        assert by_reason.json()["total"] == expected
        assert all(reason in r["reasons"] for r in by_reason.json()["items"])
        raws = {r["raw"] for r in stored}
        assert {r["raw"] for r in by_reason.json()["items"]} <= raws
        assert client.get(f"{API}/quarantine", params={"limit": 0}).status_code == 422
