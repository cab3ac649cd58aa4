"""The quarantined records themselves (``silver.quarantine``), newest first, a page at a time:
what ``GET /quality`` counts, browsable with their reasons and raw input."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Query, Request

from lakehouse.settings import Settings
from lakehouse.tables import SILVER_QUARANTINE
from serving_api.cache import Tables, ViewSpec
from serving_api.models import QuarantinePage
from serving_api.routers import API_PREFIX, READ_ERRORS, gold

router = APIRouter(prefix=API_PREFIX, tags=["insights"], responses=READ_ERRORS)

COLUMNS = (
    "quarantined_at",
    "source",
    "market_id",
    "device_id",
    "event_type",
    "subject",
    "observed_at",
    "reasons",
    "details",
    "error",
    "raw",
    "topic",
    "partition",
    "offset",
)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {c: record.get(c) for c in COLUMNS}
    row["reasons"] = row["reasons"] or []
    details = row["details"]
    # a Spark map reads as a list of (key, value) pairs; a struct as a dict
    row["details"] = dict(details) if details else {}
    return row


def build_quarantine(_settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    """Every quarantined record as an API row, newest first (an empty table: none yet)."""
    table: pa.Table = tables[SILVER_QUARANTINE.qualified_name]
    if table.num_rows == 0:
        return []
    table = table.sort_by([("quarantined_at", "descending"), ("offset", "descending")])
    return [_row(r) for r in table.to_pylist()]


QUARANTINE = ViewSpec("quarantine", (SILVER_QUARANTINE,), build_quarantine)


@router.get(
    "/quarantine",
    response_model=QuarantinePage,
    summary="Quarantined records, newest first, with their reasons and raw input",
)
async def quarantine(
    request: Request,
    source: Annotated[str | None, Query(max_length=128, examples=["pihps-export"])] = None,
    reason: Annotated[str | None, Query(max_length=64, examples=["iqr"])] = None,
    since: Annotated[date | None, Query(description="quarantined on or after (UTC date)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
) -> dict[str, Any]:
    matching = [
        r
        for r in await gold(request).get(QUARANTINE)
        if (source is None or r["source"] == source)
        and (reason is None or reason in r["reasons"])
        and (since is None or (r["quarantined_at"] and r["quarantined_at"].date() >= since))
    ]
    return {"total": len(matching), "items": matching[offset : offset + limit]}
