"""Markets, live prices, price history and regional summaries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket, status
from fastapi.routing import APIRoute

from lakehouse.catalog.conf import Conf
from serving_api.deps import ConfDep, GoldDep, PriceHubDep
from serving_api.errors import (
    ApiError,
    resolve_commodity,
    resolve_market,
    resolve_province,
    resolve_regency,
)
from serving_api.models import HistoryPage, LivePrice, Market, RegionPrices, RegionSummary
from serving_api.push import Filter
from serving_api.routers import API_PREFIX, READ_ERRORS, TOTAL_HEADER, json_bytes
from serving_api.views import (
    HISTORY,
    LIVE,
    MARKETS,
    REGIONS,
    CursorError,
    HistoryQuery,
    LiveQuery,
    MapLevel,
    encode,
    history_page,
    region_prices,
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
REGENCY_TEXT = "regency or city: official code (PP.RR), official name or its markets' city"
Regency = Annotated[str | None, Query(max_length=128, description=REGENCY_TEXT, examples=["32.73"])]
PAGE_MAX = 5000  # the most items of one page of a list endpoint
OFFSET_TEXT = "items to skip (the page's start)"
LIMIT_TEXT = "items per page; none: all from offset on"
Offset = Annotated[int, Query(ge=0, description=OFFSET_TEXT)]
Limit = Annotated[int | None, Query(ge=1, le=PAGE_MAX, description=LIMIT_TEXT)]


LIVE_FILTERS = {  # name → (maximum length, description, example)
    "commodity": (64, "catalogue id or name (`bawang_merah`, `Bawang Merah`)", "bawang_merah"),
    "region": (128, "province", "DKI Jakarta"),
    "market_id": (64, "a market of GET /markets", "IP-001"),
    "regency": (128, REGENCY_TEXT, "31.75"),
}
LIVE_PAGE = {  # name → (minimum, maximum, description)
    "offset": (0, None, OFFSET_TEXT),
    "limit": (1, PAGE_MAX, LIMIT_TEXT),
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


def _page_number(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    low, high, _ = LIVE_PAGE[name]
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"query parameter {name!r}: a whole number {bound}, not {value[:20]!r}",
        )
    return int(value)


def live_filters(params: Mapping[str, str], conf: Conf) -> LiveQuery:
    """The query of /prices/live, checked and resolved against ``conf`` (a 422 or 404 ApiError
    otherwise): commodity, region, market_id, regency (None for one not given) and the page."""
    regency = resolve_regency(conf, _filter(params, "regency"))
    return LiveQuery(
        resolve_commodity(conf, _filter(params, "commodity")),
        resolve_province(conf, _filter(params, "region")),
        resolve_market(conf, _filter(params, "market_id")),
        None if regency is None else conf.regency_markets.get(regency, frozenset()),
        _page_number(params, "offset") or 0,
        _page_number(params, "limit"),
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
        + [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "integer", "minimum": low}
                | ({"maximum": high} if high is not None else {}),
            }
            for name, (low, high, description) in LIVE_PAGE.items()
        ]
    },
    description="Items come by commodity, then market. Without `limit` every matching item "
    f"comes at once; the `{TOTAL_HEADER}` header says how many match, whatever the page.",
)
async def live_prices(request: Request, cache: GoldDep, conf: ConfDep) -> Response:
    # The hottest route reads its optional filters itself (documented above through
    # openapi_extra): FastAPI's per-parameter injection would double the cost of a request.
    # Once the view is built, serving_api.fast_path answers the valid queries before FastAPI.
    query = live_filters(request.query_params, conf)
    view = await cache.get(LIVE)
    return json_bytes(*view.page(query))


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


@router.get(
    "/markets",
    response_model=list[Market],
    summary="Markets and what they sell",
    description="Markets by id. Without `limit` every matching market comes at once; the "
    f"`{TOTAL_HEADER}` header says how many match, whatever the page.",
)
async def list_markets(
    cache: GoldDep,
    conf: ConfDep,
    province: Region = None,
    regency: Regency = None,
    kind: Annotated[
        Literal["pasar", "aggregate"] | None,
        Query(description="pasar (a physical market) or aggregate (a published average)"),
    ] = None,
    offset: Offset = 0,
    limit: Limit = None,
) -> Response:
    view = await cache.get(MARKETS)
    return json_bytes(
        *view.page(
            resolve_province(conf, province),
            resolve_regency(conf, regency),
            kind,
            offset,
            limit,
        )
    )


@router.get(
    "/prices/regions",
    response_model=RegionPrices,
    summary="One commodity's newest price per province or regency (the map)",
    description="Per province (`level=province`): the median of its markets' newest prices and "
    "its own published average (its `PROV-<code>` series); `price` is the average where there "
    "is one, else the median. Per regency or city (`level=regency`): the median of its "
    "markets. `national_median` is the median of the regions' prices.",
)
async def prices_by_region(
    cache: GoldDep,
    conf: ConfDep,
    commodity: Annotated[
        str,
        Query(max_length=64, description="catalogue id or name", examples=["beras"]),
    ],
    level: MapLevel = "province",
) -> Response:
    view = await cache.get(LIVE)
    wanted = resolve_commodity(conf, commodity)
    return json_bytes(encode(region_prices(view.matching(wanted), conf, level)))


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
