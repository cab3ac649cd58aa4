"""Alerts as the pipeline leaves them in ``gold.alerts``, for the notifier's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.catalog.tables import GOLD_ALERTS, arrow_schema
from lakehouse.config.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


def alert(alert_id: str, status: str = "open", severity: str = "warning", **change) -> dict:
    return {
        "alert_id": alert_id, "rule": "price_spike", "severity": severity, "status": status,
        "market_id": "IP-001", "region": "DKI Jakarta", "commodity": "beras", "metric": "price",
        "value": 17000.0, "reference": 14000.0,
        "message_id": "Harga Beras Medium di Pasar Induk Kramat Jati, DKI Jakarta naik 21.4%",
        "message_en": "Medium rice price at Pasar Induk Kramat Jati, DKI Jakarta up 21.4%",
        "details": "{}", "opened_at": NOW - timedelta(hours=2),
        "resolved_at": NOW if status == "resolved" else None, "updated_at": NOW,
        "alert_key": "IP-001|beras", "last_firing_at": NOW - timedelta(hours=1), **change,
    }  # fmt: skip


def write_alerts(settings: Settings, rows: list[dict]) -> None:
    """A new version of gold.alerts holding ``rows`` (what the pipeline's MERGE leaves)."""
    write_deltalake(
        str(GOLD_ALERTS.path(settings)),
        pa.Table.from_pylist(rows, schema=arrow_schema(GOLD_ALERTS)),
        mode="overwrite",
    )
