"""CSV price reports into Kafka: one file at a time (``./run.sh ingest``) or a watched folder
(``./run.sh watch``). Good rows become events; bad rows go to the dead-letter topic with the
file, line number, raw text and reason (``not_reported`` for a price cell that holds no price),
and the rest of the file still goes through. The file's format is detected from its header or
chosen on the command line (``lakehouse.catalog.formats``)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import NOT_REPORTED, DeadLetter, NewsEvent, PriceEvent, SensorEvent
from lakehouse.catalog.formats import FormatChoice
from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from lakehouse.domain.intake.reports import (
    ParsedRow,
    ReportFile,
    open_report,
    parse_rows,
    previous_disagreements,
)
from lakehouse.io.kafka_io import EventProducer
from producers.supply_csv import SupplyFile, read_supply_csv, supply_kind

log = logging.getLogger(__name__)

STATE_FILE = ".smartmarket-ingested.json"


@dataclass(frozen=True)
class Summary:
    file: str
    rows: int
    published: int
    dead_lettered: int
    not_reported: int = 0  # of the dead-lettered: price cells that hold no price
    format: str = ""  # which format was used, and how it was chosen
    previous_disagree: int = 0  # rows whose "yesterday" price differs from yesterday's row

    def __str__(self) -> str:
        text = (
            f"{self.file} ({self.format}): {self.rows} rows read, {self.published} published, "
            f"{self.dead_lettered} dead-lettered ({self.not_reported} not reported)"
        )
        if self.previous_disagree:
            text += f"; {self.previous_disagree} rows give a previous-day price that differs"
        return text


def dead_letter(row: ParsedRow, origin: str, path: Path) -> DeadLetter:
    """The dead letter of a row that could not become an event."""
    return DeadLetter(
        origin=origin, reason=row.error or "unknown", raw=row.raw, file=str(path), line=row.line
    )


def publish_report(report: ReportFile, settings: Settings, producer: EventProducer) -> Summary:
    """Publish every row of a report (events or dead letters) and wait until Kafka has them."""
    dead_lettered = missing = 0
    events: list[PriceEvent | SensorEvent | NewsEvent] = []
    for row in parse_rows(report, settings.tz):
        if row.event is not None:
            producer.send(row.event)
            events.append(row.event)
        else:
            producer.send_dead_letter(dead_letter(row, "csv", report.path))
            dead_lettered += 1
            missing += row.error == NOT_REPORTED
    producer.flush()
    summary = Summary(
        str(report.path),
        len(events) + dead_lettered,
        len(events),
        dead_lettered,
        missing,
        report.chosen,
        previous_disagreements(report, events, settings.tz),
    )
    log.info("report published", extra=asdict(summary))
    return summary


def publish_supply(found: SupplyFile, producer: EventProducer, origin: str = "csv") -> Summary:
    """Publish a stock or shipment file's events (the supply topic) and its rejected rows (the
    dead-letter topic), and wait until Kafka has them."""
    for event in found.events:
        producer.send_supply(event)
    for line, raw, reason in found.rejected:
        letter = DeadLetter(origin=origin, reason=reason, raw=raw, file=str(found.path), line=line)
        producer.send_dead_letter(letter)
    producer.flush()
    published, rejected = len(found.events), len(found.rejected)
    summary = Summary(str(found.path), published + rejected, published, rejected, 0, found.kind)
    log.info("supply file published", extra=asdict(summary))
    return summary


def ingest_file(
    path: Path,
    settings: Settings,
    producer: EventProducer,
    choice: FormatChoice | None = None,
    now: datetime | None = None,
) -> Summary:
    """One-shot: publish one CSV file — a stock or shipment file when its header says so
    (producers.supply_csv); ``now``: what a news file's relative dates count back from, default
    its modification time. Raises InputError if the file cannot be read as a report."""
    if supply_kind(path):
        return publish_supply(read_supply_csv(path, settings.tz, conf_of(settings)), producer)
    return publish_report(open_report(path, conf_of(settings), choice, now), settings, producer)


class FolderWatcher:
    """Publishes each CSV file dropped into a folder exactly once.

    A file is taken when its size and modification time have not changed for one poll (so a
    file still being copied is left alone). Files already published — tracked by content hash in
    ``<folder>/.smartmarket-ingested.json`` — are not published again, also across restarts.
    Done files move to ``processed/``, unreadable ones to ``failed/`` (with a ``.reason.txt``).
    """

    def __init__(
        self,
        folder: Path,
        settings: Settings,
        producer: EventProducer,
        choice: FormatChoice | None = None,
    ) -> None:
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        self.folder = folder
        self.settings = settings
        self.producer = producer
        self.choice = choice
        self.state_path = folder / STATE_FILE
        self.state: dict[str, dict] = (
            json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        )
        self._last_seen: dict[Path, tuple[int, float]] = {}

    def _candidates(self) -> list[Path]:
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")
        )

    def _stable(self, path: Path) -> bool:
        stat = path.stat()
        signature = (stat.st_size, stat.st_mtime)
        previous = self._last_seen.get(path)
        self._last_seen[path] = signature
        return previous == signature

    def _move(self, path: Path, to: str) -> Path:
        target_dir = self.folder / to
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        shutil.move(path, target)
        self._last_seen.pop(path, None)
        return target

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)

    def scan_once(self) -> list[Summary]:
        """Publish the files that are complete now; return their summaries."""
        done = []
        for path in self._candidates():
            if not self._stable(path):
                continue
            if supply_kind(path):
                done.extend(self._supply(path))
                continue
            try:
                report = open_report(path, conf_of(self.settings), self.choice)
            except InputError as exc:
                moved = self._move(path, "failed")
                moved.with_name(moved.name + ".reason.txt").write_text(f"{exc}\n")
                log.warning("report rejected", extra={"file": str(path), "reason": str(exc)})
                continue
            if report.sha256 in self.state:
                log.info("report already published", extra={"file": str(path)})
                self._move(path, "processed")
                continue
            summary = publish_report(report, self.settings, self.producer)
            self.state[report.sha256] = {
                **asdict(summary),
                "at": datetime.now(UTC).isoformat(),
            }
            self._save_state()
            self._move(path, "processed")
            done.append(summary)
        return done

    def _supply(self, path: Path) -> list[Summary]:
        """A stock or shipment file: published once (by content hash), then processed/."""
        found = read_supply_csv(path, self.settings.tz, conf_of(self.settings))
        done = []
        if found.sha256 not in self.state:
            summary = publish_supply(found, self.producer)
            self.state[found.sha256] = {**asdict(summary), "at": datetime.now(UTC).isoformat()}
            self._save_state()
            done.append(summary)
        self._move(path, "processed")
        return done

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for summary in self.scan_once():
                print(summary, flush=True)
            stop.wait(self.settings.producers.watch_poll_seconds)
