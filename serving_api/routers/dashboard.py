"""The web dashboard at ``GET /``: its page, the bundle the set-up builds from npm packages
(``dashboard/dist``), its settings and the offline base map. Open like the page itself: the
data it shows comes from ``/api/v1``, which follows the read policy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from lakehouse.config.settings import DATASETS_DIR, PROJECT_ROOT
from serving_api.deps import ConfDep, SettingsDep
from serving_api.errors import ApiError
from serving_api.routers import API_PREFIX

DASHBOARD_DIR = PROJECT_ROOT / "dashboard"
BUNDLE_DIR = DASHBOARD_DIR / "dist"
BASE_MAP = DATASETS_DIR / "indonesia_provinces.geojson"
ASSETS = "/dashboard/assets"

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    if not (BUNDLE_DIR / "main.js").is_file():
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the dashboard is not built: run ./run.sh setup ({BUNDLE_DIR} is missing)",
        )
    return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/config.json")
async def config(request: Request, settings: SettingsDep, conf: ConfDep) -> dict[str, Any]:
    paths = {getattr(route, "path", None) for route in request.app.routes}
    return {
        **settings.dashboard.model_dump(),
        "timezone": settings.timezone,
        # the page follows prices over this socket when the API has it, else it polls
        "live_prices_socket": f"{API_PREFIX}/prices/ws" in paths,
        # the names people read, by catalogue id: [Indonesian, English] (commodities.yaml)
        "commodities": {c.id: [c.label("id"), c.label("en")] for c in conf.commodities.values()},
    }


@router.get("/dashboard/provinces.geojson")
async def base_map() -> FileResponse:
    return FileResponse(BASE_MAP, media_type="application/geo+json")


def install(app: FastAPI) -> None:
    """Add the dashboard's routes and its static bundle to ``app``."""
    app.include_router(router)
    bundle = StaticFiles(directory=BUNDLE_DIR, check_dir=False)
    # compressed for phones on slow links (the page's only large file is its bundle)
    app.mount(ASSETS, GZipMiddleware(bundle, minimum_size=1024), name="dashboard")
