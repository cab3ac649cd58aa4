"""The FastAPI application: gold tables served from memory, HTTP ingest, live alerts, metrics.

``create_app(settings)`` is the factory uvicorn runs (``uvicorn --factory
serving_api.app:create_app``). It makes the application's resources — a
``serving_api.deps.Resources``, the one thing on ``app.state``, which the routes take as
dependencies — and wires the routers and middleware around them; the lifespan starts the push
hubs and closes the publisher and the registry.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.accounts.registry import open_registry
from lakehouse.domain.accounts.subscriptions import SubscriptionStore
from lakehouse.domain.supply_chain.supply_registry import SupplyRegistry
from lakehouse.io.lake import delivery_counts
from lakehouse.io.status import restart_counts
from serving_api import errors
from serving_api.auth import Keyring, ReadAccess
from serving_api.cache import GoldCache
from serving_api.deps import Resources
from serving_api.fast_path import LiveFastPath
from serving_api.hardening import RateLimit, RateLimits, SecurityHeaders
from serving_api.impact import ImpactExplainer
from serving_api.ingest import PricePublisher
from serving_api.language import localized_alert
from serving_api.metrics import ApiMetrics, MetricsMiddleware, RestartCollector
from serving_api.push import Hub, alert_feed, alert_message, price_feed, price_message
from serving_api.routers import (
    API_PREFIX,
    alerts,
    dashboard,
    devices,
    ingest,
    insights,
    ledger,
    news,
    operations,
    ops,
    prices,
    quarantine,
    reports,
    subscriptions,
    supply,
    validation,
)
from serving_api.views import LIVE

SWITCH_SECONDS = 0.001


def _resources(settings: Settings) -> Resources:
    """The resources of one application; its lifespan starts the hubs and closes the rest."""
    metrics = ApiMetrics()
    cache = GoldCache(settings, metrics)
    impact = ImpactExplainer(settings)
    metrics.watch_lag(lambda: view.newest if (view := cache.current(LIVE)) else None)
    metrics.watch_deliveries(lambda: delivery_counts(cache.lake))
    metrics.registry.register(RestartCollector(lambda: restart_counts(settings)))
    registry = open_registry(settings)
    return Resources(
        settings=settings,
        conf=conf_of(settings),
        metrics=metrics,
        cache=cache,
        impact=impact,
        keyring=Keyring(settings),
        publisher=PricePublisher(settings),
        alert_hub=Hub(
            "alerts",
            alert_feed(cache),
            settings.api.alerts_poll_seconds,
            metrics,
            metrics.alerts_pushed,
            alert_message(impact.attach),
            localized_alert,
        ),
        price_hub=Hub(
            "prices",
            price_feed(cache),
            settings.api.prices_poll_seconds,
            metrics,
            metrics.prices_pushed,
            price_message,
        ),
        registry=registry,
        supply_registry=SupplyRegistry(registry.engine, registry.conf),
        subscriptions=SubscriptionStore(registry.engine, registry.conf),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API of ``settings`` (default: ``load_settings()``); what ``uvicorn --factory`` runs."""
    settings = settings or load_settings()
    resources = _resources(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What the process holds once started (modules, reference data) is left out of the
        # cyclic garbage collector's full passes, which hold the interpreter — and so the event
        # loop — for every object they look at: ~70 ms each before, ~10 ms after.
        gc.freeze()
        # A worker thread preparing a view hands the interpreter back to the event loop within
        # SWITCH_SECONDS of its asking, not Python's default 5 ms.
        sys.setswitchinterval(SWITCH_SECONDS)
        for hub in resources.hubs:
            hub.start()
        reports.warm_up_briefs()
        yield
        for hub in resources.hubs:
            await hub.stop()
        await asyncio.to_thread(resources.publisher.close)
        resources.registry.close()

    app = FastAPI(
        title="Smart Market Lakehouse API",
        version="1.0.0",
        description="Prices, markets, forecasts, alerts and data quality of Indonesian "
        "traditional markets, served from the gold Delta tables.",
        lifespan=lifespan,
        # our own Prometheus metrics instead: no OpenTelemetry work per request
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        max_body_size=settings.api.max_body_bytes,
    )
    app.state.resources = resources
    errors.install(app)
    # the hottest routes first: a request is matched against the routes in order
    for router in (
        prices.router,
        insights.router,
        quarantine.router,
        alerts.router,
        ingest.router,
        ops.router,
    ):
        app.include_router(router)
    app.include_router(devices.router)
    app.include_router(ledger.router)
    app.include_router(operations.router)
    app.include_router(supply.router)
    app.include_router(subscriptions.router)
    app.include_router(validation.router)
    app.include_router(reports.router)
    app.include_router(news.router)
    dashboard.install(app)
    app.add_middleware(ReadAccess, keyring=resources.keyring, prefix=API_PREFIX)
    app.add_middleware(RateLimit, limits=RateLimits(settings.security))
    if settings.security.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.security.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=resources.metrics)
    # in front of everything above: the same middleware around a ready /prices/live answer
    app.add_middleware(
        LiveFastPath,
        cache=resources.cache,
        conf=resources.conf,
        route=prices.LIVE_ROUTE,
        middleware=list(app.user_middleware),
    )
    return app
