"""What the routes use, as FastAPI dependencies.

``serving_api.app.create_app`` makes one ``Resources`` per application — settings, metrics, the
gold cache, the impact explainer, the key ring, the Kafka publisher, the two push hubs, the
device and supply registries, the alert subscriptions and the readiness answer of a moment
ago — and puts it on ``app.state.resources``, the only thing kept there; the app's lifespan
starts the hubs and closes the publisher and the registry. A route takes what it needs as a
parameter typed with one of the aliases below (``cache: GoldDep``), and the caller through
``require(permission)``; no route reads ``app.state``. Every dependency is ``async``: a plain
``def`` would cost a thread hop per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from lakehouse.catalog.conf import Conf
from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.registry import Registry
from lakehouse.domain.accounts.subscriptions import SubscriptionStore
from lakehouse.domain.supply_chain.supply_registry import SupplyRegistry
from lakehouse.io.lake import Lakehouse
from serving_api.auth import HEADER, Keyring, Permission, Principal, presented
from serving_api.cache import GoldCache
from serving_api.impact import ImpactExplainer
from serving_api.ingest import PricePublisher
from serving_api.metrics import ApiMetrics
from serving_api.models import Readiness
from serving_api.push import Hub

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one application holds; made by its factory, closed by its lifespan."""

    settings: Settings
    conf: Conf  # the reference data of the settings' configuration folder
    metrics: ApiMetrics
    cache: GoldCache
    impact: ImpactExplainer
    keyring: Keyring
    publisher: PricePublisher
    alert_hub: Hub  # new and changed alerts (WebSocket /alerts/ws)
    price_hub: Hub  # prices as they land in silver (WebSocket /prices/ws)
    registry: Registry  # devices and users
    supply_registry: SupplyRegistry  # the same store: supply entities
    subscriptions: SubscriptionStore  # the same store: users' alert subscriptions
    #: the last readiness answer, by "ready", with its time.monotonic()
    readiness: dict[str, tuple[float, Readiness]] = field(default_factory=dict)

    @property
    def hubs(self) -> tuple[Hub, ...]:
        return self.alert_hub, self.price_hub


def _resources(connection: HTTPConnection) -> Resources:
    return connection.app.state.resources


def _part(part: Callable[[Resources], T]) -> Any:
    """Dependency: ``part`` of the resources of the application answering the request or
    WebSocket."""

    async def dependency(connection: HTTPConnection) -> T:
        return part(_resources(connection))

    return Depends(dependency)


SettingsDep = Annotated[Settings, _part(lambda r: r.settings)]
ConfDep = Annotated[Conf, _part(lambda r: r.conf)]
MetricsDep = Annotated[ApiMetrics, _part(lambda r: r.metrics)]
GoldDep = Annotated[GoldCache, _part(lambda r: r.cache)]
LakeDep = Annotated[Lakehouse, _part(lambda r: r.cache.lake)]  # the tables, bound once
ImpactDep = Annotated[ImpactExplainer, _part(lambda r: r.impact)]
KeyringDep = Annotated[Keyring, _part(lambda r: r.keyring)]
PublisherDep = Annotated[PricePublisher, _part(lambda r: r.publisher)]
AlertHubDep = Annotated[Hub, _part(lambda r: r.alert_hub)]
PriceHubDep = Annotated[Hub, _part(lambda r: r.price_hub)]
RegistryDep = Annotated[Registry, _part(lambda r: r.registry)]
SupplyRegistryDep = Annotated[SupplyRegistry, _part(lambda r: r.supply_registry)]
SubscriptionsDep = Annotated[SubscriptionStore, _part(lambda r: r.subscriptions)]
ReadinessDep = Annotated[dict[str, tuple[float, Readiness]], _part(lambda r: r.readiness)]

_header = APIKeyHeader(
    name=HEADER, auto_error=False, description="API key (mint one with ./run.sh api-key ROLE)"
)
_bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/v1/auth/token")


def require(permission: Permission) -> Any:
    """Dependency: the caller may ``permission``; its value is the caller (None: an anonymous
    read allowed by ``api.open_reads``). The credentials show in the OpenAPI document."""

    async def dependency(
        keyring: KeyringDep,
        key: Annotated[str | None, Depends(_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal | None:
        return keyring.check(key, bearer.credentials if bearer else None, permission)

    return Depends(dependency)


def require_when_closed(permission: Permission) -> Any:
    """Dependency: with closed reads (``api.open_reads`` off) the caller may ``permission``;
    with open reads nothing more is asked than of every read (``auth.ReadAccess``)."""

    async def dependency(request: Request, keyring: KeyringDep) -> None:
        if not keyring.open_reads:
            keyring.check(*presented(request.scope), permission)

    return Depends(dependency)


async def _scraper(request: Request, keyring: KeyringDep) -> None:
    keyring.check_scrape(*presented(request.scope))


#: the dependency of ``/metrics``: open with open reads, else Prometheus's scrape token or an admin
may_scrape = Depends(_scraper)
