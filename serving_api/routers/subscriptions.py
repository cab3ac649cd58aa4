"""Alert subscriptions over HTTP: a user (reader, central, operator) manages their own, an admin
anyone's (``lakehouse.domain.accounts.subscriptions``; the notifier delivers them)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, status
from pydantic import BaseModel, Field

from lakehouse.domain.accounts.subscriptions import Channel, Subscription
from serving_api.auth import GRANTS, Permission, Principal
from serving_api.deps import SettingsDep, SubscriptionsDep, require
from serving_api.errors import ApiError
from serving_api.models import Error
from serving_api.routers import API_PREFIX
from serving_api.routers.devices import registry_answers

router = APIRouter(prefix=API_PREFIX, tags=["subscriptions"])

ERRORS: dict[int | str, dict] = {
    401: {"model": Error, "description": "no credentials, an unknown key or a bad/expired token"},
    403: {"model": Error, "description": "an API key that is not an admin's, or a device"},
    404: {
        "model": Error,
        "description": "no such subscription (of yours), user, place, commodity or rule",
    },
    422: {
        "model": Error,
        "description": "a malformed recipient, severity or language, or no "
        "configured channel of that kind",
    },
}
Caller = Annotated[Principal, require(Permission.subscribe)]
Severity = Literal["warning", "critical"]
Language = Literal["id", "en", "both"]


class SubscriptionChange(BaseModel):
    """What a subscription asks for; a list left empty means any."""

    channel: Channel | None = None
    recipient: str | None = Field(
        None,
        max_length=320,
        description="e-mail address, webhook URL, Telegram chat id or WhatsApp number",
    )
    provinces: list[str] | None = Field(None, description="names, aliases or BPS codes")
    regencies: list[str] | None = Field(
        None, description="regencies/cities: official codes (PP.RR), names or markets' cities"
    )
    commodities: list[str] | None = None
    rules: list[str] | None = Field(
        None,
        description="rule ids (price_spike) or families: prices, sensors, quality, supply, news",
    )
    min_severity: Severity | None = None
    digest: bool | None = Field(None, description="one message a day (alerts.digest_hour)")
    language: Language | None = None


class SubscriptionIn(SubscriptionChange):
    channel: Channel  # type: ignore[assignment]
    recipient: str = Field(max_length=320)  # type: ignore[assignment]
    username: str | None = Field(None, description="whose (admins only); default: yours")


class SubscriptionOut(BaseModel):
    subscription_id: str
    username: str
    channel: Channel
    recipient: str
    provinces: list[str]
    regencies: list[str]
    commodities: list[str]
    rules: list[str]
    min_severity: Severity
    digest: bool
    language: Language
    created_at: datetime
    updated_at: datetime


EXAMPLE = {
    "channel": "email",
    "recipient": "tpid@jatimprov.go.id",
    "provinces": ["Jawa Timur"],
    "commodities": ["beras", "cabai_rawit"],
    "rules": ["prices"],
    "min_severity": "warning",
}


def _out(sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut.model_validate(dataclasses.asdict(sub))


def _admin(who: Principal) -> bool:
    return Permission.admin in GRANTS.get(who.role, frozenset())


def _owner(who: Principal, username: str | None) -> str:
    """Whose subscriptions the caller acts on: their own, or (an admin) anyone's."""
    if _admin(who):
        if username is None and who.kind != "user":
            raise ApiError(422, "an admin key has no subscriptions of its own: name a username")
        return username or who.name
    if who.kind != "user":
        raise ApiError(status.HTTP_403_FORBIDDEN, "subscriptions belong to users: log in")
    if username not in (None, who.name):
        raise ApiError(status.HTTP_403_FORBIDDEN, "only an admin manages others' subscriptions")
    return who.name


def _own(store: SubscriptionsDep, who: Principal, subscription_id: str) -> Subscription:
    """The subscription, if the caller may see it (another user's is 404, as if absent)."""
    with registry_answers():
        sub = store.subscription(subscription_id)
    if not _admin(who) and (who.kind != "user" or sub.username != who.name):
        raise ApiError(status.HTTP_404_NOT_FOUND, f"no subscription {subscription_id!r}")
    return sub


def _carried(settings: SettingsDep, channel: str | None) -> None:
    """422 when no configured channel carries this kind (a webhook carries itself)."""
    if channel in (None, "webhook"):
        return
    if not any(c.kind == channel for c in settings.alerts.channels):
        raise ApiError(
            422, f"no {channel} channel is configured (alerts.channels): ask an administrator"
        )


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionOut],
    summary="Your alert subscriptions (an admin: anyone's, or one user's)",
    responses=ERRORS,
)
def list_subscriptions(
    store: SubscriptionsDep, who: Caller, username: str | None = None
) -> list[SubscriptionOut]:
    owner = None if _admin(who) and username is None else _owner(who, username)
    return [_out(s) for s in store.subscriptions(owner)]


@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionOut,
    summary="Subscribe to alerts by place, commodity, rule and severity, on one channel",
    description="E-mail, Telegram and WhatsApp go through the configured channel of that kind "
    "to your recipient; a webhook is your own URL. The notifier sends each alert state that "
    "appears from now on and matches, once (or in the daily digest).",
    responses=ERRORS,
)
def create_subscription(
    settings: SettingsDep,
    store: SubscriptionsDep,
    who: Caller,
    body: Annotated[SubscriptionIn, Body(examples=[EXAMPLE])],
) -> SubscriptionOut:
    _carried(settings, body.channel)
    wanted = body.model_dump(exclude_none=True, exclude={"username"})
    lists = {k: tuple(v) for k, v in wanted.items() if isinstance(v, list)}
    sub = Subscription(subscription_id="", username=_owner(who, body.username), **(wanted | lists))
    with registry_answers():
        return _out(store.create(sub))


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="One of your subscriptions",
    responses=ERRORS,
)
def get_subscription(store: SubscriptionsDep, who: Caller, subscription_id: str) -> SubscriptionOut:
    return _out(_own(store, who, subscription_id))


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change one of your subscriptions",
    responses=ERRORS,
)
def change_subscription(
    settings: SettingsDep,
    store: SubscriptionsDep,
    who: Caller,
    subscription_id: str,
    body: SubscriptionChange,
) -> SubscriptionOut:
    _own(store, who, subscription_id)
    _carried(settings, body.channel)
    with registry_answers():
        return _out(store.update(subscription_id, **body.model_dump(exclude_none=True)))


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop one of your subscriptions",
    responses=ERRORS,
)
def delete_subscription(store: SubscriptionsDep, who: Caller, subscription_id: str) -> None:
    _own(store, who, subscription_id)
    with registry_answers():
        store.delete(subscription_id)
