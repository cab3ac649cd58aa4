"""The quarantined records themselves (``silver.quarantine``), newest first, a page at a time:
what ``GET /quality`` counts, browsable with their reasons and raw input; and the review of held
prices (``silver.holds``, see ``lakehouse.domain.validation.holds``): list them, release or reject
one."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Body, Path, Query, status

from lakehouse.catalog.events import HoldStatus, ReviewDecision, ReviewEvent
from lakehouse.catalog.tables import SILVER_HOLD_DECISIONS, SILVER_HOLDS, SILVER_QUARANTINE
from lakehouse.config.settings import Settings
from serving_api.auth import Permission, Principal
from serving_api.cache import Tables, ViewSpec
from serving_api.deps import GoldDep, PublisherDep, require
from serving_api.errors import ApiError
from serving_api.ingest import KafkaUnavailable
from serving_api.models import Error, HeldPage, QuarantinePage, Review, ReviewAccepted
from serving_api.routers import API_PREFIX, READ_ERRORS

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
    cache: GoldDep,
    source: Annotated[str | None, Query(max_length=128, examples=["pihps-export"])] = None,
    reason: Annotated[str | None, Query(max_length=64, examples=["iqr"])] = None,
    since: Annotated[date | None, Query(description="quarantined on or after (UTC date)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
) -> dict[str, Any]:
    matching = [
        r
        for r in await cache.get(QUARANTINE)
        if (source is None or r["source"] == source)
        and (reason is None or reason in r["reasons"])
        and (since is None or (r["quarantined_at"] and r["quarantined_at"].date() >= since))
    ]
    return {"total": len(matching), "items": matching[offset : offset + limit]}


HELD_COLUMNS = (
    "event_id",
    "status",
    "market_id",
    "commodity",
    "region",
    "price",
    "baseline",
    "move",
    "hold_reasons",
    "source",
    "observed_at",
    "held_at",
)
DECISION_COLUMNS = ("decision", "decided_by", "note", "decided_at")
#: the ``status`` filter of GET /quarantine/held: a hold status, or ``open`` (still reviewable)
HeldFilter = StrEnum("HeldFilter", [*(s.value for s in HoldStatus), "open"])


def build_held(_settings: Settings, tables: Tables) -> dict[str, dict[str, Any]]:
    """Every held price by event id, newest hold first, with its decisions (oldest first)."""
    holds: pa.Table = tables[SILVER_HOLDS.qualified_name]
    decisions: pa.Table = tables[SILVER_HOLD_DECISIONS.qualified_name]
    by_event: dict[str, list[dict[str, Any]]] = {}
    if decisions.num_rows:
        for d in decisions.sort_by("decided_at").to_pylist():
            by_event.setdefault(d["event_id"], []).append({c: d[c] for c in DECISION_COLUMNS})
    if holds.num_rows == 0:
        return {}
    rows = holds.sort_by([("held_at", "descending"), ("event_id", "ascending")]).to_pylist()
    return {
        r["event_id"]: {c: r[c] for c in HELD_COLUMNS}
        | {"decisions": by_event.get(r["event_id"], [])}
        for r in rows
    }


HELD = ViewSpec("held", (SILVER_HOLDS, SILVER_HOLD_DECISIONS), build_held)


@router.get(
    "/quarantine/held",
    response_model=HeldPage,
    summary="Prices held by the statistical rules, newest first, with their review",
    description="A price quarantined by the statistical rules only is held: it is released "
    "into silver when later reports confirm it, or by an operator; `status` says where it "
    "stands (held, not_confirmed, released, rejected).",
)
async def held(
    cache: GoldDep,
    state: Annotated[
        HeldFilter | None,
        Query(alias="status", description="open: held or not_confirmed"),
    ] = None,
    market_id: Annotated[str | None, Query(max_length=64, examples=["IP-001"])] = None,
    commodity: Annotated[str | None, Query(max_length=64, examples=["cabai_merah"])] = None,
    region: Annotated[str | None, Query(max_length=64, examples=["DKI Jakarta"])] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
) -> dict[str, Any]:
    wanted = HoldStatus.reviewable() if state == "open" else (state,) if state else None
    matching = [
        r
        for r in (await cache.get(HELD)).values()
        if (wanted is None or r["status"] in wanted)
        and (market_id is None or r["market_id"] == market_id)
        and (commodity is None or r["commodity"] == commodity)
        and (region is None or r["region"] == region)
    ]
    return {"total": len(matching), "items": matching[offset : offset + limit]}


@router.post(
    "/quarantine/{event_id}/{decision}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReviewAccepted,
    summary="Release a held price into silver, or reject it for good (operator or admin key)",
    description="The decision travels through Kafka like every event: 202 means Kafka has it; "
    "the pipeline records it in silver.hold_decisions with your key's name and the note, and a "
    "released price reaches silver and gold in its next micro-batch. Only held prices (a "
    "statistical hold, not a hard-rule failure) can be reviewed; the first decision wins.",
    responses={
        401: {"model": Error, "description": "missing or unknown API key"},
        403: {"model": Error, "description": "the key's role may not review"},
        404: {"model": Error, "description": "no held price with this event id"},
        409: {"model": Error, "description": "the price was already released or rejected"},
        503: {"model": Error, "description": "Kafka did not confirm in time; retry"},
    },
)
async def review(
    cache: GoldDep,
    publisher: PublisherDep,
    event_id: Annotated[str, Path(max_length=64)],
    decision: ReviewDecision,
    body: Annotated[Review, Body()],
    who: Annotated[Principal, require(Permission.review)],
) -> ReviewAccepted:
    hold = (await cache.get(HELD)).get(event_id)
    if hold is None:
        raise ApiError(
            404,
            f"no held price {event_id!r}: only prices held by the statistical rules can be "
            "reviewed (hard-rule failures never leave quarantine)",
        )
    if hold["status"] not in HoldStatus.reviewable():
        raise ApiError(409, f"price {event_id!r} was already {hold['status']}")
    event = ReviewEvent(
        target_event_id=event_id,
        market_id=hold["market_id"],
        commodity=hold["commodity"],
        decision=decision,
        note=body.note,
        reviewer=who.name,
    )
    try:
        await publisher.review(event_id, event.to_json().decode())
    except KafkaUnavailable as exc:
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return ReviewAccepted(review_id=event.event_id, event_id=event_id, decision=decision)
