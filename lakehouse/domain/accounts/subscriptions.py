"""Alert subscriptions: which alerts a user of the registry wants, on which channel.

A subscription belongs to one user (``users`` of ``lakehouse.domain.accounts.registry``) and names
one channel and its recipient — an e-mail address, a webhook URL, a Telegram chat, a WhatsApp
number — and what to send there: provinces, regencies (by official code, ``PP.RR``; given
also by name or as ``markets.csv`` writes its markets' city), commodities, rules or rule
families (``AlertRules.families``), a minimum severity, immediately or batched into a daily
digest. An empty list means "any". Kept in the registry's SQL store (migration 0003); the
notifier (``streaming_jobs.alerts.notifier``) reads them and records each delivery in
``gold.subscription_deliveries``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from lakehouse.catalog.conf import Conf
from lakehouse.domain.accounts.registry import DEVICE_ID, NotFound, RegistryError, users_table

Channel = Literal["email", "webhook", "telegram", "whatsapp"]
CHANNELS: tuple[str, ...] = get_args(Channel)
SEVERITY_RANK = {"warning": 1, "critical": 2}
#: what a recipient of each channel looks like
RECIPIENT = {
    "email": re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"),
    "webhook": re.compile(r"^https?://\S+$"),
    "telegram": re.compile(r"^(-?\d{1,20}|@[A-Za-z]\w{4,31})$"),
    "whatsapp": re.compile(r"^\d{8,15}$"),
}
RECIPIENT_HINT = {
    "email": "an e-mail address",
    "webhook": "an http(s) URL",
    "telegram": "a chat id (digits, '-' first for a group) or a @channel name",
    "whatsapp": "a phone number in international form, digits only (6281234567890)",
}

_meta = sa.MetaData()
subscriptions_table = sa.Table(
    "subscriptions",
    _meta,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("provinces", sa.JSON, nullable=False),
    sa.Column("regencies", sa.JSON, nullable=False),
    sa.Column("commodities", sa.JSON, nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("min_severity", sa.String(16), nullable=False),
    sa.Column("digest", sa.Boolean, nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
#: what an update may change (the id and the owner stay)
EDITABLE = (
    "channel",
    "recipient",
    "provinces",
    "regencies",
    "commodities",
    "rules",
    "min_severity",
    "digest",
    "language",
)
_LISTS = ("provinces", "regencies", "commodities", "rules")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the times of a subscription not stored yet


@dataclass(frozen=True)
class Subscription:
    """One user's wish for alerts on one channel; empty filters match anything."""

    subscription_id: str
    username: str
    channel: str
    recipient: str
    provinces: tuple[str, ...] = ()
    regencies: tuple[str, ...] = ()
    commodities: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # rule ids or family names
    min_severity: str = "warning"
    digest: bool = False  # one message a day instead of one per alert state
    language: str = "id"  # id, en or both
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _subscription(row: Any) -> Subscription:
    values = {f.name: getattr(row, f.name) for f in fields(Subscription)}
    values.update({name: tuple(values[name]) for name in _LISTS})
    values["created_at"], values["updated_at"] = _utc(row.created_at), _utc(row.updated_at)
    return Subscription(**values)


def _resolved(kind: str, given: tuple[str, ...], lookup: Any, choices: list[str]) -> tuple:
    """Each of ``given`` by its canonical name (``lookup`` → None when unknown: NotFound)."""
    found = []
    for name in given:
        canonical = lookup(name)
        if canonical is None:
            raise NotFound(f"unknown {kind} {name!r}; one of {sorted(choices)}")
        found.append(canonical)
    return tuple(dict.fromkeys(found))


def checked(sub: Subscription, conf: Conf) -> Subscription:
    """``sub`` with its filters in their canonical names (``jakarta`` → ``DKI Jakarta``,
    ``Bawang Merah`` → ``bawang_merah``); RegistryError (422) for a malformed recipient or
    setting, NotFound (404) for a place, commodity or rule nobody knows."""
    if sub.channel not in CHANNELS:
        raise RegistryError(f"channel must be one of {list(CHANNELS)}")
    if not RECIPIENT[sub.channel].match(sub.recipient):
        raise RegistryError(
            f"recipient {sub.recipient!r} is not {RECIPIENT_HINT[sub.channel]} ({sub.channel})"
        )
    if sub.min_severity not in SEVERITY_RANK:
        raise RegistryError(f"min_severity must be one of {list(SEVERITY_RANK)}")
    if sub.language not in ("id", "en", "both"):
        raise RegistryError("language must be id, en or both")
    provinces = [p.name for p in conf.provinces.values()]
    families = conf.alerts.families()
    rules = {r for members in families.values() for r in members} | set(families)
    return replace(
        sub,
        provinces=_resolved("province", sub.provinces, conf.province_name, provinces),
        regencies=_resolved("regency", sub.regencies, conf.regency_code, conf.regency_markets),
        commodities=_resolved("commodity", sub.commodities, conf.commodity_id, conf.commodities),
        rules=_resolved("rule", sub.rules, lambda r: r if r in rules else None, rules),
    )


