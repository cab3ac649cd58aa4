"""What the API tests share: the API prefix, settings with other API knobs, alert rows written as
the alerting job writes them, and the live view's tables written as the pipeline writes them
(delta-rs: no Spark), and a wait for work done in other threads."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_LATEST,
    SILVER_PRICES,
    arrow_schema,
)
from lakehouse.config.settings import Settings
from tests.shipped import SHIPPED

API = "/api/v1"
PASSWORD = "correct horse battery"  # of the users the tests make
WAIT = 30  # seconds before a step that should happen is declared not to


def with_api(settings: Settings, lakehouse_root: Path | None = None, **api: Any) -> Settings:
    """``settings`` with other API knobs and, optionally, another lakehouse."""
    update: dict[str, Any] = {"api": settings.api.model_copy(update=api)}
    if lakehouse_root is not None:
        update["paths"] = settings.paths.model_copy(update={"lakehouse_root": lakehouse_root})
    return settings.model_copy(update=update)


def alert(alert_id: str, severity: str, region: str, status: str = "open") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "alert_id": alert_id,
        "rule": "price_spike",
        "severity": severity,
        "status": status,
        "market_id": "IP-001",
        "region": region,
        "commodity": "cabai_rawit",
        "metric": "price",
        "value": 98000.0,
        "reference": 61000.0,
        "message_id": "Harga naik",
        "message_en": "Price up",
        "details": "{}",
        "opened_at": now,
        "resolved_at": now if status == "resolved" else None,
        "updated_at": now,
    }


def upsert_alerts(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """What the alerting job does: MERGE on alert_id."""
    path = str(GOLD_ALERTS.path(settings))
    source = pa.Table.from_pylist(alerts, schema=arrow_schema(GOLD_ALERTS))
    try:
        target = DeltaTable(path)
    except Exception:  # noqa: BLE001 - not created yet
        write_deltalake(path, source)
        return
    (
        target.merge(source, "t.alert_id = s.alert_id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


# ---- the live view's tables ----------------------------------------------------------------

#: markets of two provinces
LIVE_MARKETS = (
    "IP-001",
    "IP-003",
    *sorted(m for m, v in SHIPPED.markets.items() if v.province == "Jawa Barat")[:2],
)
LIVE_COMMODITIES = ("beras", "bawang_merah", "cabai_rawit")
LAST_DAY = date(2025, 3, 21)
PRICES = pa.schema(
    [
        ("event_id", pa.string()),
        ("market_id", pa.string()),
        ("commodity", pa.string()),
        ("region", pa.string()),
        ("price", pa.float64()),
        ("unit", pa.string()),
        ("observed_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("flags", pa.list_(pa.string())),
    ]
)


def price(market_id: str, commodity: str, value: float, at: datetime, **more: Any) -> dict:
    """A price row of silver.prices (the columns the live view reads)."""
    return {
        "event_id": f"{market_id}-{commodity}-{at.isoformat()}",
        "market_id": market_id,
        "commodity": commodity,
        "region": SHIPPED.markets[market_id].province,
        "price": value,
        "unit": "kg",
        "observed_at": at,
        "source": "test",
        "flags": [],
    } | more


def append_prices(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """One commit of silver.prices, partitioned as the silver query writes it."""
    table = pa.Table.from_pylist(rows, schema=PRICES)
    days = pa.array([r["observed_at"].astimezone(settings.tz).date() for r in rows], pa.date32())
    write_deltalake(
        str(SILVER_PRICES.path(settings)),
        table.append_column("observed_date", days),
        mode="append",
        partition_by=list(SILVER_PRICES.partition_by),
    )


def write_live_tables(settings: Settings, days: int = 20) -> None:
    """Daily closes of ``days`` days up to ``LAST_DAY``, each series' newest price of that day
    in gold.price_latest, and one commit of silver.prices with a newer price of half of them."""
    series = list(itertools.product(LIVE_MARKETS, LIVE_COMMODITIES))
    daily = [
        {
            "market_id": m,
            "commodity": c,
            "region": SHIPPED.markets[m].province,
            "date": LAST_DAY - timedelta(days=d),
        }
        | dict.fromkeys(("open", "high", "low", "close", "mean"), 10000.0 + 100 * i + d)
        | {"count": 1}
        for i, (m, c) in enumerate(series)
        for d in range(days)
    ]
    write_deltalake(str(GOLD_PRICE_DAILY.path(settings)), pa.Table.from_pylist(daily))
    noon = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=5)
    latest = [price(m, c, 10000.0 + 100 * i, noon) for i, (m, c) in enumerate(series)]
    write_deltalake(
        str(GOLD_PRICE_LATEST.path(settings)), pa.Table.from_pylist(latest, schema=PRICES)
    )
    newer = noon + timedelta(hours=1)
    append_prices(settings, [price(m, c, 11000.0, newer) for m, c in series[::2]])


def token(c: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    answer = c.post(f"{API}/auth/token", json={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def until(done: Callable[[], Any]) -> Any:
    """``done()`` once it is true (the work it waits for runs in other threads)."""
    deadline = time.monotonic() + WAIT
    while not (result := done()):
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.02)
    return result
