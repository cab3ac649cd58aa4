"""Reading market-data CSV files as people really write them.

Formats, told apart by their header (or named on the command line, see
``lakehouse.catalog.formats``):

- prices: ``observed_at, market_id, region, commodity, price, unit, source`` (``region``, ``unit``
  and ``source`` may be missing; any other column is kept in the event's ``attributes``), or any
  price format of ``conf/formats/`` (the Bapanas panel export, the PIHPS table export, yours);
- sensors: ``observed_at, market_id, device_id, metric, value``;
- news headlines: ``published_at, title, source, url[, text]`` or a news-search export
  ``Title, Media, Date, Link`` (``lakehouse.domain.intake.news_files``; relative dates count back
  from ``now``).

A price cell that is empty, ``-`` or 0 means "not reported": the row is returned with the reason
``not_reported`` (for the dead-letter topic), never as a price.

Files may be UTF-8 with or without a BOM, gzip-compressed (``.gz``), separated by ``,`` or
``;``, with Indonesian numbers (``42.054``, ``Rp 42.054``, ``42054,5``). A problem with the whole
file raises ``InputError``; a row that cannot become an event is returned with its reason, for
the dead-letter topic.
Each physical line is one row (quoted fields must not span lines).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import ValidationError

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import (
    NOT_REPORTED,
    NewsEvent,
    PriceEvent,
    SensorEvent,
    deterministic_id,
)
from lakehouse.catalog.formats import FIELDS, FormatChoice, PriceFormat
from lakehouse.catalog.reference import normal_form
from lakehouse.config.errors import InputError
from lakehouse.domain.intake.news_files import EXPORT as NEWS_EXPORT
from lakehouse.domain.intake.news_files import LONG as NEWS_LONG
from lakehouse.domain.intake.news_files import news_event
from lakehouse.domain.intake.news_files import shape as news_shape
from lakehouse.domain.intake.time_text import parse_time

Kind = Literal["price", "sensor", "news", "news_export"]
NEWS_KINDS = ("news", "news_export")

PRICE_REQUIRED = ("observed_at", "market_id", "commodity", "price")
PRICE_OPTIONAL = ("region", "unit", "source")
NOT_REPORTED_CELLS = ("", "-", "–", "—")
SENSOR_REQUIRED = ("observed_at", "market_id", "device_id", "metric", "value")
DELIMITERS = (",", ";")


@dataclass(frozen=True)
class ParsedRow:
    """One data line: the event it became, or why it could not."""

    line: int
    raw: str
    event: PriceEvent | SensorEvent | NewsEvent | None = None
    error: str | None = None


@dataclass
class ReportFile:
    path: Path
    kind: Kind
    delimiter: str
    header: list[str]
    lines: list[str] = field(repr=False)
    conf: Conf = field(repr=False)  # the catalogue its names are read against
    sha256: str = ""
    format: PriceFormat | None = None  # the price format (None for sensor files)
    chosen: str = ""  # how the format was chosen, in words
    titles: list[str] = field(default_factory=list)  # the header cells as written
    now: datetime | None = None  # what relative dates of a news file count back from

    @cached_property
    def date_columns(self) -> dict[str, str]:
        """Column → header text of the date columns of a wide format (none for a long one)."""
        if self.format is None or self.format.layout != "wide":
            return {}
        used = set(self.format.columns.values())
        return {
            column: title
            for column, title in zip(self.header, self.titles, strict=True)
            if column not in used and _date_column(title)
        }

    @property
    def data_lines(self) -> int:
        return sum(1 for line in self.lines[1:] if line.strip())


def decode(path: Path) -> tuple[str, str]:
    """The text of a UTF-8 file (gzip-compressed when named ``.gz``) and the SHA-256 of its
    bytes; ``InputError`` when it is missing, empty, binary or not UTF-8."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise InputError(f"{path}: the file is empty")
    if b"\x00" in data[:8192]:
        raise InputError(f"{path}: this is a binary file, not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV"
        ) from exc
    return text, hashlib.sha256(data).hexdigest()


def _header(first_line: str) -> tuple[str, list[str]]:
    best: tuple[str, list[str]] | None = None
    for delimiter in DELIMITERS:
        titles = [t.strip() for t in next(csv.reader([first_line], delimiter=delimiter))]
        if best is None or len(titles) > len(best[1]):
            best = (delimiter, titles)
    assert best is not None
    return best


