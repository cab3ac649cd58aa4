"""Prepared views of the news tables (``silver.news``, ``gold.news_signal``), built once per
Delta version by ``serving_api.cache`` like the gold views of ``serving_api.views``, and the
lookups a request makes on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from lakehouse.catalog.tables import GOLD_NEWS_SIGNAL, SILVER_NEWS
from lakehouse.config.settings import Settings
from serving_api.cache import Tables, ViewSpec

NEWS_ITEM_FIELDS = (
    "event_id",
    "title",
    "source",
    "url",
    "published_at",
    "province",
    "regency",
    "topic",
    "mentions",
)


def _sorted(table: pa.Table, sort: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return table.sort_by(sort).to_pylist() if table.num_rows else []


@dataclass(frozen=True)
class NewsQuery:
    """The filters of a /news request, validated."""

    commodity: str | None = None
    region: str | None = None
    since: datetime | None = None
    limit: int = 50

    def matches(self, item: dict[str, Any]) -> bool:
        return (
            (self.region is None or item["province"] == self.region)
            and (self.since is None or item["published_at"] >= self.since)
            and (
                self.commodity is None
                or any(m["commodity"] == self.commodity for m in item["mentions"])
            )
        )


def build_news(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    """Every headline, newest first."""
    rows = _sorted(
        tables[SILVER_NEWS.qualified_name].select(list(NEWS_ITEM_FIELDS)),
        [("published_at", "descending"), ("event_id", "ascending")],
    )
    for row in rows:
        row["mentions"] = row["mentions"] or []
    return rows


def news_page(items: list[dict[str, Any]], query: NewsQuery) -> list[dict[str, Any]]:
    """The newest ``query.limit`` headlines that match."""
    page = []
    for item in items:
        if query.matches(item):
            page.append(item)
            if len(page) == query.limit:
                break
    return page


def build_signal(settings: Settings, tables: Tables) -> list[dict[str, Any]]:
    """The daily news signal, by commodity, province and date."""
    return _sorted(
        tables[GOLD_NEWS_SIGNAL.qualified_name].drop_columns(["updated_at"]),
        [("commodity", "ascending"), ("province", "ascending"), ("date", "ascending")],
    )


NEWS = ViewSpec("news", (SILVER_NEWS,), build_news)
NEWS_SIGNAL = ViewSpec("news_signal", (GOLD_NEWS_SIGNAL,), build_signal)
