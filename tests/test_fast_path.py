"""The fast path of ``GET /prices/live`` answers exactly as the full FastAPI stack does — the
same status, headers and bytes for every query, the same refusals and rate limits, the same
metrics — and only what it has ready: everything else reaches the full stack. Over a lakehouse
written with delta-rs (no Spark, no services); requests are ASGI calls, as uvicorn makes them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from lakehouse.config.settings import Settings
from serving_api.app import create_app
from serving_api.auth import mint_key
from serving_api.fast_path import LiveFastPath
from tests.api_samples import (
    API,
    LAST_DAY,
    LIVE_COMMODITIES,
    LIVE_MARKETS,
    append_prices,
    price,
    with_api,
    write_live_tables,
)

LIVE = f"{API}/prices/live"
LOOPBACK = ("127.0.0.1", 40000)
REMOTE = ("203.0.113.7", 40000)  # a client the rate limit does not exempt
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

#: queries the fast path answers: no filter, each filter, as people write them, combined,
#: repeated (the last counts, as for Starlette), with parameters the route ignores
READY = [
    "",
    "commodity=beras",
    "commodity=Bawang%20Merah",
    "commodity=shallot",
    "region=DKI%20Jakarta",
    "region=jakarta",
    "region=31",
    "region=Jawa+Barat",
    f"market_id={LIVE_MARKETS[0]}",
    f"market_id={LIVE_MARKETS[-1]}&commodity=cabai_rawit",
    "commodity=beras&region=DKI%20Jakarta",
    f"commodity=beras&region=Jawa%20Barat&market_id={LIVE_MARKETS[0]}",
    "commodity=gula_pasir",  # known, never priced here: []
    "market_id=IP-004",  # known, never priced here: []
    "commodity=beras&commodity=cabai_rawit",
    "commodity=beras&foo=1",
    "region=Bali&region=DKI+Jakarta",
    "limit=2",  # a page
    "offset=3&limit=2&commodity=beras",
    "offset=100",  # past the end: []
    "regency=31.71",  # a regency: by code or name
    "regency=Kota%20Administrasi%20Jakarta%20Pusat&commodity=beras",
    "regency=11.71",  # known, no market priced here: []
]
#: queries the route answers with an error: the fast path passes them on
ERRORS = [
    "commodity=beras_x",
    "commodity=",
    "market_id=IP-0001",
    "region=Atlantis",
    "region=" + "x" * 129,
    "commodity=" + "b" * 65,
    "limit=0",
    "limit=5001",
    "offset=-1",
    "limit=ten",
    "regency=99.99",
]


@pytest.fixture
def lakehouse(conf_settings: Settings, tmp_path: Path) -> Settings:
    own = with_api(conf_settings, tmp_path / "lakehouse")
    own = own.model_copy(update={"paths": own.paths.model_copy(update={"data_dir": tmp_path})})
    write_live_tables(own)
    return own


def request(
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] = LOOPBACK,
) -> Scope:
    """The scope uvicorn makes of a request for ``target`` (path and query)."""
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": client,
        "server": ("testserver", 80),
        "state": {},
    }


async def call(app: ASGIApp, scope: Scope) -> Answer:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *rest = sent
    return start["status"], start["headers"], b"".join(m.get("body", b"") for m in rest)


class Stacks:
    """Two apps of the same settings: requests to ``fast`` go in at the front, as uvicorn
    sends them; requests to ``full`` skip its fast path. ``passed_on`` lists the requests the
    fast app's fast path handed to its full stack."""

    def __init__(self, settings: Settings) -> None:
        self.apps = create_app(settings), create_app(settings)
        self.passed_on: list[str] = []

    async def start(self) -> None:
        """A first request to each (it builds the live view), then the layers are found."""
        for app in self.apps:
            await call(app, request("GET", LIVE))
        fast_layer = fast_path_of(self.apps[0])
        rest = fast_layer.app

        async def spy(scope: Scope, receive: Receive, send: Send) -> None:
            self.passed_on.append(scope["query_string"].decode())
            await rest(scope, receive, send)

        fast_layer.app = spy
        self.full = fast_path_of(self.apps[1]).app

    async def both(self, method: str, target: str, **options: Any) -> tuple[Answer, Answer]:
        fast = await call(self.apps[0], request(method, target, **options))
        # as the app's front (Starlette.__call__) sets it
        full = await call(self.full, request(method, target, **options) | {"app": self.apps[1]})
        return fast, full

    def counts(self) -> list[set[str]]:
        """Each app's request, latency-count and view-lookup samples."""
        kept = ("smartmarket_api_requests_total", "smartmarket_api_request_seconds_count")
        kept += ("smartmarket_api_cache_total",)
        return [
            {
                line
                for line in generate_latest(metrics.registry).decode().splitlines()
                if line.startswith(kept)
            }
            for metrics in (app.state.resources.metrics for app in self.apps)
        ]


def fast_path_of(app: FastAPI) -> LiveFastPath:
    layer = app.middleware_stack
    while not isinstance(layer, LiveFastPath):
        layer = layer.app  # type: ignore[union-attr]
    return layer


def run(test: Any) -> None:
    asyncio.run(test())


