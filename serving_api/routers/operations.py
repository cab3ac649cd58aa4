"""The operations view: the pipeline's and the stack's numbers over the last hour, asked of
Prometheus's query API (``prometheus.url``; empty: the embedded server). Open with the other
reads; with closed reads (``api.open_reads`` off) only for the operator and admin roles."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from lakehouse.catalog.ops_metrics import OPS_PANELS, Panel
from serving_api.auth import Permission
from serving_api.deps import SettingsDep, require_when_closed
from serving_api.errors import ApiError
from serving_api.routers import API_PREFIX, READ_ERRORS

router = APIRouter(prefix=API_PREFIX, tags=["operations"])

POINTS = 120  # samples per series over the window asked for


class Series(BaseModel):
    label: str  # the value of the panel's legend label ("" when the panel has one series)
    points: list[tuple[float, float]]  # (POSIX seconds, value)


class PanelData(BaseModel):
    id: str
    title: str
    unit: str
    query: str
    series: list[Series]


class FiringAlert(BaseModel):
    name: str
    state: str  # pending | firing
    severity: str
    summary: str
    since: str
    labels: dict[str, str]


class Operations(BaseModel):
    prometheus: str
    minutes: int
    step_seconds: float  # between two points of a series: a new one comes this often
    panels: list[PanelData]
    alerts: list[FiringAlert]


def _unavailable(url: str, error: str) -> ApiError:
    return ApiError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"Prometheus at {url} does not answer ({error}): is it running? `./run.sh status`",
    )


async def _get(client: httpx.AsyncClient, url: str, path: str, **params: Any) -> Any:
    try:
        response = await client.get(f"{url}{path}", params=params)
    except httpx.HTTPError as exc:
        raise _unavailable(url, type(exc).__name__) from None
    if response.status_code != 200:
        raise _unavailable(url, f"{path} -> {response.status_code}")
    return response.json()["data"]


def _float(value: str) -> float | None:
    number = float(value)
    return None if number != number else number  # NaN: no value at that time


async def _panel(
    client: httpx.AsyncClient, url: str, panel: Panel, start: float, end: float, step: float
) -> PanelData:
    data = await _get(
        client, url, "/api/v1/query_range", query=panel.query, start=start, end=end, step=step
    )
    series = [
        Series(
            label=result["metric"].get(panel.legend, "") if panel.legend else "",
            points=[(float(t), v) for t, raw in result["values"] if (v := _float(raw)) is not None],
        )
        for result in data["result"]
    ]
    series.sort(key=lambda s: s.label)
    return PanelData(
        id=panel.id, title=panel.title, unit=panel.unit, query=panel.query, series=series
    )


def _alert(raw: dict[str, Any]) -> FiringAlert:
    labels = raw.get("labels", {})
    return FiringAlert(
        name=labels.get("alertname", ""),
        state=raw.get("state", ""),
        severity=labels.get("severity", ""),
        summary=raw.get("annotations", {}).get("summary", ""),
        since=raw.get("activeAt", ""),
        labels={k: v for k, v in labels.items() if k not in ("alertname", "severity")},
    )


@router.get(
    "/ops/overview",
    response_model=Operations,
    summary="The operations view: ingest rate, Kafka lag, batch duration, freshness, "
    "quarantine by reason, holds open, restarts per service and the alerts firing, from "
    "Prometheus (operator or admin when api.open_reads is off)",
    responses={**READ_ERRORS, 503: {"description": "Prometheus does not answer"}},
    dependencies=[require_when_closed(Permission.operations)],
)
async def overview(
    settings: SettingsDep,
    minutes: Annotated[int, Query(ge=5, le=1440, description="the window, ending now")] = 60,
) -> Operations:
    url = settings.prometheus.base_url
    end = time.time()
    start = end - minutes * 60
    step = max(minutes * 60 / POINTS, settings.prometheus.scrape_seconds)
    async with httpx.AsyncClient(timeout=settings.prometheus.query_timeout_seconds) as client:
        *panels, alerts = await asyncio.gather(
            *[_panel(client, url, p, start, end, step) for p in OPS_PANELS],
            _get(client, url, "/api/v1/alerts"),
        )
    return Operations(
        prometheus=url,
        minutes=minutes,
        step_seconds=step,
        panels=panels,
        alerts=[_alert(a) for a in alerts["alerts"]],
    )
