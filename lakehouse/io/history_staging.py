"""The staging folder of the bulk history load (``./run.sh load-history``): the records a file of
history would have sent to Kafka, as text files the history query reads with Spark's file
source (``streaming_jobs.medallion.history_query``) instead of Kafka.

A staged record is one line of five tab-separated fields — what a Kafka record of the silver
query carries::

    <topic role> TAB <partition> TAB <offset> TAB <key> TAB <value>

- the topic role: ``p`` prices, ``s`` sensor readings, ``d`` dead letters (``ROLES``), mapped to
  the configured topic names when the query reads them (a staged file does not depend on them);
- the partition: the number of the load (``Load.number``), so that a record's coordinates are
  unique across loads as Kafka's are across partitions (a record without an ``event_id`` is
  known by them: ``bronze.identity``);
- the offset: the record's position in its load (0, 1, …);
- the key: the Kafka key the producers give the event (empty: none);
- the value: the record's text, exactly what the producers send to Kafka (never holds a line
  break: an event's JSON escapes them, and a line of a JSON-lines file has none).

The folder, ``<checkpoint_root>/history`` (beside the history query's checkpoint, which records
which staged files it has read: the two go together):

- ``work/<sha256>/``: a load being converted (a killed conversion starts again from nothing);
- ``staged/``: the files the query reads, ``<load>-<part>.txt`` of ``history.records_per_file``
  records each, moved in only once their load is converted whole;
- ``loads/<load>.json``: each load's manifest (``Load``), written last: an input whose content
  (SHA-256) a manifest names is not staged again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import IO

from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings, Topics, is_uri

SEPARATOR = "\t"
FIELDS = 5  # role, partition, offset, key, value


class Role(StrEnum):
    """Which topic a staged record stands for."""

    PRICES = "p"
    SENSORS = "s"
    DEADLETTER = "d"

    def topic(self, topics: Topics) -> str:
        return {Role.PRICES: topics.prices, Role.SENSORS: topics.sensors}.get(
            self, topics.deadletter
        )


def record_line(role: Role, load: int, offset: int, key: str | None, value: str) -> str:
    """One staged record, its line break included."""
    return SEPARATOR.join((role.value, str(load), str(offset), key or "", value)) + "\n"


@dataclass(frozen=True)
class Load:
    """One input file staged: ``records`` records (``dead_lettered`` of them dead letters) from
    its ``rows`` rows, in ``parts`` staged files; ``loaded`` once the history query has read
    them all (``mark_loaded``)."""

    number: int
    sha256: str
    source: str
    format: str
    rows: int
    records: int
    dead_lettered: int
    parts: int
    loaded: bool = False

    def __str__(self) -> str:
        return (
            f"{self.source} ({self.format}): {self.rows} rows read, {self.records} records staged "
            f"({self.dead_lettered} dead-lettered) as load {self.number}"
        )


class Staging:
    """The staging folder of ``settings`` (a local folder: the converter writes it with plain
    file writes)."""

    def __init__(self, settings: Settings) -> None:
        root = settings.paths.checkpoint_root
        if is_uri(root):
            raise InputError(
                f"the bulk history load stages its files beside the checkpoints, in a local "
                f"folder; paths.checkpoint_root is {root}"
            )
        self.root = Path(root) / "history"
        self.staged = self.root / "staged"
        self.loads_dir = self.root / "loads"
        self.records_per_file = settings.history.records_per_file

    def loads(self) -> list[Load]:
        """Every load staged so far, in order."""
        if not self.loads_dir.is_dir():
            return []
        return [
            Load(**json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(self.loads_dir.glob("*.json"))
        ]

    def find(self, sha256: str) -> Load | None:
        """The load of an input of this content, if one was staged."""
        return next((load for load in self.loads() if load.sha256 == sha256), None)

    def pending(self) -> list[Load]:
        """The loads the history query has not read whole yet."""
        return [load for load in self.loads() if not load.loaded]

    def mark_loaded(self, loads: list[Load]) -> None:
        for load in loads:
            self._write_manifest(replace(load, loaded=True))

    def writer(self, sha256: str) -> PartWriter:
        """A writer of the next load's records, converted in ``work/<sha256>``."""
        work = self.root / "work" / sha256
        shutil.rmtree(work, ignore_errors=True)  # what a killed conversion left
        work.mkdir(parents=True)
        return PartWriter(work, len(self.loads()), self.records_per_file)

    def publish(self, writer: PartWriter, load: Load) -> Load:
        """Move a converted load's files into ``staged/``, then write its manifest."""
        self.staged.mkdir(parents=True, exist_ok=True)
        for part in sorted(writer.folder.glob("*.txt")):
            part.replace(self.staged / part.name)
        self._write_manifest(load)
        shutil.rmtree(writer.folder)
        return load

    def _write_manifest(self, load: Load) -> None:
        self.loads_dir.mkdir(parents=True, exist_ok=True)
        path = self.loads_dir / f"{load.number:06d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(load), indent=1), encoding="utf-8")
        tmp.replace(path)


class PartWriter:
    """Writes a load's records into files of ``per_file`` records each (``<load>-<part>.txt``),
    numbering them (``offset``) in the order written."""

    def __init__(self, folder: Path, load: int, per_file: int) -> None:
        self.folder = folder
        self.load = load
        self.per_file = per_file
        self.written = 0
        self.parts = 0
        self._file: IO[str] | None = None

    def write(self, role: Role, key: str | None, value: str) -> None:
        if self.written % self.per_file == 0:
            self.close()
            name = f"{self.load:06d}-{self.parts:06d}.txt"
            self._file = (self.folder / name).open("w", encoding="utf-8")
            self.parts += 1
        assert self._file is not None
        self._file.write(record_line(role, self.load, self.written, key, value))
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