def test_every_query_gets_the_full_stacks_answer(lakehouse: Settings) -> None:
    async def test() -> None:
        stacks = Stacks(lakehouse)
        await stacks.start()
        for query in READY + ERRORS:
            fast, full = await stacks.both("GET", f"{LIVE}?{query}")
            assert fast == full, query
            assert fast[0] == 200 or query in ERRORS, query
        assert stacks.passed_on == ERRORS
        for method, target in (("HEAD", LIVE), ("POST", LIVE), ("GET", f"{LIVE}/")):
            fast, full = await stacks.both(method, target)
            assert fast == full and fast[0] in (307, 405), (method, target)
        everything = (await stacks.both("GET", LIVE))[0]
        served = {(m, c) for m in LIVE_MARKETS for c in LIVE_COMMODITIES}
        headers = dict(everything[1])
        assert headers[b"content-length"] == str(len(everything[2])).encode()
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"x-total-count"] == str(len(served)).encode()
        assert b"x-frame-options" in headers
        assert everything[2].count(b'"market_id"') == len(served)
        fast_counts, full_counts = stacks.counts()
        assert fast_counts == full_counts
        assert f'method="GET",route="{LIVE}",status="200"' in "".join(fast_counts)

    run(test)


def test_refusals_are_the_full_stacks(lakehouse: Settings) -> None:
    reader, reader_entry = mint_key("dash", "reader")
    ingest, ingest_entry = mint_key("feed", "ingest")
    closed = with_api(lakehouse, open_reads=False, keys=[reader_entry, ingest_entry])
    credentials = {
        "none": [],
        "unknown key": [(b"x-api-key", b"smk_wrong")],
        "ingest key": [(b"x-api-key", ingest.encode())],
        "bad token": [(b"authorization", b"Bearer not-a-token")],
        "reader key": [(b"x-api-key", reader.encode())],
    }
    expected = {"none": 401, "unknown key": 401, "ingest key": 403, "bad token": 401}

    async def test() -> None:
        stacks = Stacks(closed)
        for app in stacks.apps:  # the view is built by an allowed first request
            await call(app, request("GET", LIVE, credentials["reader key"]))
        await stacks.start()
        stacks.passed_on.clear()
        for name, headers in credentials.items():
            fast, full = await stacks.both("GET", f"{LIVE}?commodity=beras", headers=headers)
            assert fast == full, name
            assert fast[0] == expected.get(name, 200), name
        assert stacks.passed_on == []  # refused (or answered) by the fast path itself
        assert stacks.counts()[0] == stacks.counts()[1]
        assert 'route="unmatched",status="401"' in "".join(stacks.counts()[0])

    run(test)


def test_both_paths_take_from_the_same_rate_limit_bucket(lakehouse: Settings) -> None:
    limited = lakehouse.model_copy(
        update={
            "security": lakehouse.security.model_copy(
                update={"rate_limit_per_minute": 1, "rate_limit_burst": 4, "rate_limit_exempt": []}
            )
        }
    )

    async def test() -> None:
        stacks = Stacks(limited)
        await stacks.start()  # from loopback: counts in no bucket
        stacks.passed_on.clear()
        queries = ["commodity=beras", "commodity=beras_x", "region=31", "", "commodity=x", ""]
        statuses = []
        for query in queries:
            fast, full = await stacks.both("GET", f"{LIVE}?{query}", client=REMOTE)
            assert fast == full, query
            statuses.append(fast[0])
        # the fast path's answers and the full stack's drew on one bucket of 4
        assert statuses == [200, 404, 200, 200, 429, 429]
        assert stacks.passed_on == ["commodity=beras_x", "commodity=x"]
        assert stacks.counts()[0] == stacks.counts()[1]

    run(test)


def test_cors_answers_are_the_full_stacks(lakehouse: Settings) -> None:
    origin = "https://dash.example.org"
    cors = lakehouse.model_copy(
        update={"security": lakehouse.security.model_copy(update={"cors_origins": [origin]})}
    )

    async def test() -> None:
        stacks = Stacks(cors)
        await stacks.start()
        allowed = (b"access-control-allow-origin", origin.encode())
        for sent, allows in ((origin, True), ("https://evil.example", False)):
            fast, full = await stacks.both("GET", LIVE, headers=[(b"origin", sent.encode())])
            assert fast == full
            assert (allowed in fast[1]) is allows
        assert stacks.passed_on == []

    run(test)


def test_a_new_silver_commit_reaches_the_fast_path(lakehouse: Settings) -> None:
    own = with_api(lakehouse, cache_check_ms=0)

    async def test() -> None:
        stacks = Stacks(own)
        await stacks.start()
        target = f"{LIVE}?market_id={LIVE_MARKETS[1]}&commodity=beras"
        (status, _, before), _ = await stacks.both("GET", target)
        assert status == 200 and b"12345.0" not in before
        later = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=8)
        append_prices(own, [price(LIVE_MARKETS[1], "beras", 12345.0, later)])
        deadline = time.monotonic() + 30
        while (after := (await call(stacks.apps[0], request("GET", target)))[2]) == before:
            assert time.monotonic() < deadline, "the view never moved forward"
            await asyncio.sleep(0.02)  # the look and the rebuild run in worker threads
        assert b"12345.0" in after
        assert stacks.passed_on == []

    run(test)
