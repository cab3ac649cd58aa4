"""The device registry over HTTP (operator, admin) and tokens for users and devices.

Registering or rotating answers the device's credentials once, a device token and a QR code
(PNG, base64) of the onboarding payload: everything a device needs to start publishing. Every
change rewrites the broker's password and ACL files and makes the broker re-read them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Literal

import segno
from fastapi import APIRouter, Body, status
from pydantic import BaseModel, Field

from lakehouse.catalog.events import Metric
from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.broker_auth import sync_broker
from lakehouse.domain.accounts.registry import Device, Registry, RegistryError
from serving_api.auth import Keyring, Permission
from serving_api.deps import KeyringDep, RegistryDep, SettingsDep, require
from serving_api.errors import ApiError
from serving_api.models import Error
from serving_api.routers import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["devices"])

MANAGE_ERRORS: dict[int | str, dict] = {
    401: {"model": Error, "description": "no credentials, an unknown key or a bad/expired token"},
    403: {"model": Error, "description": "the role may not manage devices (operator, admin)"},
    404: {"model": Error, "description": "no such device"},
    409: {"model": Error, "description": "the device exists already, or is revoked"},
    422: {"model": Error, "description": "unknown market or metric, malformed device id"},
}


class DeviceIn(BaseModel):
    market_id: str = Field(examples=["IP-001"])
    metrics: list[Metric] = Field(default_factory=lambda: list(Metric), min_length=1)
    device_id: str | None = Field(
        None, description="your own id (letters, digits, _ . -); default <market>-<random>"
    )


class DeviceOut(BaseModel):
    device_id: str
    market_id: str
    metrics: list[str]
    status: Literal["active", "revoked"]
    credential_version: int
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
    topic_prefix: str


class Broker(BaseModel):
    host: str
    port: int
    tls: bool


class Onboarding(BaseModel):
    """What the device needs to publish: also the content of the QR code (as JSON)."""

    broker: Broker
    topic_root: str
    topic_prefix: str
    client_id: str
    username: str
    password: str
    market_id: str
    metrics: list[str]


class Credentials(BaseModel):
    device: DeviceOut
    onboarding: Onboarding
    token: str = Field(description="device JWT: sub, role=device, market, exp")
    token_expires_at: datetime
    qr_png: str = Field(description="PNG of the onboarding payload, base64")


class TokenIn(BaseModel):
    username: str = Field(description="a user name, or a device id")
    password: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    role: str


def _out(device: Device, settings: Settings) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        market_id=device.market_id,
        metrics=list(device.metrics),
        status=device.status,  # type: ignore[arg-type]
        credential_version=device.credential_version,
        created_at=device.created_at,
        updated_at=device.updated_at,
        revoked_at=device.revoked_at,
        topic_prefix=device.topic_prefix(settings.mqtt.topic_root),
    )


def qr_png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=4, border=2)
    return out.getvalue()


def _credentials(
    settings: Settings, keyring: Keyring, registry: Registry, device: Device, password: str
) -> Credentials:
    """What a device registered or rotated gets: its onboarding, a token and the QR code; the
    broker accepts it from now on."""
    m = settings.mqtt
    onboarding = Onboarding(
        broker=Broker(host=m.host, port=m.port, tls=bool(m.tls_ca or m.broker_cert)),
        topic_root=m.topic_root,
        topic_prefix=device.topic_prefix(m.topic_root),
        client_id=device.device_id,
        username=device.device_id,
        password=password,
        market_id=device.market_id,
        metrics=list(device.metrics),
    )
    token, expires = keyring.tokens.issue(
        device.device_id,
        "device",
        "device",
        timedelta(days=settings.security.device_token_days),
        market=device.market_id,
    )
    sync_broker(settings, registry)
    return Credentials(
        device=_out(device, settings),
        onboarding=onboarding,
        token=token,
        token_expires_at=expires,
        qr_png=base64.b64encode(qr_png(onboarding.model_dump_json())).decode(),
    )


@contextmanager
def registry_answers() -> Iterator[None]:
    """A refusal of the registry becomes the HTTP answer it names (404, 409, 422)."""
    try:
        yield
    except RegistryError as exc:
        raise ApiError(exc.status, str(exc)) from None


@router.post(
    "/devices",
    status_code=status.HTTP_201_CREATED,
    response_model=Credentials,
    summary="Register a device for a market and metric set (operator, admin)",
    description="Answers the credentials (shown once), a device token and a QR code of the "
    "onboarding payload. The broker accepts the device at once.",
    dependencies=[require(Permission.devices)],
    responses=MANAGE_ERRORS,
)
def register_device(
    settings: SettingsDep,
    keyring: KeyringDep,
    registry: RegistryDep,
    body: Annotated[DeviceIn, Body(examples=[{"market_id": "IP-001", "metrics": ["crowd_count"]}])],
) -> Credentials:
    with registry_answers():
        device, password = registry.register_device(
            body.market_id, [m.value for m in body.metrics], body.device_id
        )
    return _credentials(settings, keyring, registry, device, password)


@router.get(
    "/devices",
    response_model=list[DeviceOut],
    summary="List devices, optionally of one market or status (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=MANAGE_ERRORS,
)
def list_devices(
    settings: SettingsDep,
    registry: RegistryDep,
    market_id: str | None = None,
    status: Literal["active", "revoked"] | None = None,
) -> list[DeviceOut]:
    return [_out(d, settings) for d in registry.devices(market_id, status)]


@router.get(
    "/devices/{device_id}",
    response_model=DeviceOut,
    summary="One device (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=MANAGE_ERRORS,
)
def get_device(settings: SettingsDep, registry: RegistryDep, device_id: str) -> DeviceOut:
    with registry_answers():
        return _out(registry.device(device_id), settings)


@router.post(
    "/devices/{device_id}/rotate",
    response_model=Credentials,
    summary="New credentials for a device; the old ones stop working (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=MANAGE_ERRORS,
)
def rotate_device(
    settings: SettingsDep, keyring: KeyringDep, registry: RegistryDep, device_id: str
) -> Credentials:
    with registry_answers():
        device, password = registry.rotate(device_id)
    return _credentials(settings, keyring, registry, device, password)


@router.post(
    "/devices/{device_id}/revoke",
    response_model=DeviceOut,
    summary="Revoke a device: the broker refuses it, the bridge dead-letters it (operator, admin)",
    dependencies=[require(Permission.devices)],
    responses=MANAGE_ERRORS,
)
def revoke_device(settings: SettingsDep, registry: RegistryDep, device_id: str) -> DeviceOut:
    with registry_answers():
        device = registry.revoke(device_id)
    sync_broker(settings, registry)
    return _out(device, settings)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="A short-lived bearer token for a user (or a device) and its password",
    responses={401: {"model": Error, "description": "wrong user name or password"}},
)
def issue_token(
    settings: SettingsDep, keyring: KeyringDep, registry: RegistryDep, body: TokenIn
) -> TokenOut:
    lifetime = timedelta(minutes=settings.security.token_minutes)
    if role := registry.verify_user(body.username, body.password):
        token, expires = keyring.tokens.issue(body.username, role, "user", lifetime)
    elif device := registry.verify_device(body.username, body.password):
        token, expires = keyring.tokens.issue(
            device.device_id, "device", "device", lifetime, market=device.market_id
        )
        role = "device"
    else:
        raise ApiError(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    return TokenOut(access_token=token, expires_at=expires, role=role)