def matches(sub: Subscription, alert: dict[str, Any], conf: Conf) -> bool:
    """Whether ``alert`` (a ``gold.alerts`` row) is one ``sub`` wants. A regency filter takes an
    alert of a market in one of the regencies, and an alert of a whole province (no market) that
    holds one; a commodity filter never takes an alert of no commodity (a sensor's)."""
    if SEVERITY_RANK[alert["severity"]] < SEVERITY_RANK[sub.min_severity]:
        return False
    if sub.rules:
        families = conf.alerts.families()
        wanted = {r for name in sub.rules for r in families.get(name, (name,))}
        if alert["rule"] not in wanted:
            return False
    if sub.commodities and alert.get("commodity") not in sub.commodities:
        return False
    province, regency = conf.place(alert.get("market_id"), alert.get("region"))
    if sub.provinces and province not in sub.provinces:
        return False
    if sub.regencies:
        # by code; one kept as its markets' city (before the codes) reads as the same code
        codes = {conf.regency_code(r) for r in sub.regencies}
        if regency is not None:
            return regency in codes
        return province in {conf.regencies[c] for c in codes if c in conf.regencies}
    return True


class SubscriptionStore:
    """Subscriptions in the registry's SQL store; every method is one short transaction."""

    def __init__(self, engine: sa.Engine, conf: Conf) -> None:
        self.engine = engine
        self.conf = conf

    def subscriptions(self, username: str | None = None) -> list[Subscription]:
        """Every subscription, or one user's, by id."""
        query = subscriptions_table.select().order_by(subscriptions_table.c.subscription_id)
        if username is not None:
            query = query.where(subscriptions_table.c.username == username)
        with self.engine.connect() as conn:
            return [_subscription(row) for row in conn.execute(query)]

    def subscription(self, subscription_id: str) -> Subscription:
        table = subscriptions_table
        with self.engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.subscription_id == subscription_id))
            found = row.first()
        if found is None:
            raise NotFound(f"no subscription {subscription_id!r}")
        return _subscription(found)

    def create(self, sub: Subscription) -> Subscription:
        """Store a new subscription (its id made here) of an existing user."""
        if not DEVICE_ID.match(sub.username):
            raise RegistryError(f"user name {sub.username!r} must match {DEVICE_ID.pattern}")
        now = datetime.now(UTC)
        sub = replace(
            checked(sub, self.conf),
            subscription_id=f"sub-{secrets.token_hex(6)}",
            created_at=now,
            updated_at=now,
        )
        with self.engine.begin() as conn:
            users = users_table.select().where(users_table.c.username == sub.username)
            if conn.execute(users).first() is None:
                raise NotFound(f"no user {sub.username!r} (./run.sh user NAME ROLE)")
            conn.execute(subscriptions_table.insert().values(**self._values(sub)))
        return sub

    def update(self, subscription_id: str, **changes: Any) -> Subscription:
        """Change some of a subscription's ``EDITABLE`` fields."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise RegistryError(f"cannot change {unknown}; editable: {list(EDITABLE)}")
        changes.update({k: tuple(v) for k, v in changes.items() if k in _LISTS})
        sub = replace(
            checked(replace(self.subscription(subscription_id), **changes), self.conf),
            updated_at=datetime.now(UTC),
        )
        table = subscriptions_table
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.subscription_id == subscription_id)
                .values(**self._values(sub))
            )
        return sub

    def delete(self, subscription_id: str) -> None:
        table = subscriptions_table
        with self.engine.begin() as conn:
            done = conn.execute(
                table.delete().where(table.c.subscription_id == subscription_id)
            ).rowcount
        if not done:
            raise NotFound(f"no subscription {subscription_id!r}")

    @staticmethod
    def _values(sub: Subscription) -> dict[str, Any]:
        values = {f.name: getattr(sub, f.name) for f in fields(Subscription)}
        values.update({name: list(values[name]) for name in _LISTS})
        return values
