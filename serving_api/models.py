"""Response and request bodies of the API (pydantic), with the examples the OpenAPI docs show."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lakehouse.catalog.events import HoldStatus, ReviewDecision
from lakehouse.catalog.tables import GOLD_ALERTS, GOLD_ANOMALIES, GOLD_FORECASTS
from ml.impact_result import ImpactResult
from serving_api.language import MESSAGE_COLUMNS, Language
from serving_api.table_models import table_model

#: what ``GET /alerts`` serves of a ``gold.alerts`` row (the rule's own bookkeeping stays out,
#: the messages are served in the request's language: ``message``, ``lang``)
ALERT_FIELDS = tuple(
    c
    for c in GOLD_ALERTS.columns
    if c not in ("alert_key", "last_firing_at", *MESSAGE_COLUMNS.values())
)
#: the model that made an ML output row
MODEL_FIELDS = ("model_name", "model_version", "run_id")
#: a forecast series' fields of ``gold.forecasts`` and those of each of its points
FORECAST_HEADER_FIELDS = (
    "series_id",
    "series_kind",
    "market_id",
    "region",
    "commodity",
    "origin_date",
    *MODEL_FIELDS,
    "surge_prob",
    "surge_warn_at",
    "surge_because",
    "served_because",
    "backtest_mape",
    "naive_mape",
    "coverage_80",
    "coverage_95",
)
FORECAST_POINT_FIELDS = (
    "target_date",
    "horizon",
    "yhat",
    "yhat_lower_80",
    "yhat_upper_80",
    "yhat_lower_95",
    "yhat_upper_95",
)


def _example(**values: object) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [values]})


class Error(BaseModel):
    model_config = _example(
        detail="unknown commodity 'beras_x'", choices=["bawang_merah", "beras_medium"]
    )
    detail: str = Field(description="what is wrong, in words")
    choices: list[str] | None = Field(None, description="valid values, when a name was unknown")
    errors: list[str] | None = Field(None, description="each invalid parameter, in words (422)")


class CommodityOut(BaseModel):
    """A commodity of the catalogue: the id events and tables use, and what people call it."""

    model_config = _example(
        id="beras",
        name="Beras Medium",
        name_en="Medium rice",
        unit="kg",
        min_price=7000,
        max_price=30000,
        aliases=["beras", "medium rice"],
    )
    id: str
    name: str = Field(description="Indonesian name")
    name_en: str = Field(description="English name")
    unit: str = Field(description="every price is IDR per this unit")
    min_price: float = Field(description="below it a price is quarantined (price_out_of_range)")
    max_price: float = Field(description="above it likewise")
    aliases: list[str] = Field(description="other spellings the API and the producers accept")


class Market(BaseModel):
    model_config = _example(
        market_id="IP-001",
        name="Pasar Induk Kramat Jati",
        city="Jakarta Timur",
        province="DKI Jakarta",
        regency_code="31.75",
        regency="Kota Administrasi Jakarta Timur",
        lat=-6.2799,
        lon=106.8686,
        kind="pasar",
        commodities=["bawang_merah", "cabai_rawit_merah"],
    )
    market_id: str
    name: str
    city: str
    province: str
    regency_code: str | None = Field(
        description="official code (PP.RR) of its regency or city; null for a province's or the "
        "nation's own series"
    )
    regency: str | None = Field(description="the regency's or city's official name")
    lat: float | None
    lon: float | None
    kind: str = Field(description="pasar (a physical market) or aggregate (a published average)")
    commodities: list[str] = Field(description="commodities with a price in gold.price_latest")


class LivePrice(BaseModel):
    model_config = _example(
        market_id="IP-001",
        commodity="bawang_merah",
        region="DKI Jakarta",
        price=42054.0,
        unit="kg",
        observed_at="2025-03-21T10:00:00+07:00",
        event_id="ea6480ff-d360-5c51-99af-1ff0c16f680f",
        source="pasar-report",
        flags=[],
        previous_close=41500.0,
        change_previous_day=554.0,
        change_previous_day_pct=1.33,
        median_7d=41000.0,
        change_median_7d_pct=2.57,
    )
    market_id: str
    commodity: str
    region: str | None
    price: float = Field(description="IDR per unit")
    unit: str
    observed_at: datetime = Field(description="local market time (with offset)")
    event_id: str
    source: str
    flags: list[str] = Field(description="statistical validation flags the price carried")
    previous_close: float | None = Field(description="close of the series' previous day")
    change_previous_day: float | None
    change_previous_day_pct: float | None
    median_7d: float | None = Field(description="median daily close of the 7 days before")
    change_median_7d_pct: float | None


class OhlcPoint(BaseModel):
    model_config = _example(
        market_id="IP-001",
        commodity="bawang_merah",
        region="DKI Jakarta",
        period="2025-03-21",
        open=41800.0,
        high=42100.0,
        low=41800.0,
        close=42054.0,
        mean=41985.0,
        count=3,
    )
    market_id: str
    commodity: str
    region: str | None
    period: str = Field(description="local day (YYYY-MM-DD) or local hour (ISO-8601 with offset)")
    open: float
    high: float
    low: float
    close: float
    mean: float
    count: int


class HistoryPage(BaseModel):
    model_config = _example(
        granularity="day",
        items=[OhlcPoint.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
        next_cursor="WyJkYXkiLCJiYXdhbmdfbWVyYWgiLCJJUC0wMDEiXQ",
    )
    granularity: Literal["day", "hour"]
    items: list[OhlcPoint]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")


class RegionCommodity(BaseModel):
    model_config = _example(
        commodity="bawang_merah",
        date="2025-03-21",
        median=42000.0,
        min=40100.0,
        max=45500.0,
        spread=5400.0,
        markets=12,
    )
    commodity: str
    date: date
    median: float
    min: float
    max: float
    spread: float
    markets: int


class RegionPrice(BaseModel):
    model_config = _example(
        code="32",
        name="Jawa Barat",
        province="Jawa Barat",
        lat=-6.92063,
        lon=107.60332,
        markets=7,
        median=41200.0,
        average=40950.0,
        price=40950.0,
    )
    code: str = Field(description="BPS code of the province (PP) or regency (PP.RR)")
    name: str
    province: str
    lat: float = Field(description="centroid")
    lon: float
    markets: int = Field(description="physical markets with a price")
    median: float | None = Field(description="median of the markets' newest prices")
    average: float | None = Field(
        description="the province's own published average (its PROV-<code> series); null for a "
        "regency or a province without one"
    )
    price: float | None = Field(description="the average where there is one, else the median")


class RegionPrices(BaseModel):
    level: Literal["province", "regency"]
    national_median: float | None = Field(description="median of the regions' prices")
    items: list[RegionPrice]


class RegionSummary(BaseModel):
    model_config = _example(
        province="DKI Jakarta",
        items=[RegionCommodity.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
    )
    province: str
    items: list[RegionCommodity] = Field(description="the newest day of each commodity")


ForecastPoint = table_model(
    "ForecastPoint", GOLD_FORECASTS, FORECAST_POINT_FIELDS, ("target_date", "horizon", "yhat")
)


class ForecastSeries(
    table_model(
        "ForecastHeader",
        GOLD_FORECASTS,
        FORECAST_HEADER_FIELDS,
        ("series_id", "commodity", "origin_date"),
    )
):
    model_config = _example(
        series_id="IP-001:bawang_merah",
        series_kind="market",
        market_id="IP-001",
        region="DKI Jakarta",
        commodity="bawang_merah",
        origin_date="2025-03-21",
        model_name="prophet",
        model_version="3",
        run_id="6c1f0e9a7b2d4f3e8a1b2c3d4e5f6a7b",
        surge_prob=0.12,
        surge_warn_at=0.55,
        surge_because="surge classifier 0.12 (warns at ≥ 0.55; cutoff 2025-03-21): ret_7 +4.1% "
        "(+0.61), nat_up_share 0.18 (+0.22), commodity bawang_merah (+0.15)",
        served_because="naive: no rival beat it by 2% (best: lgbm_global 0.991 × naive over 30 "
        "origins, DM p = 0.31)",
        backtest_mape=1.82,
        naive_mape=1.82,
        coverage_80=0.84,
        coverage_95=0.96,
        points=[
            {
                "target_date": "2025-03-22",
                "horizon": 1,
                "yhat": 42300.0,
                "yhat_lower_80": 41200.0,
                "yhat_upper_80": 43400.0,
                "yhat_lower_95": 40600.0,
                "yhat_upper_95": 44000.0,
            }
        ],
    )
    points: list[ForecastPoint]  # type: ignore[valid-type]


Anomaly = table_model(
    "Anomaly",
    GOLD_ANOMALIES,
    tuple(c for c in GOLD_ANOMALIES.columns if c != "created_at"),
    (*GOLD_ANOMALIES.keys, "score"),
    example=dict(
        market_id="IP-001",
        region="DKI Jakarta",
        commodity="cabai_rawit_merah",
        date="2025-03-21",
        kind="temporal",
        score=0.91,
        price=98000.0,
        explanation="price 2.4x the series' 30-day median",
        model_name="isolation_forest",
        model_version="2",
        run_id="6c1f0e9a7b2d4f3e8a1b2c3d4e5f6a7b",
    ),
)


class QualityRow(BaseModel):
    model_config = _example(
        date="2025-03-21",
        source="pihps-export",
        device_id="",
        received=7998,
        accepted=7869,
        quarantined=129,
        quarantined_by_reason={"iqr": 129, "zscore": 116},
        duplicates=0,
        late=0,
    )
    date: date
    source: str
    device_id: str
    received: int
    accepted: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    duplicates: int
    late: int


class Alert(table_model("AlertRow", GOLD_ALERTS, ALERT_FIELDS, GOLD_ALERTS.keys)):
    model_config = _example(
        alert_id="price_spike:IP-001:cabai_rawit:2025-03-21",
        rule="price_spike",
        severity="critical",
        status="open",
        market_id="IP-001",
        region="DKI Jakarta",
        commodity="cabai_rawit",
        metric="price",
        value=98000.0,
        reference=61000.0,
        details="{}",
        opened_at="2025-03-21T03:00:00Z",
        resolved_at=None,
        updated_at="2025-03-21T03:00:00Z",
        message="Harga Cabai Rawit Merah di Pasar Induk Kramat Jati, DKI Jakarta naik 60,7 % "
        "menjadi Rp 98.000 (median 7 hari Rp 61.000)",
        lang="id",
    )
    message: str | None = Field(
        description="the alert in words, in the request's language (?lang=id|en, else "
        "Accept-Language, else Indonesian): names of market, province and commodity, rupiah "
        "as Rp 98.000, percentages as 60,7 % (id) / 60.7% (en)"
    )
    lang: Language = Field(description="the language of message: id (Indonesian) or en")
    impact: ImpactResult | None = Field(
        None,
        description="critical alerts: which factors drove the month's price change "
        "(GET /impact), when the impact model can tell",
    )


class Accepted(BaseModel):
    model_config = _example(accepted=1, event_ids=["0b6f7d38-6f5e-4cf1-9d2b-1f7c4f0b9a11"])
    accepted: int
    event_ids: list[uuid.UUID] = Field(description="in the order of the request")


class QuarantinedRecord(BaseModel):
    model_config = _example(
        quarantined_at="2025-03-21T03:00:02Z",
        source="pihps-export",
        market_id="PIHPS-AGG",
        device_id=None,
        event_type="price",
        subject="bawang_merah",
        observed_at="2025-03-21T03:00:00Z",
        reasons=["iqr", "zscore"],
        details={"z_score": 4.2, "rolling_median": 41000.0},
        error=None,
        raw='{"market_id": "PIHPS-AGG", "price": 420540, ...}',
        topic="market.prices",
        partition=0,
        offset=1234,
    )
    quarantined_at: datetime | None
    source: str | None
    market_id: str | None
    device_id: str | None
    event_type: str | None
    subject: str | None = Field(description="commodity of a price or metric of a reading")
    observed_at: datetime | None
    reasons: list[str] = Field(description="ids of the rules the record broke")
    details: dict[str, float | str | None] = Field(description="numbers behind the rules")
    error: str | None = Field(description="what was wrong, in words (unparseable records)")
    raw: str | None = Field(description="the record as received")
    topic: str | None
    partition: int | None
    offset: int | None


class QuarantinePage(BaseModel):
    total: int = Field(description="records matching the filters")
    items: list[QuarantinedRecord]


class HoldDecision(BaseModel):
    decision: HoldStatus
    decided_by: str = Field(description="rule:confirmation, or operator:<API key name>")
    note: str
    decided_at: datetime


class HeldPrice(BaseModel):
    model_config = _example(
        event_id="0b6f7d38-6f5e-4cf1-9d2b-1f7c4f0b9a11",
        status="held",
        market_id="IP-001",
        commodity="cabai_merah",
        region="DKI Jakarta",
        price=90000.0,
        baseline=50000.0,
        move=0.8,
        hold_reasons=["iqr", "median_deviation", "zscore"],
        source="infopangan",
        observed_at="2025-03-21T03:00:00Z",
        held_at="2025-03-21T03:00:02Z",
        decisions=[],
    )
    event_id: str
    status: HoldStatus
    market_id: str
    commodity: str
    region: str | None
    price: float = Field(description="IDR per catalogue unit")
    baseline: float | None = Field(description="the level before the move")
    move: float | None = Field(description="price / baseline - 1")
    hold_reasons: list[str] = Field(description="the statistical rules that held it")
    source: str | None
    observed_at: datetime
    held_at: datetime
    decisions: list[HoldDecision] = Field(description="every decision on it, oldest first")


class HeldPage(BaseModel):
    total: int = Field(description="held prices matching the filters")
    items: list[HeldPrice]


class Review(BaseModel):
    model_config = _example(note="confirmed by phone with the market office")
    note: str = Field(min_length=1, max_length=500, description="why: kept with the decision")


class ReviewAccepted(BaseModel):
    review_id: uuid.UUID
    event_id: str
    decision: ReviewDecision


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, Check]
