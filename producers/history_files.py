"""Files of history → the staging folder of the bulk history load
(``lakehouse.io.history_staging``): every row becomes the record a producer would send to Kafka.

- a price or sensor report (any format ``./run.sh ingest`` reads:
  ``lakehouse.domain.intake.reports``, ``--format``/``--map``/``--set`` alike): its events, and a
  dead letter for each row that is no event — the same events, ids and dead letters ``ingest``
  publishes;
- a JSON-lines file (``.jsonl``/``.ndjson``, ``.gz`` too) of events as the topics carry them:
  each line as it is, on the topic its ``event_type`` names (``sensor``: readings,
  ``deadletter``: dead letters, anything else — a price, a line that is no JSON — the prices
  topic, where the silver rules judge it as they would there). Its records have no key.

An input whose content was staged before is not staged again (``Staging.find``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import PriceEvent, SensorEvent
from lakehouse.catalog.formats import FormatChoice
from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from lakehouse.domain.intake.reports import NEWS_KINDS, decode, open_report, parse_rows
from lakehouse.io.history_staging import Load, PartWriter, Role, Staging
from producers.csv_ingest import dead_letter
from producers.supply_csv import supply_kind

JSON_LINES = (".jsonl", ".ndjson")
ROLE_OF_TYPE = {"sensor": Role.SENSORS, "deadletter": Role.DEADLETTER}


def is_json_lines(path: Path) -> bool:
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    return bool(suffixes) and suffixes[0].lower() in JSON_LINES


def stage_file(
    path: Path, settings: Settings, choice: FormatChoice | None = None
) -> tuple[Load, bool]:
    """Stage ``path`` as the next load; the load, and whether it was staged now (False: the
    same content was staged before). ``InputError`` for a file that is missing or cannot be read
    as a report or as JSON lines."""
    staging = Staging(settings)
    if is_json_lines(path):
        if choice not in (None, FormatChoice()):
            raise InputError(f"{path}: --format/--map/--set apply to CSV reports, not JSON lines")
        text, sha256 = decode(path)
        if (known := staging.find(sha256)) is not None:
            return known, False
        lines = [line for line in text.splitlines() if line.strip()]
        writer = staging.writer(sha256)
        for line in tqdm(lines, unit="row", desc="stage", disable=None):
            writer.write(_role(line), None, line)
        return _published(staging, writer, path, sha256, "JSON lines", len(lines), 0), True
    if supply_kind(path):
        raise InputError(f"{path}: a stock or shipment file; ./run.sh ingest publishes those")
    report = open_report(path, conf_of(settings), choice)
    if report.kind in NEWS_KINDS:
        raise InputError(f"{path}: a news file; ./run.sh ingest publishes those")
    if (known := staging.find(report.sha256)) is not None:
        return known, False
    writer = staging.writer(report.sha256)
    rows = dead = 0
    with tqdm(total=report.data_lines, unit="row", desc="stage", disable=None) as bar:
        for row in parse_rows(report, settings.tz):
            rows += 1
            if isinstance(row.event, PriceEvent | SensorEvent):
                role = Role.PRICES if isinstance(row.event, PriceEvent) else Role.SENSORS
                writer.write(role, row.event.key, row.event.to_json().decode())
            else:
                letter = dead_letter(row, "csv", path)
                writer.write(Role.DEADLETTER, letter.file, letter.to_json().decode())
                dead += 1
            if rows % 10_000 == 0:
                bar.update(rows - bar.n)
        bar.update(rows - bar.n)
    return _published(staging, writer, path, report.sha256, report.chosen, rows, dead), True


def _published(
    staging: Staging,
    writer: PartWriter,
    path: Path,
    sha256: str,
    format_: str,
    rows: int,
    dead_lettered: int,
) -> Load:
    """The load ``writer`` wrote (of ``rows`` rows of ``path``), moved into the staged files."""
    writer.close()
    load = Load(
        number=writer.load,
        sha256=sha256,
        source=str(path),
        format=format_,
        rows=rows,
        records=writer.written,
        dead_lettered=dead_lettered,
        parts=writer.parts,
    )
    return staging.publish(writer, load)


def _role(line: str) -> Role:
    """The topic a JSON line goes on, by its ``event_type``."""
    try:
        event = json.loads(line)
    except ValueError:
        return Role.PRICES
    kind = event.get("event_type") if isinstance(event, dict) else None
    return ROLE_OF_TYPE.get(kind, Role.PRICES) if isinstance(kind, str) else Role.PRICES
