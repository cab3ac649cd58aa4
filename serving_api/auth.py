"""API keys, bearer tokens and roles.

Machines present an API key (``X-API-Key``); people and devices a short-lived JWT
(``Authorization: Bearer …``, from ``POST /api/v1/auth/token``). Keys live in configuration
(``api.keys``) as the SHA-256 of the key only: a minted key is 32 random bytes, so a fast hash is
as safe as a slow one and keeps the check to microseconds. A role grants permissions: ``reader``
reads, ``ingest`` posts prices, ``central`` reads and audits the price ledger, ``operator`` also
manages devices and watches operations, ``admin`` does everything; a device token grants none of
these. Reads are open when ``api.open_reads`` is on; writes never are. No credential, an unknown
key or an invalid or expired token → 401, a role that does not grant the permission → 403.
A route asks for a permission with ``serving_api.deps.require``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs

import jwt
from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lakehouse.catalog.ops_metrics import SCRAPE_TOKEN_SECRET
from lakehouse.config.secrets import ensure_secret
from lakehouse.config.settings import ApiKey, Settings
from serving_api.tokens import Tokens

KEY_PREFIX = "smk_"
HEADER = "X-API-Key"


class Permission(StrEnum):
    read = "read"
    ingest = "ingest"
    devices = "manage devices"
    audit = "audit the price ledger"
    review = "release or reject held prices"
    admin = "administer"
    operations = "watch operations"  # the operations view (with closed reads)
    subscribe = "manage alert subscriptions"  # a user's own; an admin's anyone's


GRANTS: dict[str, frozenset[Permission]] = {
    "reader": frozenset({Permission.read, Permission.subscribe}),
    "ingest": frozenset({Permission.ingest}),
    "central": frozenset({Permission.read, Permission.audit, Permission.subscribe}),
    "operator": frozenset(
        {
            Permission.read,
            Permission.devices,
            Permission.audit,
            Permission.review,
            Permission.operations,
            Permission.subscribe,
        }
    ),
    "admin": frozenset(Permission),
    "device": frozenset(),
}
UNAUTHORIZED = {"WWW-Authenticate": "Bearer, ApiKey"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key, a user or a device."""

    name: str
    role: str
    kind: str  # key | user | device
    market: str | None = None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=UNAUTHORIZED)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key(name: str, role: str) -> tuple[str, ApiKey]:
    """A new random key and the configuration entry that accepts it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, ApiKey(name=name, role=role, sha256=key_hash(key))  # type: ignore[arg-type]


class Keyring:
    """The configured keys by hash, the token verifier, and the rule deciding who may do what."""

    def __init__(self, settings: Settings) -> None:
        self.open_reads = settings.api.open_reads
        self.tokens = Tokens(settings)
        self._by_hash = {k.sha256: k for k in settings.api.keys}
        self._scrape_token = (
            None if self.open_reads else ensure_secret(settings, SCRAPE_TOKEN_SECRET)
        )

    def identify(self, key: str | None, bearer: str | None) -> Principal | None:
        """Who presented these credentials (None: nobody); HTTPException 401 when they are
        wrong — an invalid credential is refused even where none is needed."""
        if key is not None:
            entry = self._by_hash.get(key_hash(key))
            if entry is None:
                raise _unauthorized("unknown API key")
            return Principal(entry.name, entry.role, "key")
        if bearer is None:
            return None
        try:
            claims = self.tokens.decode(bearer)
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired: ask for a new one") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        return Principal(
            claims["sub"], claims["role"], claims.get("kind", "user"), claims.get("market")
        )

    def check(self, key: str | None, bearer: str | None, needs: Permission) -> Principal | None:
        """The caller, or None for an anonymous read allowed by ``open_reads``; raises
        HTTPException 401/403 otherwise."""
        who = self.identify(key, bearer)
        if who is None:
            if needs is Permission.read and self.open_reads:
                return None
            raise _unauthorized(
                f"credentials are required: send an API key in the {HEADER} header or a token "
                "from POST /api/v1/auth/token as Authorization: Bearer <token>"
            )
        if needs not in GRANTS.get(who.role, frozenset()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{who.kind} {who.name!r} has role {who.role!r}, which may not {needs}",
            )
        return who

    def check_scrape(self, key: str | None, bearer: str | None) -> None:
        """Who may read ``/metrics``: anyone with open reads; else Prometheus, presenting the
        installation's scrape token as its bearer token, or an admin. Raises 401/403."""
        if self._scrape_token is None:
            return
        if bearer is not None and secrets.compare_digest(bearer, self._scrape_token):
            return
        self.check(key, bearer, Permission.admin)


def presented(scope: Scope) -> tuple[str | None, str | None]:
    """The API key and the bearer token a client sent: headers, or for a WebSocket also
    ``api_key`` / ``access_token`` in the query (browsers cannot set headers on a WebSocket)."""
    key = bearer = None
    wanted = HEADER.lower().encode()
    for name, value in scope["headers"]:
        if name == wanted:
            key = value.decode("latin-1")
        elif name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                bearer = credentials.strip()
    if scope["type"] == "websocket" and key is None and bearer is None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        key = query.get("api_key", [None])[0]
        bearer = query.get("access_token", [None])[0]
    return key, bearer


class ReadAccess:
    """Pure ASGI middleware: every read under ``prefix`` (GET, HEAD, WebSocket) needs the read
    permission. One check in one place, and cheaper per request than a FastAPI dependency."""

    def __init__(self, app: ASGIApp, keyring: Keyring, prefix: str) -> None:
        self.app = app
        self.keyring = keyring
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind == "websocket" or (kind == "http" and scope["method"] in ("GET", "HEAD"))) and (
            scope["path"].startswith(self.prefix)
        ):
            try:
                self.keyring.check(*presented(scope), Permission.read)
            except HTTPException as exc:
                if kind == "websocket":
                    close = {"type": "websocket.close", "code": 1008, "reason": exc.detail}
                    await send(close)
                    return
                answer = JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
