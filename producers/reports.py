"""Reading market-data CSV files as people really write them.

Two long formats, told apart by their header:

- prices: ``observed_at, market_id, region, commodity, price, unit, source`` (``region``, ``unit``
  and ``source`` may be missing; any other column is kept in the event's ``attributes``);
- sensors: ``observed_at, market_id, device_id, metric, value``.

Files may be UTF-8 with or without a BOM, separated by ``,`` or ``;``, with Indonesian numbers
(``42.054``, ``Rp 42.054``, ``42054,5``). A problem with the whole file raises ``InputError``;
a row that cannot become an event is returned with its reason, for the dead-letter topic.
Each physical line is one row (quoted fields must not span lines).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from lakehouse.events import PriceEvent, SensorEvent, deterministic_id
from lakehouse.reference import commodities, commodity_id, normal_form

Kind = Literal["price", "sensor"]

PRICE_REQUIRED = ("observed_at", "market_id", "commodity", "price")
PRICE_OPTIONAL = ("region", "unit", "source")
SENSOR_REQUIRED = ("observed_at", "market_id", "device_id", "metric", "value")
DELIMITERS = (",", ";")


class InputError(Exception):
    """The file as a whole cannot be read; the message tells the user what is wrong."""


@dataclass(frozen=True)
class ParsedRow:
    """One data line: the event it became, or why it could not."""

    line: int
    raw: str
    event: PriceEvent | SensorEvent | None = None
    error: str | None = None


@dataclass
class ReportFile:
    path: Path
    kind: Kind
    delimiter: str
    header: list[str]
    lines: list[str] = field(repr=False)
    sha256: str = ""

    @property
    def data_lines(self) -> int:
        return sum(1 for line in self.lines[1:] if line.strip())


def _decode(path: Path) -> tuple[str, str]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
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
        names = [normal_form(n) for n in next(csv.reader([first_line], delimiter=delimiter))]
        if best is None or len(names) > len(best[1]):
            best = (delimiter, names)
    assert best is not None
    return best


def open_report(path: Path) -> ReportFile:
    """Read and check a report file: its format, delimiter and header."""
    text, sha256 = _decode(path)
    lines = text.splitlines()
    delimiter, header = _header(lines[0])
    if set(SENSOR_REQUIRED) <= set(header):
        kind: Kind = "sensor"
    elif set(PRICE_REQUIRED) <= set(header):
        kind = "price"
    else:
        missing = [c for c in PRICE_REQUIRED if c not in header]
        hint = " — the file does not seem to be separated by ',' or ';'" if len(header) == 1 else ""
        raise InputError(
            f"{path}: header {lines[0][:120]!r} lacks column(s) {', '.join(missing)}{hint}. "
            f"Expected the price format ({', '.join(PRICE_REQUIRED + PRICE_OPTIONAL)}) or the "
            f"sensor format ({', '.join(SENSOR_REQUIRED)})."
        )
    report = ReportFile(path, kind, delimiter, header, lines, sha256)
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


_DAY_FIRST = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def parse_time(text: str, tz: ZoneInfo) -> datetime:
    """ISO-8601 date or date-time, or ``dd/mm/yyyy [HH:MM[:SS]]``; a time without an offset is
    local time in ``tz``."""
    s = text.strip()
    if match := _DAY_FIRST.fullmatch(s):
        day, month, year, hour, minute, second = match.groups()
        parsed = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    else:
        try:
            parsed = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"not a date/time: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _unit(text: str | None, commodity: str) -> str:
    if text and text.strip():
        unit = re.sub(r"^(?:idr|rp)\.?\s*/\s*", "", text.strip(), flags=re.IGNORECASE)
        return unit.lower()
    known = commodities().get(commodity)
    return known.unit if known else "kg"


def _price_event(values: dict[str, str], id_: str, source: str, tz: ZoneInfo) -> PriceEvent:
    for column in PRICE_REQUIRED:
        if not values.get(column, "").strip():
            raise ValueError(f"missing {column}")
    commodity = commodity_id(values["commodity"]) or normal_form(values["commodity"])
    known = set(PRICE_REQUIRED + PRICE_OPTIONAL)
    extra = {k: v for k, v in values.items() if k not in known and v.strip()}
    return PriceEvent(
        event_id=id_,
        market_id=values["market_id"].strip(),
        commodity=commodity,
        price=parse_number(values["price"]),
        unit=_unit(values.get("unit"), commodity),
        observed_at=parse_time(values["observed_at"], tz),
        source=(values.get("source") or "").strip() or source,
        region=(values.get("region") or "").strip() or None,
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


def parse_rows(report: ReportFile, tz: ZoneInfo) -> Iterator[ParsedRow]:
    """Every data line of the report as an event or an error, in file order. Price event ids
    are derived from the file's content and line, so re-sending a file sends the same ids."""
    source = f"csv:{report.path.name}"
    width = len(report.header)
    for number, raw in enumerate(report.lines[1:], start=2):
        if not raw.strip():
            continue
        fields = next(csv.reader([raw], delimiter=report.delimiter))
        if len(fields) != width:
            yield ParsedRow(number, raw, error=f"row has {len(fields)} fields, header has {width}")
            continue
        values = dict(zip(report.header, fields, strict=True))
        try:
            if report.kind == "price":
                id_ = str(deterministic_id("price", report.sha256, number))
                event: PriceEvent | SensorEvent = _price_event(values, id_, source, tz)
            else:
                event = _sensor_event(values, source, tz)
        except (ValueError, ValidationError) as exc:
            yield ParsedRow(number, raw, error=_reason(exc))
            continue
        yield ParsedRow(number, raw, event=event)
