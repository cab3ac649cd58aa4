"""What the API tests share: the API prefix, settings with other API knobs, and alert rows
written as the alerting job writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.settings import Settings
from lakehouse.tables import GOLD_ALERTS, arrow_schema

API = "/api/v1"


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
