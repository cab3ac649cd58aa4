"""Forecasts, anomalies and data quality (empty lists until the tables exist)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from lakehouse.catalog.conf import Conf
from ml.impact_result import ImpactResult
from serving_api.deps import ConfDep, GoldDep, ImpactDep
from serving_api.errors import (
    ApiError,
    resolve_commodity,
    resolve_market,
    resolve_province,
    resolve_regency,
)
from serving_api.language import preferred_language
from serving_api.models import Anomaly, CommodityOut, Error, ForecastSeries, QualityRow
from serving_api.routers import API_PREFIX, READ_ERRORS, TOTAL_HEADER, AcceptLanguage, Lang
from serving_api.routers.prices import Commodity, MarketId, Offset, Regency, Region
from serving_api.views import ANOMALIES, FORECASTS, QUALITY

router = APIRouter(
    prefix=API_PREFIX,
    tags=["insights"],
    responses=READ_ERRORS,
)

Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many rows")]
Province = Annotated[
    str | None,
    Query(max_length=128, description="province: name, alias or BPS code", examples=["Jawa Barat"]),
]
Since = Annotated[date | None, Query(description="from this date on (YYYY-MM-DD)")]


@router.get(
    "/forecasts",
    response_model=list[ForecastSeries],
    summary="The newest 7-day forecast of each series, with 80 % and 95 % intervals",
)
async def forecasts(
    conf: ConfDep,
    cache: GoldDep,
    commodity: Commodity = None,
    market_id: MarketId = None,
    province: Province = None,
    regency: Regency = None,
) -> list[dict[str, Any]]:
    wanted, market = resolve_commodity(conf, commodity), resolve_market(conf, market_id)
    where = place_filter(conf, province, regency)
    return [
        s
        for s in await cache.get(FORECASTS)
        if (wanted is None or s["commodity"] == wanted)
        and (market is None or s["market_id"] == market)
        and where(s)
    ]


def place_filter(
    conf: Conf, province: str | None, regency: str | None
) -> Callable[[dict[str, Any]], bool]:
    """Whether a row (``market_id``, ``region``) is in the province and the regency asked for
    (404 for one nobody knows); a regency takes only its markets' rows."""
    wanted = resolve_province(conf, province), resolve_regency(conf, regency)
    if wanted == (None, None):
        return lambda _row: True

    def inside(row: dict[str, Any]) -> bool:
        place = conf.place(row["market_id"], row["region"])
        return all(w is None or w == p for w, p in zip(wanted, place, strict=True))

    return inside


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
    province: Province = None,
    regency: Regency = None,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    wanted = resolve_commodity(conf, commodity)
    where = place_filter(conf, province, regency)
    rows = [
        a
        for a in await cache.get(ANOMALIES)
        if (wanted is None or a["commodity"] == wanted)
        and (since is None or a["date"] >= since)
        and a["score"] >= min_score
        and where(a)
    ]
    response.headers[TOTAL_HEADER] = str(len(rows))
    return rows[offset : offset + limit]


@router.get(
    "/commodities",
    response_model=list[CommodityOut],
    summary="The commodity catalogue (conf/commodities.yaml): names, unit, plausible range",
)
async def commodities(conf: ConfDep) -> list[CommodityOut]:
    return [
        CommodityOut(
            id=c.id,
            name=c.name,
            name_en=c.label("en"),
            unit=c.unit,
            min_price=c.min_price,
            max_price=c.max_price,
            aliases=list(c.aliases),
        )
        for c in conf.commodities.values()
    ]


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
    summary="Which factors drove the price change of a month or week (vs the one before), "
    "or that it is mostly unexplained",
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
    lang: Lang = None,
    accept_language: AcceptLanguage = None,
) -> ImpactResult:
    if (market_id is None) == (region is None):
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of market_id and region"
        )
    answer = await run_in_threadpool(
        explainer.explain,
        resolve_commodity(conf, commodity),
        day,
        resolve_market(conf, market_id),
        region,  # a province or a city of the impact panel (e.g. Bandung): the model knows
    )
    return answer.in_language(preferred_language(lang, accept_language))
