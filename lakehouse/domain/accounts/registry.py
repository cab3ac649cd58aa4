"""The device and user registry: who may publish readings, for which market, and who may log in.

A SQL store through SQLAlchemy: SQLite under ``<data_dir>/registry.db`` by default (WAL mode and
a busy timeout, so the API, the bridge and the simulator write it concurrently), any SQLAlchemy
URL in ``security.registry_url`` otherwise — ``postgresql+psycopg://…`` in production. The schema
is migrated with Alembic (``lakehouse/domain/accounts/migrations``) whenever the store is opened.

Passwords are stored only as PBKDF2-SHA512 hashes in Mosquitto's own ``$7$`` format, so the
broker's password file is written straight from the registry without ever knowing a password.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.events import Metric
from lakehouse.config.settings import Role, Settings

MIGRATIONS = "lakehouse.domain.accounts:migrations"
#: PBKDF2 rounds of device passwords: 32 random bytes, so Mosquitto's own default suffices (user
#: passwords are chosen by people: ``security.user_password_rounds``)
DEVICE_ROUNDS = 101
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROLES: tuple[str, ...] = get_args(Role)

_meta = sa.MetaData()
devices_table = sa.Table(
    "devices",
    _meta,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("market_id", sa.String(64), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("credential_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)
users_table = sa.Table(
    "users",
    _meta,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class RegistryError(ValueError):
    """A request the registry refuses; ``status`` is the HTTP status that fits."""

    status = 422


class NotFound(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


def hash_password(password: str, rounds: int = DEVICE_ROUNDS) -> str:
    """PBKDF2-SHA512 in Mosquitto's password-file format: ``$7$<rounds>$<salt>$<hash>``."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, kind, rounds, salt, digest = stored.split("$")
        if kind != "7":
            return False
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Device:
    device_id: str
    market_id: str
    metrics: tuple[str, ...]
    status: str  # active | revoked
    credential_version: int
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def topic_prefix(self, root: str) -> str:
        """Where this device may publish: ``<prefix>/<metric>``."""
        return f"{root}/{self.market_id}/devices/{self.device_id}"


@dataclass(frozen=True)
class BrokerAccount:
    """One line of the broker's password file and the topics its ACL grants."""

    username: str
    password_hash: str
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()