def _date_column(title: str) -> bool:
    try:
        parse_time(re.sub(r"\s+", "", title), ZoneInfo("UTC"))
    except ValueError:
        return False
    return True


def open_report(
    path: Path, conf: Conf, choice: FormatChoice | None = None, now: datetime | None = None
) -> ReportFile:
    """Read and check a report file: its format (among those of ``conf``), delimiter and
    header. ``choice`` is what the command line says about the format (default: detect it from
    the header); ``now`` is what a news file's relative dates count back from (default: the
    file's modification time)."""
    text, sha256 = decode(path)
    lines = text.splitlines()
    delimiter, titles = _header(lines[0])
    header = [normal_form(t) for t in titles]
    choice = choice or FormatChoice()
    news = news_shape(header) if choice == FormatChoice() else None
    fmt, chosen = (None, "") if news else choice.resolve(header, conf.formats)
    if news is not None:
        kind: Kind = news
        chosen = "news file" if news == "news" else "news-search export"
        now = now or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    elif fmt is None and set(SENSOR_REQUIRED) <= set(header):
        kind = "sensor"
        chosen = "sensor format"
    elif fmt is None:
        missing = [c for c in PRICE_REQUIRED if c not in header]
        hint = " — the file does not seem to be separated by ',' or ';'" if len(header) == 1 else ""
        raise InputError(
            f"{path}: header {lines[0][:120]!r} lacks column(s) {', '.join(missing)}{hint}. "
            f"Expected the price format ({', '.join(PRICE_REQUIRED + PRICE_OPTIONAL)}), the "
            f"sensor format ({', '.join(SENSOR_REQUIRED)}), a news file ({', '.join(NEWS_LONG)}) "
            f"or news-search export ({', '.join(NEWS_EXPORT)}), a format of {conf.path('formats')} "
            f"(--format NAME), or say which column is which (--map price=Harga --set market_id=…)."
        )
    else:
        kind = "price"
        if missing := fmt.missing(header):
            raise InputError(
                f"{path}: {chosen}: nothing gives {', '.join(missing)}; name its column with "
                f"--map FIELD=COLUMN or give its value with --set FIELD=VALUE "
                f"(e.g. --set market_id=PROV-32)"
            )
    report = ReportFile(
        path, kind, delimiter, header, lines, conf, sha256, fmt, chosen, titles, now
    )
    if fmt is not None and fmt.layout == "wide" and not report.date_columns:
        raise InputError(f"{path}: {chosen}: no column header is a date")
    if report.data_lines == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    return report


