"""Liveness, readiness and Prometheus metrics (open: meant for the supervisor and the scraper;
``/metrics`` needs the scrape token or an admin credential when reads are closed)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST

from lakehouse.config.settings import Settings
from lakehouse.config.storage import exists
from lakehouse.io.kafka_io import kafka_reachable
from serving_api.cache import GoldCache
from serving_api.deps import GoldDep, MetricsDep, ReadinessDep, SettingsDep, may_scrape
from serving_api.models import Check, Readiness

READY_CACHE_SECONDS = 2.0

router = APIRouter(tags=["ops"])


def _kafka_check(settings: Settings) -> Check:
    ok, detail = kafka_reachable(settings)
    return Check(ok=ok, detail=detail)


def _lakehouse_check(settings: Settings) -> Check:
    root = settings.paths.lakehouse_root
    if not exists(settings, str(root)):
        return Check(ok=False, detail=f"{root} does not exist yet")
    return Check(ok=True, detail=str(root))


def _views_check(cache: GoldCache) -> Check:
    if failing := cache.failing():
        reasons = (f"{view}: {why}" for view, why in sorted(failing.items()))
        return Check(ok=False, detail="; ".join(reasons))
    return Check(ok=True, detail="every view follows its tables")


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: Kafka and the lakehouse are reachable and every prepared view follows "
    "its tables (503 otherwise)",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
)
async def ready(
    settings: SettingsDep, cache: ReadinessDep, gold: GoldDep, response: Response
) -> Readiness:
    cached = cache.get("ready")
    if cached is None or time.monotonic() - cached[0] > READY_CACHE_SECONDS:
        kafka, lakehouse = await asyncio.gather(
            asyncio.to_thread(_kafka_check, settings),
            asyncio.to_thread(_lakehouse_check, settings),
        )
        views = _views_check(gold)
        ok = kafka.ok and lakehouse.ok and views.ok
        result = Readiness(
            status="ready" if ok else "not ready",
            checks={"kafka": kafka, "lakehouse": lakehouse, "views": views},
        )
        cache["ready"] = cached = (time.monotonic(), result)
    readiness = cached[1]
    if readiness.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests and latency per route, cache, table versions, lag "
    "(the scrape token or an admin when api.open_reads is off)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    dependencies=[may_scrape],
)
async def metrics(metrics: MetricsDep) -> Response:
    scraped = await asyncio.to_thread(metrics.scrape)
    return Response(scraped, media_type=CONTENT_TYPE_LATEST)
