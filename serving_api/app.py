"""FastAPI application: liveness and readiness for now; the gold endpoints grow here."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import FastAPI, Response, status
from pydantic import BaseModel

from lakehouse.settings import Settings, load_settings
from producers.kafka_io import kafka_reachable

READY_CACHE_SECONDS = 2.0


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, Check]


def _kafka_check(settings: Settings) -> Check:
    ok, detail = kafka_reachable(settings)
    return Check(ok=ok, detail=detail)


def _lakehouse_check(settings: Settings) -> Check:
    root = settings.paths.lakehouse_root
    if not root.is_dir():
        return Check(ok=False, detail=f"{root} does not exist yet")
    return Check(ok=True, detail=str(root))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="Smart Market Lakehouse API",
        version="0.1.0",
        description="Prices, markets, forecasts, alerts and data quality of Indonesian "
        "traditional markets, served from the gold Delta tables.",
    )
    cache: dict[str, tuple[float, Readiness]] = {}

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: Kafka and the lakehouse are reachable (503 otherwise)",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
    )
    async def ready(response: Response) -> Readiness:
        cached = cache.get("ready")
        if cached is None or time.monotonic() - cached[0] > READY_CACHE_SECONDS:
            kafka, lakehouse = await asyncio.gather(
                asyncio.to_thread(_kafka_check, settings),
                asyncio.to_thread(_lakehouse_check, settings),
            )
            ok = kafka.ok and lakehouse.ok
            result = Readiness(
                status="ready" if ok else "not ready",
                checks={"kafka": kafka, "lakehouse": lakehouse},
            )
            cache["ready"] = cached = (time.monotonic(), result)
        readiness = cached[1]
        if readiness.status != "ready":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return readiness

    return app


app = create_app()