_CURRENCY = re.compile(r"^(?:rp\.?|idr)", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?\d[\d.,]*")


def _grouped(digits: str, sep: str) -> bool:
    """Whether ``digits`` is a thousands-grouped integer like 1.234.567 (with ``sep``)."""
    groups = digits.split(sep)
    return 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


def parse_number(text: str) -> float:
    """A number as written in Indonesian or international style; ValueError if it is not one
    or is ambiguous (``42,054``: 42.054 or 42054?)."""
    s = _CURRENCY.sub("", text.strip().replace("\u00a0", "").replace(" ", ""))
    if not _NUMBER.fullmatch(s):
        raise ValueError(f"not a number: {text!r}")
    dots, commas = s.count("."), s.count(",")
    if dots and commas:
        decimal = "." if s.rfind(".") > s.rfind(",") else ","
        thousands = "," if decimal == "." else "."
        whole, fraction = s.rsplit(decimal, 1)
        if s.count(decimal) > 1 or not _grouped(whole.lstrip("+-"), thousands):
            raise ValueError(f"not a number: {text!r}")
        return float(whole.replace(thousands, "") + "." + fraction)
    if not dots and not commas:
        return float(s)
    sep = "." if dots else ","
    if s.count(sep) > 1:
        if _grouped(s.lstrip("+-"), sep):
            return float(s.replace(sep, ""))
        raise ValueError(f"not a number: {text!r}")
    whole, fraction = s.split(sep)
    if len(fraction) == 3 and 1 <= len(whole.lstrip("+-")) <= 3:
        if sep == ".":  # Indonesian thousands separator: 42.054 = 42054
            return float(whole + fraction)
        raise ValueError(f"ambiguous number {text!r}: write 42054 or 42054,0")
    return float(whole + "." + fraction)


def _unit(text: str | None, commodity: str, conf: Conf) -> str:
    if text and text.strip():
        unit = re.sub(r"^(?:idr|rp)\.?\s*/\s*", "", text.strip(), flags=re.IGNORECASE)
        return unit.lower()
    known = conf.commodities.get(commodity)
    return known.unit if known else "kg"


def not_reported(cell: str) -> bool:
    """Whether a price cell says "not reported" (empty, ``-`` or 0) rather than a price."""
    text = cell.strip()
    if text in NOT_REPORTED_CELLS:
        return True
    try:
        return parse_number(text) == 0
    except ValueError:
        return False


class NotReported(ValueError):
    """The price cell holds no price."""


def _region(text: str, conf: Conf) -> str | None:
    """A province as tables name it (``Jabar`` → ``Jawa Barat``); other regions as written."""
    return (conf.province_name(text) or text.strip()) if text.strip() else None


def _price_event(
    fields: dict[str, str], extra: dict[str, str], id_: str, source: str, tz: ZoneInfo, conf: Conf
) -> PriceEvent:
    if not_reported(fields.get("price", "")):
        raise NotReported(NOT_REPORTED)
    for name in PRICE_REQUIRED:
        if not fields.get(name, "").strip():
            raise ValueError(f"missing {name}")
    commodity = conf.commodity_id(fields["commodity"]) or normal_form(fields["commodity"])
    return PriceEvent(
        event_id=id_,
        market_id=conf.market_id(fields["market_id"]),
        commodity=commodity,
        price=parse_number(fields["price"]),
        unit=_unit(fields.get("unit"), commodity, conf),
        observed_at=parse_time(fields["observed_at"], tz),
        source=(fields.get("source") or "").strip() or source,
        region=_region(fields.get("region") or "", conf),
        attributes=extra or None,
    )


def _sensor_event(values: dict[str, str], source: str, tz: ZoneInfo) -> SensorEvent:
    for column in SENSOR_REQUIRED:
        if not values.get(column, "").strip():
            raise ValueError(f"missing {column}")
    observed_at = parse_time(values["observed_at"], tz)
    device, metric = values["device_id"].strip(), values["metric"].strip()
    return SensorEvent(
        event_id=SensorEvent.reading_id(device, metric, observed_at),
        market_id=values["market_id"].strip(),
        device_id=device,
        metric=metric,
        value=parse_number(values["value"]),
        observed_at=observed_at,
        source=(values.get("source") or "").strip() or source,
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def _cells(report: ReportFile, values: dict[str, str]) -> Iterator[tuple[str, dict, dict]]:
    """(column, event fields, attributes) of each price in one row: one for a long format, one
    per date column for a wide one."""
    fmt = report.format
    assert fmt is not None
    fields = {f: values.get(fmt.columns[f], "") for f in FIELDS if f in fmt.columns}
    fields.update(fmt.values)
    used = set(fmt.columns.values())
    if fmt.layout == "long":
        extra = {k: v for k, v in values.items() if k not in used and v.strip()}
        yield "", fields, extra
        return
    dates = report.date_columns
    extra = {k: v for k, v in values.items() if k not in used and k not in dates and v.strip()}
    for column, title in dates.items():
        day = {"observed_at": re.sub(r"\s+", "", title), "price": values[column]}
        yield title, {**fields, **day}, extra


#: the columns of ``price_frame``
FRAME_COLUMNS = ("market_id", "region", "commodity", "price", "unit", "observed_at")


def _parsed(values: pd.Series, parse: Callable[[str], Any]) -> pd.Series:
    """``parse`` of each distinct value of ``values`` once (None where it raises ValueError)."""

    def safe(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            return None

    distinct = values.drop_duplicates()
    return values.map(dict(zip(distinct, map(safe, distinct), strict=True)))


def price_frame(report: ReportFile, tz: ZoneInfo) -> pd.DataFrame:
    """The prices of a long-format price report as one frame (``FRAME_COLUMNS``): the fields
    ``parse_rows`` gives its price events, with the same parsing of each cell — done once per
    distinct cell, so a file of hundreds of thousands of rows reads in a second (the price
    simulator's province panel). Rows that are no price (not reported, unparseable, a field
    missing) are left out; no event ids."""
    fmt = report.format
    if fmt is None or fmt.layout != "long":
        raise InputError(f"{report.path}: {report.chosen or 'not a price file'}: not a long format")
    width = len(report.header)
    rows = [  # a row of another width is an error row of parse_rows; an empty one is skipped
        cells
        for cells in csv.reader(report.lines[1:], delimiter=report.delimiter)
        if len(cells) == width and any(c.strip() for c in cells)
    ]
    raw = pd.DataFrame(rows, columns=report.header, dtype=str)
    given = {f: pd.Series(fmt.values.get(f, ""), raw.index, dtype=str) for f in FIELDS}
    cells = {f: raw[fmt.columns[f]] if fmt.columns.get(f) in raw else given[f] for f in FIELDS}
    conf = report.conf
    price = _parsed(cells["price"], lambda t: None if not_reported(t) else parse_number(t))
    commodity = _parsed(cells["commodity"], lambda t: conf.commodity_id(t) or normal_form(t))
    frame = pd.DataFrame(
        {
            "market_id": _parsed(cells["market_id"], conf.market_id),
            "region": _parsed(cells["region"], lambda t: _region(t, conf)),
            "commodity": commodity,
            "price": price.astype(float),
            "unit": _parsed(
                cells["unit"] + "|" + commodity.fillna(""),
                lambda t: _unit(t.rsplit("|", 1)[0], t.rsplit("|", 1)[1], conf),
            ),
            "observed_at": _parsed(cells["observed_at"], lambda t: parse_time(t, tz)),
        }
    )
    present = frame["price"].notna() & frame["observed_at"].notna() & (frame["market_id"] != "")
    return frame[present & (frame["commodity"] != "")].reset_index(drop=True)


def previous_disagreements(
    report: ReportFile, events: list[PriceEvent | SensorEvent | NewsEvent], tz: ZoneInfo
) -> int:
    """Rows whose previous-day price (the format's ``previous`` columns, e.g. Bapanas's ``Harga
    Kemarin``/``Tanggal Kemarin``) differs from the same file's row for that day."""
    previous = report.format.previous if report.format else {}
    if not {"price", "observed_at"} <= set(previous):
        return 0
    prices = [e for e in events if isinstance(e, PriceEvent)]
    by_day = {(e.market_id, e.commodity, e.observed_at.date()): e.price for e in prices}
    disagree = 0
    for e in prices:
        attributes = e.attributes or {}
        try:
            price = parse_number(attributes[previous["price"]])
            day = parse_time(attributes[previous["observed_at"]], tz).date()
        except (KeyError, ValueError):
            continue
        known = by_day.get((e.market_id, e.commodity, day))
        disagree += known is not None and price != 0 and abs(known - price) >= 0.5
    return disagree


def _skipped(report: ReportFile, values: dict[str, str]) -> bool:
    skip = report.format.skip_rows if report.format else None
    return skip is not None and bool(skip.pattern.match(values.get(skip.column, "").strip()))


def parse_rows(report: ReportFile, tz: ZoneInfo) -> Iterator[ParsedRow]:
    """Every price (or sensor reading) of the report as an event or an error, in file order: one
    per data line, or one per date cell of a wide format. Price event ids are derived from the
    file's content and position, so re-sending a file sends the same ids. Rows the format skips
    (``skip_rows``) and rows of empty cells give nothing."""
    source = f"csv:{report.path.name}"
    width = len(report.header)
    for number, raw in enumerate(report.lines[1:], start=2):
        if not raw.strip():
            continue
        cells = next(csv.reader([raw], delimiter=report.delimiter))
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != width:
            yield ParsedRow(number, raw, error=f"row has {len(cells)} fields, header has {width}")
            continue
        values = dict(zip(report.header, cells, strict=True))
        if report.kind in NEWS_KINDS:
            assert report.now is not None
            try:
                event = news_event(values, report.kind, report.path.name, report.now, tz)
            except (ValueError, ValidationError) as exc:
                yield ParsedRow(number, raw, error=_reason(exc))
                continue
            yield ParsedRow(number, raw, event=event)
            continue
        if report.kind == "sensor":
            try:
                yield ParsedRow(number, raw, event=_sensor_event(values, source, tz))
            except (ValueError, ValidationError) as exc:
                yield ParsedRow(number, raw, error=_reason(exc))
            continue
        if _skipped(report, values):
            continue
        for column, fields, extra in _cells(report, values):
            id_ = str(
                deterministic_id("price", report.sha256, number, *([column] if column else []))
            )
            text = f"{column}: {fields['price']!r} | {raw}" if column else raw
            try:
                event = _price_event(fields, extra, id_, source, tz, report.conf)
            except (ValueError, ValidationError) as exc:
                yield ParsedRow(number, text, error=_reason(exc))
                continue
            yield ParsedRow(number, text, event=event)
