"""Forecasts, anomalies and data quality (empty lists until the tables exist)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from ml.impact_result import ImpactResult
from serving_api.deps import ConfDep, GoldDep, ImpactDep
from serving_api.errors import ApiError, resolve_commodity, resolve_market
from serving_api.models import Anomaly, Error, ForecastSeries, QualityRow
from serving_api.routers import API_PREFIX, READ_ERRORS, TOTAL_HEADER
from serving_api.routers.prices import Commodity, MarketId, Offset, Region
from serving_api.views import ANOMALIES, FORECASTS, QUALITY

router = APIRouter(
    prefix=API_PREFIX,
    tags=["insights"],
    responses=READ_ERRORS,
)

Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many rows")]
Since = Annotated[date | None, Query(description="from this date on (YYYY-MM-DD)")]


@router.get(
    "/forecasts",
    response_model=list[ForecastSeries],
    summary="The newest 7-day forecast of each series, with 80 % and 95 % intervals",
)
async def forecasts(
    conf: ConfDep, cache: GoldDep, commodity: Commodity = None, market_id: MarketId = None
) -> list[dict[str, Any]]:
    wanted, market = resolve_commodity(conf, commodity), resolve_market(conf, market_id)
    return [
        s
        for s in await cache.get(FORECASTS)
        if (wanted is None or s["commodity"] == wanted)
        and (market is None or s["market_id"] == market)
    ]


@router.get(
    "/anomalies",
    response_model=list[Anomaly],
    summary="Anomalous prices, newest first, then by score",
)
async def anomalies(
    response: Response,  # its headers: the total
    conf: ConfDep,
    cache: GoldDep,
    commodity: Commodity = None,
    since: Since = None,
    min_score: Annotated[float, Query(ge=0, le=1, description="score 0..1")] = 0.0,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    wanted = resolve_commodity(conf, commodity)
    rows = [
        a
        for a in await cache.get(ANOMALIES)
        if (wanted is None or a["commodity"] == wanted)
        and (since is None or a["date"] >= since)
        and a["score"] >= min_score
    ]
    response.headers[TOTAL_HEADER] = str(len(rows))
    return rows[offset : offset + limit]


@router.get(
    "/quality",
    response_model=list[QualityRow],
    summary="Received / accepted / quarantined (by reason) / duplicates / late per day × source",
)
async def quality(
    cache: GoldDep,
    since: Since = None,
    source: Annotated[str | None, Query(max_length=128, examples=["pihps-export"])] = None,
) -> list[dict[str, Any]]:
    return [
        q
        for q in await cache.get(QUALITY)
        if (since is None or q["date"] >= since) and (source is None or q["source"] == source)
    ]


@router.get(
    "/impact",
    response_model=ImpactResult,
    summary="Which factors drove the price change of a month or week (vs the one before)",
    responses={
        404: {"model": Error, "description": "no impact model for the commodity (how much data)"},
        503: {"model": Error, "description": "no impact model trained yet (run ./run.sh retrain)"},
    },
)
async def impact(
    conf: ConfDep,
    explainer: ImpactDep,
    commodity: Annotated[str, Query(max_length=64, examples=["beras"])],
    day: Annotated[date, Query(alias="date", description="any day of the period to explain")],
    market_id: MarketId = None,
    region: Region = None,
) -> ImpactResult:
    if (market_id is None) == (region is None):
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of market_id and region"
        )
    return await run_in_threadpool(
        explainer.explain,
        resolve_commodity(conf, commodity),
        day,
        resolve_market(conf, market_id),
        region,  # a province or a city of the impact panel (e.g. Bandung): the model knows
    )
