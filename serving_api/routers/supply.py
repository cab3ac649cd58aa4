"""Supply chain over HTTP (docs/supply.md): the entity registry (operators), stock and shipment
events in, stock views and the route analysis out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Body, Query, status
from pydantic import BaseModel, Field

from lakehouse.catalog.events import EntityKind, ShipmentEvent, StockEvent
from lakehouse.catalog.reference import Regency, regencies
from lakehouse.catalog.tables import (
    GOLD_SHIPMENTS,
    GOLD_STOCK_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
)
from lakehouse.domain.accounts.registry import NotFound
from lakehouse.domain.supply_chain.supply import ROUTE_SEPARATOR, Entity
from lakehouse.domain.supply_chain.supply_registry import SupplyRegistry
from lakehouse.domain.supply_chain.supply_routes import PastShipment, analyze
from lakehouse.io.fast_read import Condition, TableMissing
from lakehouse.io.lake import LakeTable
from serving_api.auth import Permission
from serving_api.deps import ConfDep, LakeDep, SettingsDep, SupplyRegistryDep, require
from serving_api.errors import ApiError, resolve_commodity, resolve_province
from serving_api.ingest import PricePublisher
from serving_api.models import Accepted, Error
from serving_api.routers import API_PREFIX, READ_ERRORS
from serving_api.routers.devices import MANAGE_ERRORS, registry_answers
from serving_api.routers.ingest import INGEST_RESPONSES, Accept

router = APIRouter(prefix=f"{API_PREFIX}/supply", tags=["supply"])

ENTITY_ERRORS: dict[int | str, dict] = {
    **MANAGE_ERRORS,
    404: {"model": Error, "description": "no such supply entity"},
    409: {"model": Error, "description": "the entity exists already"},
    422: {"model": Error, "description": "unknown kind, regency or commodity; malformed id"},
}
#: days of history behind a stock trend
TREND_DAYS = 7
MAX_DISTANCE_KM = 20_000.0  # farther than any two places of Indonesia by road and sea
DEPARTURE_YEARS = (2000, 2100)  # the holiday calendar's useful span


class EntityIn(BaseModel):
    entity_id: str = Field(examples=["WH-3204-BULOG"], description="letters, digits, _ . -")
    name: str = Field(min_length=1, max_length=128)
    kind: EntityKind
    regency_code: str = Field(
        examples=["32.04"], description="PP.RR (datasets/indonesia_regencies.csv)"
    )
    latitude: float | None = Field(None, description="default: the regency's centroid")
    longitude: float | None = None
    commodities: list[str] = Field(min_length=1, examples=[["beras"]])


class EntityChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    kind: EntityKind | None = None
    regency_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    commodities: list[str] | None = Field(None, min_length=1)


class EntityOut(BaseModel):
    entity_id: str
    name: str
    kind: str
    regency_code: str
    regency: str
    province: str
    latitude: float
    longitude: float
    commodities: list[str]


def _out(entity: Entity) -> EntityOut:
    return EntityOut(
        entity_id=entity.entity_id,
        name=entity.name,
        kind=entity.kind,
        regency_code=entity.regency_code,
        regency=entity.regency.name,
        province=entity.province,
        latitude=entity.latitude,
        longitude=entity.longitude,
        commodities=list(entity.commodities),
    )


def _centroid(code: str) -> Regency:
    if code not in regencies():
        raise ApiError(422, f"unknown regency code {code!r} (PP.RR, e.g. 32.04)")
    return regencies()[code]


@router.get(
    "/entities", response_model=list[EntityOut], summary="Supply entities", responses=READ_ERRORS
)
def list_entities(
    conf: ConfDep,
    registry: SupplyRegistryDep,
    kind: EntityKind | None = None,
    region: str | None = None,
) -> list[EntityOut]:
    province = resolve_province(conf, region)
    return [_out(e) for e in registry.entities(kind and kind.value, province)]


@router.get(
    "/entities/{entity_id}",
    response_model=EntityOut,
    summary="One supply entity",
    responses=ENTITY_ERRORS,
)
def get_entity(registry: SupplyRegistryDep, entity_id: str) -> EntityOut:
    with registry_answers():
        return _out(registry.entity(entity_id))


@router.post(
    "/entities",
    status_code=status.HTTP_201_CREATED,
    response_model=EntityOut,
    summary="Register a supply entity (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=ENTITY_ERRORS,
)
def create_entity(registry: SupplyRegistryDep, body: EntityIn) -> EntityOut:
    regency = _centroid(body.regency_code)
    entity = Entity(
        entity_id=body.entity_id,
        name=body.name,
        kind=body.kind.value,
        regency_code=body.regency_code,
        latitude=regency.latitude if body.latitude is None else body.latitude,
        longitude=regency.longitude if body.longitude is None else body.longitude,
        commodities=tuple(body.commodities),
    )
    with registry_answers():
        return _out(registry.create(entity))


@router.patch(
    "/entities/{entity_id}",
    response_model=EntityOut,
    summary="Change a supply entity (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=ENTITY_ERRORS,
)
def change_entity(registry: SupplyRegistryDep, entity_id: str, body: EntityChange) -> EntityOut:
    changes = body.model_dump(exclude_none=True, mode="json")
    with registry_answers():
        return _out(registry.update(entity_id, **changes))


@router.delete(
    "/entities/{entity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a supply entity: later events naming it are quarantined (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=ENTITY_ERRORS,
)
def delete_entity(registry: SupplyRegistryDep, entity_id: str) -> None:
    with registry_answers():
        registry.delete(entity_id)


SupplyEvent = Annotated[StockEvent | ShipmentEvent, Field(discriminator="event_type")]
EXAMPLE = {
    "event_type": "stock",
    "entity_id": "WH-3212-BULOG",
    "commodity": "beras",
    "quantity": 1250000,
    "observed_at": "2025-03-21T18:00:00+07:00",
    "source": "bulog-wms",
}


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Send stock and shipment events (needs an ingest or admin key)",
    description="Each event is validated against its schema (`event_type` stock or shipment) "
    "and produced to the supply topic; the pipeline judges it against the entity registry "
    "(an unknown entity is quarantined, never created).",
    dependencies=[require(Permission.ingest)],
    responses=INGEST_RESPONSES,
)
async def post_events(
    accept: Accept,
    body: Annotated[SupplyEvent | list[SupplyEvent], Body(examples=[EXAMPLE])],
) -> Accepted:
    events = body if isinstance(body, list) else [body]
    return await accept(events, PricePublisher.publish_supply)


# ---- stock views ------------------------------------------------------------------------------


def _rows(table: LakeTable, where: Sequence[Condition] = ()) -> pd.DataFrame:
    try:
        return table.read(where=where).to_pandas()
    except TableMissing:
        return pd.DataFrame(columns=list(table.table.columns))


class CommodityStock(BaseModel):
    commodity: str
    date: date
    stock: float
    days_of_cover: float | None
    mean_outflow: float | None
    trend: Literal["rising", "falling", "flat", "unknown"]
    change_pct: float | None = Field(description=f"stock change over the last {TREND_DAYS} days")


class EntityStock(BaseModel):
    entity: EntityOut
    commodities: list[CommodityStock]


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _trend(series: pd.DataFrame) -> tuple[str, float | None]:
    latest = series.iloc[-1]
    earlier = series[series["date"] >= latest["date"] - pd.Timedelta(days=TREND_DAYS)]
    first = float(earlier.iloc[0]["stock"])
    if len(earlier) < 2 or first <= 0:
        return "unknown", None
    change = float(latest["stock"]) / first - 1
    return ("rising" if change > 0.05 else "falling" if change < -0.05 else "flat"), round(
        100 * change, 1
    )


@router.get(
    "/stock/{entity_id}",
    response_model=EntityStock,
    summary="An entity's latest stock per commodity, days of cover and trend",
    responses={**READ_ERRORS, 404: {"model": Error, "description": "no such supply entity"}},
)
async def entity_stock(lake: LakeDep, registry: SupplyRegistryDep, entity_id: str) -> EntityStock:
    try:
        entity = registry.entity(entity_id)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    rows = await asyncio.to_thread(_rows, lake[GOLD_STOCK_DAILY], [("entity_id", "=", entity_id)])
    found = []
    for commodity, series in rows.sort_values("date").groupby("commodity"):
        latest = series.iloc[-1]
        trend, change = _trend(series)
        found.append(
            CommodityStock(
                commodity=commodity,
                date=latest["date"],
                stock=float(latest["stock"]),
                days_of_cover=_number(latest["days_of_cover"]),
                mean_outflow=_number(latest["mean_outflow"]),
                trend=trend,
                change_pct=change,
            )
        )
    return EntityStock(entity=_out(entity), commodities=found)


class ProvinceStock(BaseModel):
    province: str
    commodity: str
    date: date
    stock: float
    days_of_cover: float | None
    shipments_in_transit: int
    shipments_late: int


@router.get(
    "/stock",
    response_model=list[ProvinceStock],
    summary="Stock and days of cover per province (latest day of each), optionally of one "
    "commodity or province",
    responses=READ_ERRORS,
)
async def province_stock(
    conf: ConfDep, lake: LakeDep, commodity: str | None = None, region: str | None = None
) -> list[ProvinceStock]:
    filters = []
    if commodity := resolve_commodity(conf, commodity):
        filters.append(("commodity", "=", commodity))
    if province := resolve_province(conf, region):
        filters.append(("province", "=", province))
    rows = await asyncio.to_thread(_rows, lake[GOLD_SUPPLY_REGION_DAILY], filters)
    latest = rows.sort_values("date").groupby(["province", "commodity"]).tail(1)
    return [
        ProvinceStock(
            province=r.province,
            commodity=r.commodity,
            date=r.date,
            stock=float(r.stock),
            days_of_cover=_number(r.days_of_cover),
            shipments_in_transit=int(r.shipments_in_transit),
            shipments_late=int(r.shipments_late),
        )
        for r in latest.sort_values(["province", "commodity"]).itertuples()
    ]


class ShipmentOut(BaseModel):
    shipment_id: str
    commodity: str
    quantity: float
    origin_id: str
    destination_id: str
    route_id: str
    state: str
    late: bool
    delay_hours: float
    departed_at: datetime
    expected_at: datetime
    arrived_at: datetime | None


@router.get(
    "/shipments",
    response_model=list[ShipmentOut],
    summary="Shipments with their state and delay (newest departures first)",
    responses=READ_ERRORS,
)
async def shipments(
    lake: LakeDep,
    state: Literal["in_transit", "arrived"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ShipmentOut]:
    filters = [("state", "=", state)] if state else []
    rows = await asyncio.to_thread(_rows, lake[GOLD_SHIPMENTS], filters)
    rows = rows.sort_values("departed_at", ascending=False).head(limit)
    return [
        ShipmentOut(
            **{
                k: (None if pd.isna(v) else v)
                for k, v in r.items()
                if k in ShipmentOut.model_fields
            }
        )
        for r in rows.to_dict("records")
    ]


# ---- route analysis -----------------------------------------------------------------------------


class Factor(BaseModel):
    name: str
    score: float = Field(description="0 … 1")
    weight: float = Field(description="percent; the factors' weights sum to 100")
    hours_at_full_score: float
    detail: str


class Place(BaseModel):
    regency_code: str
    regency: str
    province: str
    island: str


class RouteAnalysis(BaseModel):
    route_id: str
    origin: Place
    destination: Place
    departure: date
    distance_km: float
    road_km: float
    sea_km: float
    sea_crossing: bool
    transit_hours: float
    expected_delay_hours: float
    expected_arrival_hours: float
    delay_risk: float = Field(description="0 … 100: the weighted factor scores")
    factors: list[Factor]
    weights_fitted: bool = Field(description="false: the rule hours (too little history)")
    fitted_on_shipments: int
    rules: list[str]


def _place(registry: SupplyRegistry, name: str) -> Regency:
    """A place given as a supply entity id or a regency code."""
    if name in regencies():
        return regencies()[name]
    try:
        return registry.entity(name).regency
    except NotFound:
        raise ApiError(
            404, f"unknown place {name!r}: give a supply entity id or a regency code (PP.RR)"
        ) from None


def _history(shipped: LakeTable) -> list[PastShipment]:
    rows = _rows(shipped, [("state", "=", "arrived")])
    return [
        PastShipment(r.route_id, r.departed_at.date(), float(r.planned_hours), float(r.delay_hours))
        for r in rows.itertuples()
    ]


@router.get(
    "/route/analyze",
    response_model=RouteAnalysis,
    summary="Distance, transit time and expected delay of a route, with the delay's factors "
    "named and weighted",
    description="Give `origin` and `destination` (supply entity ids or regency codes) or the "
    "`route_id` of a seen route (`32.12>31.72`); `distance_km` overrides the computed distance. "
    "Method and which parts are rules: docs/supply.md#route-analysis.",
    responses={
        **READ_ERRORS,
        404: {"model": Error, "description": "unknown place, route or commodity"},
        422: {"model": Error, "description": "no route given, or distance_km ≤ 0"},
    },
)
async def route_analyze(
    conf: ConfDep,
    settings: SettingsDep,
    lake: LakeDep,
    registry: SupplyRegistryDep,
    origin: str | None = None,
    destination: str | None = None,
    route_id: str | None = None,
    commodity: str | None = None,
    departure: date | None = None,
    distance_km: Annotated[
        float | None, Query(gt=0, le=MAX_DISTANCE_KM, description="km, > 0")
    ] = None,
) -> dict[str, Any]:
    resolve_commodity(conf, commodity)
    if departure is not None and not DEPARTURE_YEARS[0] <= departure.year <= DEPARTURE_YEARS[1]:
        raise ApiError(
            422, f"departure must be in the years {DEPARTURE_YEARS[0]}–{DEPARTURE_YEARS[1]}"
        )
    if route_id:
        origin, _, destination = route_id.partition(ROUTE_SEPARATOR)
        if not destination:
            raise ApiError(
                422, f"route_id {route_id!r} must be <origin>{ROUTE_SEPARATOR}<destination>"
            )
    if not origin or not destination:
        raise ApiError(422, "give origin and destination, or route_id")
    start, end = _place(registry, origin), _place(registry, destination)
    history = await asyncio.to_thread(_history, lake[GOLD_SHIPMENTS])
    return await asyncio.to_thread(
        analyze, start, end, departure or date.today(), history, settings.supply, distance_km
    )
