"""The fast path of ``GET /api/v1/prices/live``: a pure ASGI layer in front of the FastAPI app.

The hottest request costs FastAPI ~100 µs of routing, request objects, exception layers and
exit stacks around a dict lookup. This layer answers it without them when the answer is ready:
a ``GET`` of exactly that path whose query names valid filters (resolved once per distinct
query string) while the live view is built. Everything else — another path or method, a
malformed or unknown filter (its 422 or 404), the first build — goes to the FastAPI app
unchanged.

Nothing of the app's middleware is copied: the answer runs through instances of the same
middleware classes with the same arguments as the app's (metrics, security headers, CORS when
configured, the rate limit, read access), built from ``app.user_middleware``, so status codes,
headers, bodies and metrics are those of the full stack. Middleware keeps its state in the
objects it is given (the rate limit's buckets in one ``RateLimits``, the metrics in one
``ApiMetrics``), so both paths share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, partial

from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from lakehouse.catalog.conf import Conf
from serving_api.cache import GoldCache
from serving_api.errors import ApiError
from serving_api.routers import json_bytes
from serving_api.routers.prices import live_filters
from serving_api.views import LIVE, LiveQuery

FILTERS = "smartmarket.live_filters"  # scope key: the resolved query, for the answer
QUERIES_KEPT = 4096  # distinct query strings whose filters are remembered


def valid_filters(conf: Conf, query: bytes) -> LiveQuery | None:
    """The resolved query of a raw query string, parsed as Starlette parses it for the
    route; None when the route would answer an error."""
    try:
        return live_filters(QueryParams(query), conf)
    except ApiError:
        return None


class LiveFastPath:
    """Answers ``GET`` of ``route`` (the live prices) from the prepared live view, through
    the app's own middleware ``middleware``; passes everything else on to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        cache: GoldCache,
        conf: Conf,
        route: APIRoute,
        middleware: Sequence[Middleware],
    ) -> None:
        self.app = app
        self.cache = cache
        self.filters = lru_cache(maxsize=QUERIES_KEPT)(partial(valid_filters, conf))
        self.route = route
        answer: ASGIApp = self._answer
        for cls, args, kwargs in reversed(middleware):
            answer = cls(answer, *args, **kwargs)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] == self.route.path
            and not scope.get("root_path")
            and (filters := self.filters(scope["query_string"])) is not None
            and self.cache.current(LIVE) is not None
        ):
            scope[FILTERS] = filters
            await self.answer(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the route answers, once the middleware let the request through."""
        scope["route"] = self.route  # the metrics label requests by route template
        view = self.cache.ready(LIVE)  # counts the lookup, looks for a newer version
        assert view is not None  # built before this request was taken
        await json_bytes(*view.page(scope[FILTERS]))(scope, receive, send)
