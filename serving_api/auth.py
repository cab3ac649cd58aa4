"""API keys and roles.

Keys live in configuration (``api.keys``) as the SHA-256 of the key only: a minted key is 32
random bytes, so a fast hash is as safe as a slow one and keeps the check to microseconds. A
role grants permissions: ``reader`` reads, ``ingest`` posts prices, ``admin`` does both. Reads are
open when ``api.open_reads`` is on; writes never are. No key (or an unknown one) → 401, a key
whose role does not grant the permission → 403.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Receive, Scope, Send

from lakehouse.settings import ApiKey, Settings

KEY_PREFIX = "smk_"
HEADER = "X-API-Key"


class Permission(StrEnum):
    read = "read"
    ingest = "ingest"


GRANTS: dict[str, frozenset[Permission]] = {
    "reader": frozenset({Permission.read}),
    "ingest": frozenset({Permission.ingest}),
    "admin": frozenset(Permission),
}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key(name: str, role: str) -> tuple[str, ApiKey]:
    """A new random key and the configuration entry that accepts it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, ApiKey(name=name, role=role, sha256=key_hash(key))  # type: ignore[arg-type]


class Keyring:
    """The configured keys by hash, and the rule deciding who may do what."""

    def __init__(self, settings: Settings) -> None:
        self.open_reads = settings.api.open_reads
        self._by_hash = {k.sha256: k for k in settings.api.keys}

    def check(self, presented: str | None, needs: Permission) -> ApiKey | None:
        """The key's entry, or None for an anonymous read allowed by ``open_reads``; raises
        HTTPException 401/403 otherwise. An invalid key is refused even where none is needed."""
        if presented is None:
            if needs is Permission.read and self.open_reads:
                return None
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"an API key is required: send it in the {HEADER} header",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        entry = self._by_hash.get(key_hash(presented))
        if entry is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if needs not in GRANTS[entry.role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"the key {entry.name!r} has role {entry.role!r}, which may not {needs}",
            )
        return entry


_header = APIKeyHeader(
    name=HEADER, auto_error=False, description="API key (mint one with ./run.sh api-key ROLE)"
)


def require(permission: Permission) -> Any:
    """Dependency: the caller may ``permission``."""

    async def dependency(  # async: a plain def would cost a thread hop per request
        request: Request, key: Annotated[str | None, Depends(_header)]
    ) -> ApiKey | None:
        keyring: Keyring = request.app.state.keyring
        return keyring.check(key, permission)

    return Depends(dependency)


def presented_key(scope: Scope) -> str | None:
    """The key a client sent: the header, or for a WebSocket also ``api_key`` in the query
    (browsers cannot set headers on a WebSocket)."""
    wanted = HEADER.lower().encode()
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")
    if scope["type"] == "websocket":
        return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key", [None])[0]
    return None


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
                self.keyring.check(presented_key(scope), Permission.read)
            except HTTPException as exc:
                if kind == "websocket":
                    close = {"type": "websocket.close", "code": 1008, "reason": exc.detail}
                    await send(close)
                    return
                answer = JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
