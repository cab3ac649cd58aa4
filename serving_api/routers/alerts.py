"""Early-warning alerts from ``gold.alerts``: a query, and a WebSocket that pushes new and changed
alerts as they land — each message in the language asked for (``?lang=id|en``, else the
``Accept-Language`` header's, else Indonesian)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, WebSocket, status
from fastapi.concurrency import run_in_threadpool

from lakehouse.catalog.conf import Conf
from serving_api.deps import AlertHubDep, ConfDep, GoldDep, ImpactDep, SettingsDep
from serving_api.errors import ApiError, resolve_commodity, resolve_province
from serving_api.language import LANGUAGES, localized_alert, preferred_language
from serving_api.models import Alert
from serving_api.push import Filter
from serving_api.routers import API_PREFIX, READ_ERRORS, TOTAL_HEADER, AcceptLanguage, Lang
from serving_api.routers.insights import Limit
from serving_api.routers.prices import Commodity, Offset, Region
from serving_api.views import ALERTS

router = APIRouter(prefix=API_PREFIX, tags=["alerts"])

Severity = Annotated[
    str | None,
    Query(max_length=128, description="one or more, comma-separated", examples=["critical"]),
]


def alert_filter(
    conf: Conf, severity: str | None, province: str | None, commodity: str | None
) -> Filter:
    severities = [s.strip() for s in severity.split(",") if s.strip()] if severity else None
    return Filter.of(
        severity=severities or None,
        region=resolve_province(conf, province),
        commodity=resolve_commodity(conf, commodity),
    )


@router.get(
    "/alerts",
    response_model=list[Alert],
    summary="Alerts, most recently updated first",
    responses=READ_ERRORS,
)
async def alerts(
    response: Response,  # its headers: the total
    cache: GoldDep,
    conf: ConfDep,
    settings: SettingsDep,
    impact: ImpactDep,
    since: Annotated[
        datetime | None,
        Query(description="updated at or after (ISO-8601; without offset: local market time)"),
    ] = None,
    severity: Severity = None,
    province: Region = None,
    commodity: Commodity = None,
    limit: Limit = 100,
    offset: Offset = 0,
    lang: Lang = None,
    accept_language: AcceptLanguage = None,
) -> list[dict[str, Any]]:
    wanted = alert_filter(conf, severity, province, commodity)
    language = preferred_language(lang, accept_language)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=settings.tz)
    rows = [
        a
        for a in await cache.get(ALERTS)
        if wanted.matches(a)
        and (since is None or (a["updated_at"] is not None and a["updated_at"] >= since))
    ]
    response.headers[TOTAL_HEADER] = str(len(rows))
    chosen = rows[offset : offset + limit]
    return await run_in_threadpool(
        lambda: [impact.attach(localized_alert(row, language)) for row in chosen]
    )


@router.websocket("/alerts/ws")
async def alerts_ws(
    websocket: WebSocket,
    hub: AlertHubDep,
    conf: ConfDep,
    severity: str | None = None,
    province: str | None = None,
    commodity: str | None = None,
    lang: str | None = None,
) -> None:
    """Each message is ``{"type": "alert", "alert": {...}}`` — a new alert or a change of one
    (e.g. resolved), as ``GET /alerts`` serves it in the connection's language (``lang``, else
    the handshake's ``Accept-Language``) — as a JSON text frame, within a second or two of it
    landing in gold."""
    try:
        wanted = alert_filter(conf, severity, province, commodity)
        if lang is not None and lang not in LANGUAGES:
            raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, f"lang {lang!r}", LANGUAGES)
    except ApiError as exc:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=str(exc.detail)[:120])
        return
    language = preferred_language(lang, websocket.headers.get("accept-language"))
    await hub.serve(websocket, wanted, language)
