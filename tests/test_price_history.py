"""The price check's history in memory (``serving_api.price_history``) gives what the tables
read with delta-rs give: the same rows of a window (its bounds included) and the same verdicts
for a mix of prices, a back-dated one read from the tables instead; a new commit of silver.prices
or a MERGE of silver.holds is seen once the view follows it. Over tables written with delta-rs
(no Spark)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import SILVER_HOLDS
from lakehouse.config.settings import Settings
from lakehouse.domain.validation import price_check
from lakehouse.domain.validation.price_check import (
    HISTORY_FIELDS,
    PRICE_FIELDS,
    Window,
    check,
    history_window,
)
from lakehouse.io.lake import Lakehouse
from serving_api.app import create_app
from serving_api.auth import HEADER, mint_key
from serving_api.price_history import PRICE_HISTORY, SeriesIndex, read_history
from serving_api.routers.validation import PriceVerdict
from tests.api_samples import API, PRICES, append_prices, price, until, with_api

MARKETS = ("IP-001", "IP-003", "IP-004", "IP-005", "IP-060", "JB-BDG-KOSAMBI")
LEVELS = {"beras": 14_000.0, "cabai_merah": 50_000.0}
NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = 45  # of history: more than memory keeps
#: the columns of silver.holds the check reads, and where its review stands
HOLDS = pa.schema([*(PRICES.field(c) for c in HISTORY_FIELDS), ("status", pa.string())])


def reports(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """A report or two of every series a day for ``DAYS`` days; 4 % of them held as spikes, a
    third of those since released (in silver.prices too)."""
    accepted, held = [], []
    for day in range(DAYS, -1, -1):
        for market in MARKETS:
            for commodity, level in LEVELS.items():
                for _ in range(rng.randrange(1, 3)):
                    at = NOW - timedelta(days=day, minutes=rng.randrange(0, 600))
                    value = level * (1 + rng.uniform(-0.02, 0.02))
                    row = price(market, commodity, value, at, event_id=f"r-{rng.getrandbits(64)}")
                    if rng.random() < 0.04:
                        row["price"] = level * 1.7
                        status = rng.choice(["held", "held", "released"])
                        held.append(row | {"status": status})
                        if status == "held":
                            continue
                    accepted.append(row)
    return accepted, held


def write_holds(settings: Settings, rows: list[dict]) -> None:
    """silver.holds as the silver query MERGEs it: a new hold inserted, a known one's status
    changed."""
    path = str(SILVER_HOLDS.path(settings))
    table = pa.Table.from_pylist([{c: r[c] for c in HOLDS.names} for r in rows], schema=HOLDS)
    if not DeltaTable.is_deltatable(path):
        write_deltalake(path, table)
        return
    (
        DeltaTable(path)
        .merge(table, "t.event_id = s.event_id", source_alias="s", target_alias="t")
        .when_matched_update({"status": "s.status"})
        .when_not_matched_insert_all()
        .execute()
    )


def candidates(rng: random.Random) -> list[list[dict[str, Any]]]:
    """Bodies of the check: single prices near their level or moved, a market's report of
    several, an unknown market, and a back-dated price."""

    def one(at: datetime, factor: float, **change: Any) -> dict[str, Any]:
        market, commodity = rng.choice(MARKETS), rng.choice(list(LEVELS))
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))), "market_id": market,
            "commodity": commodity, "price": round(LEVELS[commodity] * factor), "unit": "kg",
            "observed_at": at, "source": "test",
        } | change  # fmt: skip

    def recent() -> datetime:
        return NOW - timedelta(minutes=rng.randrange(0, 20 * 60))

    bodies = [[one(recent(), 1 + rng.uniform(-0.03, 0.03))] for _ in range(25)]
    bodies += [[one(recent(), rng.choice([0.5, 0.7, 1.15, 1.3, 1.9]))] for _ in range(15)]
    bodies += [[one(recent(), 1 + rng.uniform(-0.3, 0.3)) for _ in range(5)] for _ in range(4)]
    bodies.append([one(recent(), 1.0, market_id="XX-404")])
    bodies.append([one(NOW - timedelta(days=10), 1.0)])  # before what memory keeps
    return bodies


def judged(prices: list[dict[str, Any]]) -> pd.DataFrame:
    """Prices as the check takes them."""
    frame = pd.DataFrame(prices, columns=list(PRICE_FIELDS))
    return frame.assign(observed_at=pd.to_datetime(frame["observed_at"], utc=True))


def same_rows(one: pd.DataFrame, other: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        *(rows.sort_values("event_id", ignore_index=True) for rows in (one, other))
    )


@pytest.fixture
def lake(conf_settings: Settings, tmp_path: Path) -> tuple[Settings, str]:
    """A lakehouse of its own, views followed at every request, and an API key of role
    ingest."""
    key, entry = mint_key("partner", "ingest")
    own = with_api(conf_settings, tmp_path / "lakehouse", keys=[entry], cache_check_ms=0)
    paths = own.paths.model_copy(update={"data_dir": tmp_path})
    return own.model_copy(update={"paths": paths}), key


def test_memory_answers_what_the_tables_answer(lake: tuple[Settings, str]) -> None:
    settings, key = lake
    conf = conf_of(settings)
    rng = random.Random(56)
    accepted, held = reports(rng)
    # the days before the last three in one commit (as the nightly OPTIMIZE leaves them), then
    # a commit a day
    append_prices(settings, [r for r in accepted if r["observed_at"] < NOW - timedelta(days=3)])
    for day in range(3, 0, -1):
        since, before = NOW - timedelta(days=day), NOW - timedelta(days=day - 1)
        append_prices(settings, [r for r in accepted if since <= r["observed_at"] < before])
    write_holds(settings, held)
    bodies = candidates(rng)
    from_memory, outcomes = 0, set()
    with TestClient(create_app(settings)) as c:
        for body in bodies:
            sent = [p | {"observed_at": p["observed_at"].isoformat()} for p in body]
            answer = c.post(f"{API}/validation/price/check", json=sent, headers={HEADER: key})
            assert answer.status_code == 200, answer.text
            prices = judged(body)
            window = history_window(prices, conf, conf.quality)
            read = read_history(Lakehouse(settings), conf, window)
            recent = c.app.state.resources.cache.current(PRICE_HISTORY)
            if recent.covers(window):
                from_memory += 1
                same_rows(recent.rows(window, conf), read)
            expected = check(prices, read, conf, conf.quality, datetime.now(UTC), settings.tz)
            assert answer.json()["verdicts"] == [
                PriceVerdict.model_validate(v, from_attributes=True).model_dump(mode="json")
                for v in expected
            ]
            outcomes |= {v.verdict for v in expected}
    assert from_memory == len(bodies) - 1  # all but the back-dated price
    assert outcomes == {"accepted", "held", "quarantined"}
    # a window's first and last seconds are in it, as in the SQL of the tables' read
    first = next(r for r in accepted if r["observed_at"] > NOW - timedelta(days=20))
    last = next(
        r
        for r in reversed(accepted)
        if r["observed_at"] < NOW - timedelta(days=2)
        and (r["market_id"], r["commodity"]) == (first["market_id"], first["commodity"])
    )
    half = timedelta(milliseconds=500)
    province = conf.markets[first["market_id"]].province
    window = Window(
        [(province, first["commodity"])], first["observed_at"] + half, last["observed_at"] + half
    )
    assert recent.covers(window)
    rows = recent.rows(window, conf)
    assert {first["event_id"], last["event_id"]} <= set(rows["event_id"])
    same_rows(rows, read_history(Lakehouse(settings), conf, window))


def test_new_commits_are_seen(lake: tuple[Settings, str]) -> None:
    settings, key = lake
    steady = [
        price(market, commodity, LEVELS[commodity], NOW - timedelta(days=day, hours=2))
        for day in range(1, 21)
        for market in ("IP-003", "IP-004")
        for commodity in LEVELS
    ]
    beras = [r for r in steady if r["commodity"] == "beras"]
    append_prices(settings, beras)
    spike = {
        "event_id": "6b0e0c5e-0000-4000-8000-000000000056", "market_id": "IP-003",
        "commodity": "cabai_merah", "unit": "kg", "price": 2 * LEVELS["cabai_merah"],
        "observed_at": (NOW - timedelta(hours=1)).isoformat(), "source": "test",
    }  # fmt: skip
    holds = [price("IP-001", "beras", 25_000.0, NOW - timedelta(days=1)) | {"status": "held"}]
    write_holds(settings, holds)
    with TestClient(create_app(settings)) as c:

        def verdict() -> str:
            answer = c.post(f"{API}/validation/price/check", json=spike, headers={HEADER: key})
            assert answer.status_code == 200, answer.text
            return answer.json()["verdicts"][0]["verdict"]

        def held() -> list[str]:
            return list(c.app.state.resources.cache.current(PRICE_HISTORY).holds["event_id"])

        assert verdict() == "accepted"  # no history of the series: the statistical rules abstain
        append_prices(settings, [r for r in steady if r["commodity"] == "cabai_merah"])
        until(lambda: verdict() == "held")
        # a decision MERGEd (the hold's row rewritten) and a new hold
        more = [price("IP-004", "beras", 26_000.0, NOW - timedelta(hours=3)) | {"status": "held"}]
        write_holds(settings, [holds[0] | {"status": "released"}, *more])
        verdict()  # a request looks for the new version
        until(lambda: len(held()) == 2)
        assert sorted(held()) == sorted(r["event_id"] for r in holds + more)


def history_rows(rng: random.Random, markets: tuple[str, ...], days: int) -> pd.DataFrame:
    """Accepted prices of ``markets`` × ``LEVELS``, a report or three a day for ``days`` days,
    as memory keeps them."""
    rows = [
        {"event_id": f"r-{rng.getrandbits(64)}", "market_id": market, "commodity": commodity,
         "observed_at": NOW - timedelta(days=day, minutes=rng.randrange(0, 1440)),
         "price": level * (1 + rng.uniform(-0.03, 0.03))}
        for day in range(days, -1, -1)
        for market in markets
        for commodity, level in LEVELS.items()
        for _ in range(rng.randrange(1, 4))
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(HISTORY_FIELDS))
    return frame.assign(observed_at=pd.to_datetime(frame["observed_at"], utc=True))


def test_the_series_index_finds_what_a_scan_finds() -> None:
    rng = random.Random(7)
    rows = history_rows(rng, MARKETS, 10)
    rows.loc[3, "market_id"] = None  # in no series
    index = SeriesIndex.of(rows)
    for _ in range(20):
        series = {
            (rng.choice([*MARKETS, "XX-404"]), rng.choice([*LEVELS, "kopi"])) for _ in range(4)
        }
        start, end = sorted(rows["observed_at"].sample(2, random_state=rng.randrange(1000)))
        start, end = start.to_pydatetime(), end.to_pydatetime()  # both bounds are rows' times
        keys = zip(rows["market_id"], rows["commodity"], strict=True)
        scan = rows["observed_at"].between(start, end) & np.array([k in series for k in keys])
        assert list(index.positions(series, start, end)) == list(np.flatnonzero(scan))
    assert len(SeriesIndex.of(rows.iloc[:0]).positions({(MARKETS[0], "beras")}, NOW, NOW)) == 0


def test_the_pool_keeps_what_the_verdicts_rest_on(
    conf_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check judges its prices with the rows of their series and of their days only
    (``price_check._judged_with``): the verdicts of the whole window's pool."""
    conf, rng = conf_of(conf_settings), random.Random(8)
    history = history_rows(rng, MARKETS, 30)
    prices = judged(
        [p | {"observed_at": NOW - timedelta(days=rng.choice([0, 0, 3, 12]))} for b in
         candidates(rng)[:-2] for p in b]
    )  # fmt: skip
    now = datetime.now(UTC)
    pruned = check(prices, history, conf, conf.quality, now, conf_settings.tz)
    monkeypatch.setattr(price_check, "_judged_with", lambda h, _: np.ones(len(h), dtype=bool))
    assert pruned == check(prices, history, conf, conf.quality, now, conf_settings.tz)
    assert {v.verdict for v in pruned} == {"accepted", "held"}
