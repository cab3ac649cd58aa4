"""Validation on demand: the verdict the pipeline would give prices now, without publishing them
(``lakehouse.domain.validation.price_check``: the silver query's own rules, against the history of
``serving_api.price_history``: kept in memory, or read from the tables for a back-dated
price)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Body, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import PriceEvent
from lakehouse.domain.validation.price_check import PRICE_FIELDS, check, history_window
from lakehouse.io.lake import Lakehouse
from serving_api.auth import Permission
from serving_api.deps import ConfDep, GoldDep, SettingsDep, require
from serving_api.errors import ApiError
from serving_api.price_history import PRICE_HISTORY, RecentHistory, price_history
from serving_api.routers import API_PREFIX
from serving_api.routers.ingest import EXAMPLE, INGEST_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["validation"])


class PriceVerdict(BaseModel):
    event_id: str
    verdict: Literal["accepted", "held", "quarantined"] = Field(
        description="accepted into silver (perhaps with flags), held by the statistical rules "
        "until confirmed, or quarantined by a hard rule"
    )
    reasons: list[str] = Field(description="the rules that quarantine or hold it")
    flags: list[str] = Field(description="the statistical rules that flagged it")
    price: float | None = Field(description="IDR per catalogue unit")
    unit: str | None = Field(description="the catalogue's unit")
    details: dict[str, float] = Field(description="the numbers behind the statistical rules")
    baseline: float | None = Field(
        description="the level it was measured against: its series' rolling median, else the "
        "other markets' median that day"
    )
    move: float | None = Field(description="price / baseline − 1")


class CheckOut(BaseModel):
    checked_at: datetime
    verdicts: list[PriceVerdict]


#: the observation times a check judges: inside pandas' nanosecond timestamps (1677-09-21 to
#: 2262-04-11) with room for the history window around them
CHECKABLE = (datetime(1678, 1, 1, tzinfo=UTC), datetime(2261, 12, 31, tzinfo=UTC))


def _verdicts(
    lake: Lakehouse,
    conf: Conf,
    recent: RecentHistory,
    events: list[PriceEvent],
    now: datetime,
) -> list[PriceVerdict]:
    prices = pd.DataFrame(
        [{f: getattr(e, f) for f in PRICE_FIELDS} for e in events], columns=list(PRICE_FIELDS)
    )
    prices["event_id"] = prices["event_id"].astype(str)
    prices["observed_at"] = pd.to_datetime(prices["observed_at"], utc=True)
    rules = conf.quality
    history = price_history(lake, conf, recent, history_window(prices, conf, rules))
    verdicts = check(prices, history, conf, rules, now, lake.settings.tz)
    return [PriceVerdict.model_validate(v, from_attributes=True) for v in verdicts]


@router.post(
    "/validation/price/check",
    response_model=CheckOut,
    summary="The verdict the pipeline would give prices now — nothing is published",
    description="The same body as `POST /prices` (one event or a list, judged together as one "
    "micro-batch would judge them). Each answer says accepted, held or quarantined, the rules "
    "behind it and the level the price was measured against (`baseline`). The hard rules and "
    "the statistical ones are the silver query's own, against the history its state would "
    "hold: the series' accepted and held prices of the last `history_days`.",
    dependencies=[require(Permission.ingest)],
    responses={k: v for k, v in INGEST_RESPONSES.items() if k != 503},
)
async def check_prices(
    settings: SettingsDep,
    conf: ConfDep,
    cache: GoldDep,
    body: Annotated[PriceEvent | list[PriceEvent], Body(examples=[EXAMPLE])],
) -> CheckOut:
    events = body if isinstance(body, list) else [body]
    cap = settings.api.max_events_per_request
    if len(events) > cap:
        raise ApiError(413, f"{len(events)} events in one request; send at most {cap}")
    if not events:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "no events: send one or a list")
    beyond = [e.observed_at for e in events if not CHECKABLE[0] <= e.observed_at <= CHECKABLE[1]]
    if beyond:  # the pipeline calls it future or late; the check's frames cannot hold it
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"observed_at {beyond[0].isoformat()} is outside the times a check can judge "
            f"({CHECKABLE[0]:%Y-%m-%d} to {CHECKABLE[1]:%Y-%m-%d})",
        )
    now = datetime.now(UTC)
    recent = await cache.get(PRICE_HISTORY)
    verdicts = await run_in_threadpool(_verdicts, cache.lake, conf, recent, events, now)
    return CheckOut(checked_at=now, verdicts=verdicts)
