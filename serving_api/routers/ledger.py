"""The price ledger: verify the hash chains, prove one price (central, operator, admin)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from lakehouse.domain import ledger
from serving_api.auth import Permission
from serving_api.deps import SettingsDep, require
from serving_api.errors import ApiError
from serving_api.models import Error
from serving_api.routers import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["integrity"])

AUDIT_ERRORS: dict[int | str, dict] = {
    401: {"model": Error, "description": "no credentials, an unknown key or a bad/expired token"},
    403: {"model": Error, "description": "the role may not audit (central, operator, admin)"},
}


class BrokenLink(BaseModel):
    chain: str
    seq: int
    event_id: str
    observed_at: datetime
    reason: str


class Integrity(BaseModel):
    ok: bool
    entries: int
    chains: int
    checked: int
    first_broken: BrokenLink | None
    broken: list[BrokenLink]


@router.get(
    "/integrity",
    response_model=Integrity,
    summary="Recompute the price ledger's hash chains against silver.prices",
    description="`ok` is false when an accepted price or a ledger entry was edited, removed or "
    "inserted; `first_broken` names the earliest such entry. `date` (local) reports only the "
    "entries observed that day.",
    dependencies=[require(Permission.audit)],
    responses=AUDIT_ERRORS,
)
@router.get(
    "/ledger/verify",
    response_model=Integrity,
    summary="The same as /integrity",
    dependencies=[require(Permission.audit)],
    responses=AUDIT_ERRORS,
)
async def integrity(settings: SettingsDep, date: date | None = None) -> Any:
    verdict = await asyncio.to_thread(ledger.verify, settings, date)
    return verdict.as_dict()


@router.get(
    "/prices/{event_id}/proof",
    summary="What an outsider needs to check one accepted price: entry, content, chain head",
    dependencies=[require(Permission.audit)],
    responses={**AUDIT_ERRORS, 404: {"model": Error, "description": "the price is not chained"}},
)
async def price_proof(settings: SettingsDep, event_id: str) -> dict[str, Any]:
    found = await asyncio.to_thread(ledger.proof, settings, event_id)
    if found is None:
        raise ApiError(404, f"price {event_id!r} is not in the ledger (yet)")
    return found
