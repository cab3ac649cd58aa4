"""Weekly briefs of a province as PDF, XLSX or CSV (``lakehouse.domain.briefs.brief``, rendered by
``lakehouse.domain.briefs.brief_files``), from the gold and silver tables read here with
delta-rs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.tables import (
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_HOLDS,
    SILVER_NEWS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    Table,
)
from lakehouse.config.settings import Settings
from lakehouse.domain.briefs.brief import Inputs, Week, make_brief
from lakehouse.io.fast_read import TableMissing, sql_strings
from lakehouse.io.lake import Lakehouse
from serving_api.deps import ConfDep, LakeDep, SettingsDep
from serving_api.errors import ApiError, resolve_province
from serving_api.models import Error
from serving_api.routers import API_PREFIX, READ_ERRORS

router = APIRouter(prefix=API_PREFIX, tags=["reports"], responses=READ_ERRORS)
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def _rows(lake: Lakehouse, table: Table, columns: list[str], where: str) -> pd.DataFrame:
    """``columns`` of the rows of ``table`` where ``where`` holds (none before it exists; a
    column the table has not got yet, such as an older ``gold.forecasts``' ``surge_prob``,
    as nulls)."""
    try:
        rows = lake[table].where(where).to_pandas()
    except TableMissing:
        rows = pd.DataFrame()
    return rows.reindex(columns=columns)


def load_inputs(lake: Lakehouse, conf: Conf, province: str, week: Week) -> Inputs:
    """What the brief of ``province`` and ``week`` is made of
    (lakehouse.domain.briefs.brief.Inputs)."""
    markets = sql_strings([m.market_id for m in conf.markets.values() if m.province == province])
    in_province = f"t.market_id IN ({markets})"
    this_week = f"BETWEEN DATE '{week.start}' AND DATE '{week.end}'"
    days = " OR ".join(
        f"t.date BETWEEN DATE '{w.start}' AND DATE '{w.end}'"
        for w in (week, week.before(), week.year_before())
    )
    start, end = (
        at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for at in week.bounds(lake.settings.tz)
    )
    during = f"BETWEEN TIMESTAMP '{start}' AND TIMESTAMP '{end}'"
    named = sql_strings([province])
    return Inputs(
        daily=_rows(
            lake,
            GOLD_PRICE_DAILY,
            ["market_id", "commodity", "date", "close"],
            f"{in_province} AND ({days})",
        ),
        forecasts=_rows(
            lake,
            GOLD_FORECASTS,
            ["series_id", "commodity", "origin_date", "surge_prob"],
            f"t.region = {named} AND t.origin_date {this_week}",
        ),
        cover=_rows(
            lake,
            GOLD_SUPPLY_REGION_DAILY,
            ["commodity", "date", "days_of_cover"],
            f"t.province = {named} AND t.date {this_week}",
        ),
        accepted=_rows(
            lake,
            SILVER_PRICES,
            ["event_id", "commodity"],
            f"{in_province} AND t.observed_date {this_week}",
        ),
        quarantined=_rows(
            lake,
            SILVER_QUARANTINE,
            ["event_id", "subject"],
            f"t.event_type = 'price' AND {in_province} AND t.observed_at {during}",
        ),
        held=_rows(lake, SILVER_HOLDS, ["event_id"], f"{in_province} AND t.observed_at {during}"),
        news=_rows(
            lake,
            SILVER_NEWS,
            ["published_at", "title", "source", "province", "mentions"],
            f"t.published_at {during} AND (t.province = {named} OR t.province IS NULL)",
        ),
    )


def _week(text: str | None, settings: Settings) -> Week:
    today = datetime.now(settings.tz).date()
    if text is None:
        return Week.of(today).before()  # the last whole week
    try:
        week = Week.parse(text)
    except ValueError:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"week {text!r} is neither an ISO week (2026-W09) nor a date (2026-02-25)",
        ) from None
    if week.start > today:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"week {week} has not begun yet (today {today})"
        )
    return week


def _render(lake: Lakehouse, conf: Conf, province: str, week: Week, fmt: str, lang: str) -> bytes:
    """The brief's file. Its renderers (matplotlib, fpdf2, openpyxl: ~1 s of imports) load in
    the background once the API has started (``warm_up_briefs``), not before it answers."""
    from lakehouse.domain.briefs.brief_files import RENDERERS

    inputs = load_inputs(lake, conf, province, week)
    return RENDERERS[fmt](make_brief(inputs, province, week, lang, conf))


@cache  # once a process: the modules stay loaded
def warm_up_briefs() -> threading.Thread:
    """Load the brief's renderers on a daemon thread (``brief_files.warm_up``), so that the
    first brief an official asks for after a start costs what any later one does."""

    def warm() -> None:
        from lakehouse.domain.briefs.brief_files import warm_up

        warm_up()

    thread = threading.Thread(target=warm, name="brief-warm-up", daemon=True)
    thread.start()
    return thread


@router.get(
    "/reports/brief",
    summary="The weekly brief of a province: PDF, XLSX or CSV, in Indonesian or English",
    description="Per commodity: the week's average price and its change against the week "
    "before and the same week a year before, the markets that moved most, the surge "
    "probability for the next week, the stock cover, the share of reports held or quarantined "
    "and the headlines that named it; with a chart (PDF, XLSX). `week`: an ISO week "
    "(`2026-W09`) or any day of it; default the last whole week.",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the brief"},
        422: {"model": Error, "description": "a malformed week, or one that has not begun"},
    },
)
async def brief(
    settings: SettingsDep,
    lake: LakeDep,
    conf: ConfDep,
    province: Annotated[
        str, Query(max_length=128, description="name, alias or BPS code", examples=["Jawa Barat"])
    ],
    week: Annotated[str | None, Query(max_length=16, examples=["2026-W09"])] = None,
    format: Literal["pdf", "xlsx", "csv"] = "pdf",  # the query parameter's name
    lang: Literal["id", "en"] = "id",
) -> Response:
    name = resolve_province(conf, province)
    assert name is not None
    wanted = _week(week, settings)
    body = await run_in_threadpool(_render, lake, conf, name, wanted, format, lang)
    filename = f"brief-{name.replace(' ', '_')}-{wanted}.{format}"
    return Response(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
