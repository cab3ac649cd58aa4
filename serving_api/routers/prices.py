"""Markets, live prices, price history and regional summaries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket, status
from fastapi.routing import APIRoute

from lakehouse.catalog.conf import Conf
from serving_api.deps import ConfDep, GoldDep, PriceHubDep
from serving_api.errors import ApiError, resolve_commodity, resolve_market, resolve_province
from serving_api.models import HistoryPage, LivePrice, Market, RegionSummary
from serving_api.push import Filter
from serving_api.routers import API_PREFIX, READ_ERRORS, json_bytes
from serving_api.views import (
    HISTORY,
    LIVE,
    MARKETS,
    REGIONS,
    CursorError,
    HistoryQuery,
    LiveFilter,
    encode,
    history_page,
)

router = APIRouter(
    prefix=API_PREFIX,
    tags=["prices"],
    responses=READ_ERRORS,
)

Commodity = Annotated[
    str | None,
    Query(
        max_length=64,
        description="catalogue id or name (`bawang_merah`, `Bawang Merah`)",
        examples=["bawang_merah"],
    ),
]
MarketId = Annotated[
    str | None, Query(max_length=64, description="a market of GET /markets", examples=["IP-001"])
]
Region = Annotated[
    str | None, Query(max_length=128, description="province", examples=["DKI Jakarta"])
]


LIVE_FILTERS = {  # name → (maximum length, description, example)
    "commodity": (64, "catalogue id or name (`bawang_merah`, `Bawang Merah`)", "bawang_merah"),
    "region": (128, "province", "DKI Jakarta"),
    "market_id": (64, "a market of GET /markets", "IP-001"),
}


def _filter(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    limit = LIVE_FILTERS[name][0]
    if value is not None and len(value) > limit:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"query parameter {name!r}: at most {limit} characters",
        )
    return value


def live_filters(params: Mapping[str, str], conf: Conf) -> LiveFilter:
    """The filters of a /prices/live query, checked and resolved against ``conf`` (a 422 or 404
    ApiError otherwise): commodity, region, market_id — None for one not given."""
    return (
        resolve_commodity(conf, _filter(params, "commodity")),
        resolve_province(conf, _filter(params, "region")),
        resolve_market(conf, _filter(params, "market_id")),
    )


@router.get(
    "/prices/live",
    response_model=list[LivePrice],
    summary="Newest price per market × commodity, with its change vs the previous day and the "
    "7-day median",
    openapi_extra={
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "string", "maxLength": limit, "examples": [example]},
            }
            for name, (limit, description, example) in LIVE_FILTERS.items()
        ]
    },
)
async def live_prices(request: Request, cache: GoldDep, conf: ConfDep) -> Response:
    # The hottest route reads its three optional filters itself (documented above through
    # openapi_extra): FastAPI's per-parameter injection would double the cost of a request.
    # Once the view is built, serving_api.fast_path answers the valid queries before FastAPI.
    filters = live_filters(request.query_params, conf)
    view = await cache.get(LIVE)
    return json_bytes(view.answer(*filters))


#: the route of ``live_prices`` (the router's only one so far), which ``serving_api.fast_path``
#: answers for the full stack once the live view is built
(LIVE_ROUTE,) = cast(list[APIRoute], router.routes)


@router.websocket("/prices/ws")
async def prices_ws(
    conf: ConfDep,
    websocket: WebSocket,
    hub: PriceHubDep,
    market_id: str | None = None,
    commodity: str | None = None,
    region: str | None = None,
) -> None:
    """Each message is ``{"type": "price", "price": {...}}`` — every accepted price as it lands
    in silver, with the fields of an item of GET /prices/live — as a JSON text frame."""
    try:
        wanted = Filter.of(
            market_id=resolve_market(conf, market_id),
            commodity=resolve_commodity(conf, commodity),
            region=resolve_province(conf, region),
        )
    except ApiError as exc:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=str(exc.detail)[:120])
        return
    await hub.serve(websocket, wanted)


@router.get("/markets", response_model=list[Market], summary="Markets and what they sell")
async def list_markets(cache: GoldDep) -> Response:
    return json_bytes(await cache.get(MARKETS))


@router.get(
    "/prices/history",
    response_model=HistoryPage,
    summary="Open/high/low/close per local day or hour, a page at a time",
    description="Rows come in (commodity, market, region, period) order. Pass `next_cursor` "
    "back as `cursor` with the same other parameters for the next page; `next_cursor` is null "
    "on the last page. `start` and `end` are local dates, both included.",
)
async def price_history(
    conf: ConfDep,
    cache: GoldDep,
    commodity: Commodity = None,
    market_id: MarketId = None,
    region: Region = None,
    start: Annotated[date | None, Query(description="first local day (YYYY-MM-DD)")] = None,
    end: Annotated[date | None, Query(description="last local day (YYYY-MM-DD)")] = None,
    granularity: Literal["day", "hour"] = "day",
    limit: Annotated[int, Query(ge=1, le=1000, description="rows per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor")] = None,
) -> Response:
    if start and end and start > end:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"start ({start}) is after end ({end}): swap them or leave one out",
        )
    query = HistoryQuery(
        granularity,
        resolve_commodity(conf, commodity),
        resolve_market(conf, market_id),
        resolve_province(conf, region),
        start,
        end,
    )
    index = await cache.get(HISTORY[granularity])
    try:
        page = history_page(index, query, limit, cursor)
    except CursorError as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return json_bytes(encode(page))


@router.get(
    "/regions/{province}/summary",
    response_model=RegionSummary,
    summary="Median, min, max and spread of the markets' prices in a province (newest day)",
)
async def region_summary(
    conf: ConfDep,
    cache: GoldDep,
    province: Annotated[str, Path(max_length=128, examples=["DKI Jakarta"])],
    commodity: Commodity = None,
) -> RegionSummary:
    name = resolve_province(conf, province)
    wanted = resolve_commodity(conf, commodity)
    regions = await cache.get(REGIONS)
    items = [r for r in regions.get(name, []) if wanted is None or r["commodity"] == wanted]
    return RegionSummary.model_validate({"province": name, "items": items})
