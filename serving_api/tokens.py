"""JSON Web Tokens (HS256) for users and devices.

Claims: ``sub`` (user name or device id), ``role``, ``kind`` (``user`` or ``device``), ``market``
(devices), ``iat`` and ``exp``. The signing key is the secret ``jwt_key`` (lakehouse.config.secrets:
the environment or the git-ignored secrets file, generated on first use).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from lakehouse.config.secrets import ensure_secret
from lakehouse.config.settings import Settings

ALGORITHM = "HS256"
ISSUER = "smartmarket"


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cached_key: str | None = None

    @property
    def _key(self) -> str:
        """Read (or made) on first use, not at import: importing the app writes nothing."""
        if self._cached_key is None:
            self._cached_key = ensure_secret(self._settings, "jwt_key", 48)
        return self._cached_key

    def issue(
        self, subject: str, role: str, kind: str, lifetime: timedelta, **claims: Any
    ) -> tuple[str, datetime]:
        """A signed token and the moment it expires."""
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + lifetime
        payload = {
            "sub": subject,
            "role": role,
            "kind": kind,
            "iss": ISSUER,
            "iat": now,
            "exp": expires,
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), expires

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; ``jwt.ExpiredSignatureError`` or another
        ``jwt.InvalidTokenError`` otherwise."""
        return jwt.decode(
            token,
            self._key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "role", "exp"]},
        )
