"""News headlines: what they say (``silver.news``), the daily news signal (``gold.news_signal``)
and HTTP ingest of headlines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from lakehouse.catalog.events import NewsEvent
from serving_api.auth import Permission
from serving_api.deps import ConfDep, GoldDep, SettingsDep, require
from serving_api.errors import resolve_commodity, resolve_province
from serving_api.ingest import PricePublisher
from serving_api.models import Accepted
from serving_api.news_views import NEWS, NEWS_SIGNAL, NewsQuery, news_page
from serving_api.routers import API_PREFIX, READ_ERRORS
from serving_api.routers.ingest import INGEST_RESPONSES, Accept
from serving_api.routers.prices import Commodity, Region

router = APIRouter(prefix=API_PREFIX, tags=["news"])


class NewsMention(BaseModel):
    commodity: str = Field(description="catalogue id (conf/commodities.yaml)")
    direction: str | None = Field(description="up, down, stable, or null: none stated")


class NewsItem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "event_id": "5d0c1f7e-3b0a-5c1e-9a51-2b8f0c6b7a10",
                "title": "Harga Bawang Merah Di Palu Sudah Turun",
                "source": "antarasulteng.com",
                "url": "http://antarasulteng.com/berita/31503/harga-bawang-merah-di-palu-sudah-turun",
                "published_at": "2026-11-25T03:00:00Z",
                "province": "Sulawesi Tengah",
                "regency": "Kota Palu",
                "topic": "price",
                "mentions": [{"commodity": "bawang_merah", "direction": "down"}],
            }
        }
    )
    event_id: str
    title: str
    source: str
    url: str | None
    published_at: datetime
    province: str | None = Field(description="province named, null: none (national)")
    regency: str | None
    topic: str = Field(description="price, stock, supply_disruption, intervention or other")
    mentions: list[NewsMention]


class NewsSignalPoint(BaseModel):
    date: date
    commodity: str
    province: str = Field(description="province, or Indonesia for national headlines")
    headlines: int
    up: int
    down: int
    stable: int
    net_direction: float = Field(description="(up − down) / headlines, in [-1, 1]")
    intensity: float = Field(description="ln(1 + headlines)")


NOT_BLANK = r"^\s*\S"  # a title or publisher of white space alone is no headline (422)


class HeadlineIn(BaseModel):
    """A headline as a partner sends it; its id is derived (link, else source + title)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=1000, pattern=NOT_BLANK, examples=["Harga Cabai Rawit Melonjak"])
    source: str = Field(max_length=200, pattern=NOT_BLANK, examples=["kompas.tv"])
    url: str | None = Field(None, max_length=2048)
    published_at: AwareDatetime
    text: str | None = Field(None, max_length=20000, description="lead paragraph")

    def event(self) -> NewsEvent:
        return NewsEvent(
            event_id=NewsEvent.headline_id(self.title, self.source, self.url),
            published_at=self.published_at,
            title=self.title.strip(),
            source=self.source.strip(),
            url=self.url.strip() if self.url else None,
            text=self.text,
            collected_from="api",
        )


@router.get(
    "/news",
    response_model=list[NewsItem],
    summary="News headlines with the commodities they name and the direction they state",
    responses=READ_ERRORS,
)
async def news(
    conf: ConfDep,
    cache: GoldDep,
    settings: SettingsDep,
    commodity: Commodity = None,
    region: Region = None,
    since: Annotated[
        datetime | None,
        Query(description="published at or after (ISO-8601; without offset: local time)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many, newest first")] = 50,
) -> list[dict[str, Any]]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=settings.tz)
    query = NewsQuery(
        resolve_commodity(conf, commodity), resolve_province(conf, region), since, limit
    )
    return news_page(await cache.get(NEWS), query)


@router.get(
    "/news/signal",
    response_model=list[NewsSignalPoint],
    summary="The daily news signal per commodity × province (beside the price series)",
    responses=READ_ERRORS,
)
async def news_signal(
    conf: ConfDep, cache: GoldDep, commodity: Commodity = None, region: Region = None
) -> list[dict[str, Any]]:
    wanted_commodity, wanted_region = (
        resolve_commodity(conf, commodity),
        resolve_province(conf, region),
    )
    return [
        point
        for point in await cache.get(NEWS_SIGNAL)
        if (wanted_commodity is None or point["commodity"] == wanted_commodity)
        and (wanted_region is None or point["province"] == wanted_region)
    ]


EXAMPLE = {
    "title": "Harga Cabai Rawit di Pasar Bantul Naik",
    "source": "suara.com",
    "url": "https://jogja.suara.com/read/2021/12/20/201705/harga-cabai-rawit",
    "published_at": "2026-11-25T09:00:00+07:00",
}


@router.post(
    "/news",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Send one or many news headlines (needs an ingest or admin key)",
    description="Each headline is produced to the news topic with an id derived from its link "
    "(else its source and title): the same headline sent twice is kept once. 202 means Kafka "
    "confirmed all of them.",
    dependencies=[require(Permission.ingest)],
    responses=INGEST_RESPONSES,
)
async def post_news(
    accept: Accept,
    body: Annotated[HeadlineIn | list[HeadlineIn], Body(examples=[EXAMPLE, [EXAMPLE]])],
) -> Accepted:
    headlines = body if isinstance(body, list) else [body]
    return await accept([h.event() for h in headlines], PricePublisher.publish_news)