def _device(row: Any) -> Device:
    return Device(
        device_id=row.device_id,
        market_id=row.market_id,
        metrics=tuple(row.metrics),
        status=row.status,
        credential_version=row.credential_version,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        revoked_at=_utc(row.revoked_at) if row.revoked_at else None,
    )


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Registry:
    """Devices and users in the SQL store; every method is one short transaction."""

    def __init__(self, engine: Engine, conf: Conf, user_rounds: int) -> None:
        self.engine = engine
        self.conf = conf  # the markets a device may be in
        self.user_rounds = user_rounds  # PBKDF2 rounds of a new user password

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        self.engine.dispose()

    # --- devices ----------------------------------------------------------------------
    def register_device(
        self, market_id: str, metrics: Iterable[str], device_id: str | None = None
    ) -> tuple[Device, str]:
        """A new active device and its password (shown once: only its hash is kept)."""
        if market_id not in self.conf.markets:
            raise RegistryError(f"unknown market {market_id!r} (see markets.csv)")
        wanted = list(dict.fromkeys(metrics))
        unknown = sorted(set(wanted) - {m.value for m in Metric})
        if not wanted or unknown:
            raise RegistryError(
                f"metrics must be a non-empty subset of {[m.value for m in Metric]}"
                + (f"; unknown: {unknown}" if unknown else "")
            )
        device_id = device_id or f"{market_id}-{secrets.token_hex(4)}"
        if not DEVICE_ID.match(device_id):
            raise RegistryError(f"device id {device_id!r} must match {DEVICE_ID.pattern}")
        password = new_password()
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    devices_table.insert().values(
                        device_id=device_id,
                        market_id=market_id,
                        metrics=wanted,
                        status="active",
                        password_hash=hash_password(password),
                        credential_version=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(f"device {device_id!r} is already registered") from None
        return self.device(device_id), password

    def _row(self, table: sa.Table, key: str) -> Any:
        """The row of ``table`` whose primary key is ``key``, or None (also for a malformed
        key, which cannot have been stored)."""
        if not DEVICE_ID.match(key):
            return None
        (column,) = table.primary_key.columns
        with self.engine.connect() as conn:
            return conn.execute(table.select().where(column == key)).first()

    def device(self, device_id: str) -> Device:
        row = self._row(devices_table, device_id)
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        return _device(row)

    def devices(self, market_id: str | None = None, status: str | None = None) -> list[Device]:
        query = devices_table.select().order_by(devices_table.c.device_id)
        if market_id:
            query = query.where(devices_table.c.market_id == market_id)
        if status:
            query = query.where(devices_table.c.status == status)
        with self.engine.connect() as conn:
            return [_device(row) for row in conn.execute(query)]

    def rotate(self, device_id: str) -> tuple[Device, str]:
        """New credentials for an active device; the old password stops working."""
        password = new_password()
        table = devices_table
        with self.engine.begin() as conn:
            done = conn.execute(
                table.update()
                .where(table.c.device_id == device_id, table.c.status == "active")
                .values(
                    password_hash=hash_password(password),
                    credential_version=table.c.credential_version + 1,
                    updated_at=datetime.now(UTC),
                )
            ).rowcount
        if not done:
            self._refuse(device_id, "rotate credentials of")
        return self.device(device_id), password

    def revoke(self, device_id: str) -> Device:
        now = datetime.now(UTC)
        table = devices_table
        with self.engine.begin() as conn:
            done = conn.execute(
                table.update()
                .where(table.c.device_id == device_id, table.c.status == "active")
                .values(status="revoked", revoked_at=now, updated_at=now)
            ).rowcount
        if not done:
            self._refuse(device_id, "revoke")
        return self.device(device_id)

    def _refuse(self, device_id: str, action: str) -> None:
        device = self.device(device_id)  # NotFound when there is none
        raise Conflict(f"cannot {action} device {device.device_id!r}: it is {device.status}")

    def verify_device(self, device_id: str, password: str) -> Device | None:
        """The active device these credentials belong to, or None."""
        row = self._row(devices_table, device_id)
        if row is None or row.status != "active":
            return None
        return _device(row) if check_password(password, row.password_hash) else None

    def broker_accounts(self, root: str) -> list[BrokerAccount]:
        """The active devices as broker accounts, each writing only under its own topic."""
        query = devices_table.select().where(devices_table.c.status == "active")
        with self.engine.connect() as conn:
            rows = list(conn.execute(query.order_by(devices_table.c.device_id)))
        return [
            BrokerAccount(
                r.device_id, r.password_hash, write=(f"{_device(r).topic_prefix(root)}/#",)
            )
            for r in rows
        ]

    # --- users ------------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str) -> None:
        """Create a user or reset its role and password."""
        if role not in ROLES:
            raise RegistryError(f"role must be one of {list(ROLES)}")
        if not DEVICE_ID.match(username):
            raise RegistryError(f"user name {username!r} must match {DEVICE_ID.pattern}")
        values = {"role": role, "password_hash": hash_password(password, self.user_rounds)}
        with self.engine.begin() as conn:
            updated = conn.execute(
                users_table.update().where(users_table.c.username == username).values(**values)
            ).rowcount
            if not updated:
                conn.execute(
                    users_table.insert().values(
                        username=username, created_at=datetime.now(UTC), **values
                    )
                )

    def verify_user(self, username: str, password: str) -> str | None:
        """The user's role when the password is right, else None."""
        row = self._row(users_table, username)
        if row is None or not check_password(password, row.password_hash):
            return None
        return row.role


def registry_url(settings: Settings) -> str:
    return settings.security.registry_url or f"sqlite:///{settings.paths.data_dir}/registry.db"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _migrate(conn: Connection, conf: Conf) -> None:
    from alembic import command  # only where a registry is opened: not at every command's start
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = conn
    config.attributes["conf"] = conf  # the reference data a migration seeds from
    command.upgrade(config, "head")


def open_registry(settings: Settings) -> Registry:
    """The registry of these settings, its schema migrated to the newest revision."""
    url = registry_url(settings)
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    lock = settings.paths.data_dir / "registry.migrate.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle, contextlib.ExitStack() as stack:
        fcntl.flock(handle, fcntl.LOCK_EX)  # concurrent starters on this machine take turns
        stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        with engine.begin() as conn:
            _migrate(conn, conf_of(settings))
    return Registry(engine, conf_of(settings), settings.security.user_password_rounds)
