"""News files: the headers that mark a CSV as news, and how one of its rows becomes a
``NewsEvent``. ``lakehouse.domain.intake.reports`` opens the file (encoding, delimiter, header) as
for prices.

Two shapes, told apart by the header (column names in normal form):

- long: ``published_at, title, source, url[, text]`` — one headline a row, an ISO-8601 or
  ``dd/mm/yyyy [HH:MM]`` time;
- export: ``Title, Media, Date, Link`` — what news-search tools export, where Date is often
  relative Indonesian ("5 menit yang lalu", "2 jam yang lalu", "3 hari lalu", "kemarin",
  "minggu lalu", "bulan lalu") or a date such as "12 Nov 2026" / "12 November 2026 14:05 WIB".
  A relative date counts back from ``now``: the command line's ``--now``, else the file's
  modification time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from lakehouse.catalog.events import NewsEvent
from lakehouse.domain.intake.time_text import parse_time

NewsShape = Literal["news", "news_export"]
LONG = ("published_at", "title", "source", "url")
LONG_OPTIONAL = ("text",)
EXPORT = ("title", "media", "date", "link")

_UNITS = {
    "detik": timedelta(seconds=1),
    "menit": timedelta(minutes=1),
    "jam": timedelta(hours=1),
    "hari": timedelta(days=1),
    "minggu": timedelta(weeks=1),
    "pekan": timedelta(weeks=1),
    "bulan": timedelta(days=30),
    "tahun": timedelta(days=365),
}
_WORD_NUMBERS = {"se": 1, "satu": 1, "sebuah": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5}
_RELATIVE = re.compile(
    r"^(?:(?P<n>\d+|satu|dua|tiga|empat|lima)\s*|(?P<se>se))?"
    r"(?P<unit>detik|menit|jam|hari|minggu|pekan|bulan|tahun)\s+(?:yang\s+)?lalu$"
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("januari", "jan", "january"),
            ("februari", "feb", "pebruari", "february"),
            ("maret", "mar", "march"),
            ("april", "apr"),
            ("mei", "may"),
            ("juni", "jun", "june"),
            ("juli", "jul", "july"),
            ("agustus", "agu", "agt", "ags", "aug", "august"),
            ("september", "sep", "sept"),
            ("oktober", "okt", "oct", "october"),
            ("november", "nov", "nop", "nopember"),
            ("desember", "des", "dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_DAY_MONTH_YEAR = re.compile(
    r"^(?:\w+,\s*)?(?P<d>\d{1,2})\s+(?P<m>[a-z]+)\.?\s+(?P<y>\d{4})"
    r"(?:[,\s]+(?:pukul\s+)?(?P<H>\d{1,2})[:.](?P<M>\d{2}))?\s*(?P<tz>wib|wita|wit)?$"
)
_ZONES = {"wib": "Asia/Jakarta", "wita": "Asia/Makassar", "wit": "Asia/Jayapura"}


def shape(header: list[str]) -> NewsShape | None:
    """Which news shape a header (normal-form column names) is, if any."""
    columns = set(header)
    if set(LONG) <= columns:
        return "news"
    if set(EXPORT) <= columns:
        return "news_export"
    return None


def _parse(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    s = " ".join(text.strip().lower().split())
    if s in ("baru saja", "barusan", "sekarang", "hari ini"):
        return now
    if s == "kemarin":
        return now - timedelta(days=1)
    if match := _RELATIVE.match(s):
        count = match["n"]
        n = int(count) if count and count.isdigit() else _WORD_NUMBERS.get(count or "", 1)
        return now - n * _UNITS[match["unit"]]
    if (match := _DAY_MONTH_YEAR.match(s)) and match["m"] in _MONTHS:
        zone = ZoneInfo(_ZONES[match["tz"]]) if match["tz"] else tz
        return datetime(
            int(match["y"]),
            _MONTHS[match["m"]],
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            tzinfo=zone,
        )
    return parse_time(text, tz)


def parse_news_date(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """A publication date as news exports write it: relative Indonesian ("2 jam yang lalu",
    "kemarin", "bulan lalu") counted back from ``now``, a day-month-year date ("12 Nov 2026",
    "Selasa, 12 November 2026 14:05 WIB"), or ISO-8601 / ``dd/mm/yyyy``. ValueError if none."""
    try:
        return _parse(text, now, tz)
    except ValueError:
        raise ValueError(
            f"unreadable date {text!r}: write e.g. '2 jam yang lalu', '3 hari lalu', "
            f"'12 Nov 2026' or 2026-11-12T14:05+07:00"
        ) from None


def news_event(
    values: dict[str, str], kind: str, file_name: str, now: datetime, tz: ZoneInfo
) -> NewsEvent:
    """The event of one row of a news file of shape ``kind`` (``values``: normal-form column →
    cell); ValueError
    (or pydantic's ValidationError) with the reason when the row cannot be one."""
    if kind == "news":
        title, source, url = values["title"], values["source"], values["url"]
        published, text = values["published_at"], values.get("text") or None
    else:
        title, source, url = values["title"], values["media"], values["link"]
        published, text = values["date"], None
    title, source, url = title.strip(), source.strip(), url.strip() or None
    if not title:
        raise ValueError("missing title")
    if not source:
        raise ValueError("missing source" if kind == "news" else "missing Media")
    if not published.strip():
        raise ValueError("missing date")
    return NewsEvent(
        event_id=NewsEvent.headline_id(title, source, url),
        published_at=parse_news_date(published, now, tz),
        title=title,
        source=source,
        url=url,
        text=text.strip() if text else None,
        collected_from=f"csv:{file_name}",
    )
