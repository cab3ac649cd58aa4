"""HTTP hardening: rate limits and security headers (CORS, when configured, is Starlette's).

Rate limits: a token bucket per caller, answering 429 with Retry-After when it is empty.

The caller is its credential (API key or bearer token) when it sends one, its IP address
otherwise. ``security.rate_limit_per_minute`` refills each bucket, ``rate_limit_burst`` is its
size; clients in ``rate_limit_exempt`` (by default loopback: the supervisor, local tools and the
benchmarks of the embedded stack) are never limited. 0 per minute turns the limit off.
"""

from __future__ import annotations

import hashlib
import math
import time

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse.config.settings import SecuritySettings
from serving_api.auth import presented

MAX_BUCKETS = 100_000  # beyond this, full (idle) buckets are forgotten


class RateLimits:
    """The token buckets, one per caller (no per-request cost beyond a dict look-up), shared by
    every middleware instance that enforces them."""

    def __init__(self, security: SecuritySettings) -> None:
        self.rate = security.rate_limit_per_minute / 60.0
        self.burst = float(security.rate_limit_burst)
        self.exempt = frozenset(security.rate_limit_exempt)
        self.buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)

    def caller(self, scope: Scope) -> str | None:
        """Whose bucket a request takes from (None: an exempt client)."""
        client = scope.get("client")
        host = client[0] if client else "unknown"
        if host in self.exempt:
            return None
        key, bearer = presented(scope)
        credential = key or bearer
        if credential:
            return "c:" + hashlib.blake2b(credential.encode(), digest_size=16).hexdigest()
        return "ip:" + host

    def take(self, caller: str) -> float:
        """0 when a request may pass, else the seconds until it may."""
        now = time.monotonic()
        tokens, at = self.buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self.buckets) >= MAX_BUCKETS:
            self._forget_idle(now)
        self.buckets[caller] = (tokens - 1, now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        self.buckets = {c: (t, a) for c, (t, a) in self.buckets.items() if now - a < full_after}


class RateLimit:
    """Pure ASGI middleware: a request whose caller's bucket in ``limits`` is empty gets 429."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limits.rate and scope["type"] in ("http", "websocket"):
            caller = self.limits.caller(scope)
            wait = self.limits.take(caller) if caller else 0.0
            if wait:
                retry = str(max(1, math.ceil(wait)))
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1013, "reason": "rate limit"})
                    return
                answer = JSONResponse(
                    {"detail": f"rate limit exceeded: retry in {retry} s"},
                    429,
                    headers={"Retry-After": retry},
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: sent with every HTTP answer: no MIME sniffing, no framing, no referrer, HTTPS remembered
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000"),
]


class SecurityHeaders:
    """Pure ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
