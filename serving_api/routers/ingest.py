"""HTTP ingest of price events (for partners and devices without MQTT or Kafka)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, status

from lakehouse.catalog.events import PriceEvent
from serving_api.auth import Permission
from serving_api.deps import MetricsDep, PublisherDep, SettingsDep, require
from serving_api.errors import ApiError
from serving_api.ingest import KafkaUnavailable, PricePublisher
from serving_api.models import Accepted, Error
from serving_api.routers import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["ingest"])

EXAMPLE = {
    "market_id": "IP-001",
    "commodity": "bawang_merah",
    "price": 42054,
    "unit": "kg",
    "observed_at": "2025-03-21T10:00:00+07:00",
    "source": "partner-a",
}


#: the error answers of every ingest route
INGEST_RESPONSES: dict[int | str, dict] = {
    401: {"model": Error, "description": "missing or unknown API key"},
    403: {"model": Error, "description": "the key's role may not ingest"},
    413: {"model": Error, "description": "body or event count over the limit"},
    422: {"model": Error, "description": "an event does not match the schema"},
    503: {"model": Error, "description": "Kafka did not confirm in time; retry"},
}


Publish = Callable[[PricePublisher, list[Any]], Awaitable[None]]
Acceptor = Callable[[list[Any], Publish], Awaitable[Accepted]]


async def _acceptor(
    settings: SettingsDep, publisher: PublisherDep, metrics: MetricsDep
) -> Acceptor:
    """Dependency of the ingest routes: ``await accept(events, publish)`` checks the number of a
    request's ``events``, ``publish``es them with the application's publisher and answers which
    were accepted (a 413, 422 or 503 ApiError otherwise)."""

    async def accept(events: list[Any], publish: Publish) -> Accepted:
        cap = settings.api.max_events_per_request
        if len(events) > cap:
            raise ApiError(413, f"{len(events)} events in one request; send at most {cap}")
        if not events:
            raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "no events: send one or a list")
        try:
            await publish(publisher, events)
        except KafkaUnavailable as exc:
            raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        metrics.events_ingested.inc(len(events))
        return Accepted(accepted=len(events), event_ids=[e.event_id for e in events])

    return accept


Accept = Annotated[Acceptor, Depends(_acceptor)]


@router.post(
    "/prices",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Send one or many price events (needs an ingest or admin key)",
    description="Each event is validated against the price event schema and produced to the "
    "prices topic; 202 means Kafka confirmed all of them. Send your own `event_id` to retry "
    "safely: the pipeline keeps one copy per id.",
    dependencies=[require(Permission.ingest)],
    responses=INGEST_RESPONSES,
)
async def post_prices(
    accept: Accept,
    body: Annotated[
        PriceEvent | list[PriceEvent],
        Body(examples=[EXAMPLE, [EXAMPLE, {**EXAMPLE, "market_id": "IP-002"}]]),
    ],
) -> Accepted:
    return await accept(body if isinstance(body, list) else [body], PricePublisher.publish)
