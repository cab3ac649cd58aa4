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

from fastapi import Depends, HTTPException, Request, WebSocket, status
from fastapi.security import APIKeyHeader

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

    def dependency(request: Request, key: Annotated[str | None, Depends(_header)]) -> ApiKey | None:
        keyring: Keyring = request.app.state.keyring
        return keyring.check(key, permission)

    return Depends(dependency)


def websocket_key(websocket: WebSocket) -> str | None:
    """The key of a WebSocket client: the header, or ``api_key`` in the query (browsers cannot
    set headers on a WebSocket)."""
    return websocket.headers.get(HEADER) or websocket.query_params.get("api_key")
