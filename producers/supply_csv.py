"""Stock and shipment CSV files, recognised by their header (docs/supply.md).

A **stock** file has the columns ``entity_id, commodity, quantity, observed_at`` (optional
``unit``, ``source``); a **shipment** file ``shipment_id, commodity, quantity, origin_id,
destination_id, departed_at, expected_at`` (optional ``arrived_at``, ``observed_at`` — default
the arrival, else the departure —, ``unit``, ``source``). Times without an offset are local
(``timezone``); commodities may be written as the catalogue's names or aliases. A row that cannot
become an event is a dead letter with its line and reason; everything else goes to the supply
topic, where silver judges it against the registry.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.events import ShipmentEvent, StockEvent
from lakehouse.config.errors import InputError
from lakehouse.domain.intake.time_text import parse_time

REQUIRED = {
    "stock": ("entity_id", "commodity", "quantity", "observed_at"),
    "shipment": (
        "shipment_id",
        "commodity",
        "quantity",
        "origin_id",
        "destination_id",
        "departed_at",
        "expected_at",
    ),
}
TIMES = ("observed_at", "departed_at", "expected_at", "arrived_at")


@dataclass
class SupplyFile:
    path: Path
    kind: str  # stock | shipment
    sha256: str
    events: list[StockEvent | ShipmentEvent] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, raw, reason


def _header(text: str) -> tuple[list[str], str]:
    """The column names (lower case) of the file's first line and its delimiter."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return [c.strip().lower() for c in first.split(delimiter)], delimiter


def supply_kind(path: Path) -> str | None:
    """``stock`` or ``shipment`` when the file's header is a supply header, else None."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            columns = set(_header(fh.readline())[0])
    except OSError:
        return None
    for kind in ("shipment", "stock"):
        if set(REQUIRED[kind]) <= columns:
            return kind
    return None


def _event(
    kind: str, row: dict[str, str], tz: ZoneInfo, source: str, conf: Conf
) -> StockEvent | ShipmentEvent:
    values: dict[str, Any] = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
    for name in TIMES:
        if name in values:
            values[name] = parse_time(values[name], tz)
    values["commodity"] = conf.commodity_id(values.get("commodity", "")) or values.get("commodity")
    values.setdefault("source", source)
    if kind == "stock":
        if "observed_at" in values:
            values.setdefault(
                "event_id",
                StockEvent.report_id(
                    values.get("entity_id", ""), values["commodity"], values["observed_at"]
                ),
            )
        return StockEvent.model_validate(values)
    values.setdefault("observed_at", values.get("arrived_at") or values.get("departed_at"))
    if values["observed_at"] is not None:
        values.setdefault(
            "event_id",
            ShipmentEvent.report_id(values.get("shipment_id", ""), values["observed_at"]),
        )
    return ShipmentEvent.model_validate(values)


def read_supply_csv(path: Path, tz: ZoneInfo, conf: Conf) -> SupplyFile:
    """Every row of a stock or shipment file as an event or a rejected row."""
    kind = supply_kind(path)
    if kind is None:
        raise InputError(f"{path}: not a stock or shipment file (see docs/supply.md)")
    data = path.read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    columns, delimiter = _header(text)
    found = SupplyFile(path, kind, hashlib.sha256(data).hexdigest())
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    reader.fieldnames = columns
    next(reader, None)  # the header line itself
    for row in reader:
        line = reader.line_num
        try:
            found.events.append(_event(kind, row, tz, f"csv:{path.name}", conf))
        except (ValueError, ValidationError) as exc:
            reason = (
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            found.rejected.append((line, lines[line - 1] if line <= len(lines) else "", reason))
    return found
