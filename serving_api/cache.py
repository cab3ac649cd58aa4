"""Gold tables in memory, keyed by Delta version.

A *view* is a structure prepared once from one or more gold tables (an index, precomputed
changes, encoded responses) and kept until one of its tables gets a new Delta version. A request
costs a lookup: at most every ``api.cache_check_ms`` it also starts a look, in a worker thread,
for the next version of the view's tables — one ``stat`` each: does the commit file of the next
version, ``_delta_log/<version + 1>.json``, exist? Commits are atomic, so that file appearing is
exactly "a new version". Only then is the view moved forward — from the rows the new commits
added, for a view with an updater (the live prices), else by re-reading its tables with
delta-rs — in that worker thread too (nothing touches the file system on the event loop),
while requests keep getting the previous view until the new one is complete
(stale-while-revalidate: a rebuild never adds its time to a request's latency; only the very
first build is waited for).

A large append-only table a view follows (``silver.prices``) is read commit by commit through
one ``CommitRows`` per table, which the prices WebSocket shares: each commit is read once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.catalog.tables import Table, arrow_schema
from lakehouse.config.backoff import backoff_seconds
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import Condition, TableMissing, rows_of
from lakehouse.io.lake import Lakehouse, LakeTable
from serving_api.metrics import ApiMetrics

log = logging.getLogger(__name__)

V = TypeVar("V")
#: the wait before the next try of a view whose rebuild failed, doubled for each failure in a
#: row up to the longest
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
#: a ``recent`` table's commits read at build time: usually more than the table it is summed
#: up in lags behind (the gold query MERGEs silver's prices into ``gold.price_latest``); a view
#: that follows both catches up on a longer lag when the summary commits
RECENT_COMMITS = 20
Tables = dict[str, pa.Table]
#: the C library's ``malloc_trim`` (glibc), None where there is none
_MALLOC_TRIM = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)
Builder = Callable[[Settings, Tables], V]
Updater = Callable[[Settings, V, Tables], V]


@dataclass(frozen=True)
class Read:
    """The columns of a table a view reads (None: all; partition columns included), and which
    of them are read dictionary-encoded where the table is read file by file (strings
    repeated on many rows: cheaper to decode and to group); and, for a view that keeps only a
    table's recent part, the rows its build reads: delta-rs ``filters`` made at build time
    (None: every row; the commits read since are read whole)."""

    columns: tuple[str, ...] | None = None
    dictionary: tuple[str, ...] = ()
    filters: Callable[[Settings], list[Condition]] | None = None


@dataclass(frozen=True)
class ViewSpec(Generic[V]):
    """How to prepare a view: its input tables and a pure builder (tables → structure); and,
    for a view that can move forward incrementally, an updater (structure, rows the new
    commits added → new structure)."""

    name: str
    tables: tuple[Table, ...]
    build: Builder[V]
    update: Updater[V] | None = None
    #: followed tables read at build time as their last ``RECENT_COMMITS`` commits' rows only
    #: (a large append-only table whose past the view takes from another of its tables)
    recent: tuple[Table, ...] = ()
    #: what the view reads of each table (by qualified name; unnamed tables: everything)
    reads: dict[str, Read] = field(default_factory=dict)

    def read(self, table: Table) -> Read:
        return self.reads.get(table.qualified_name, Read())


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the system (glibc: ``malloc_trim``). A view
    moved forward frees the previous one's answers and the rows it read — megabytes, in the
    arena of whichever worker thread ran it — amid the new view's objects, so the free pages
    stay in the process's resident memory until trimmed: without, the API's resident memory
    grew at twice the size of what it kept (``bench national``, issue 54)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def empty_table(table: Table) -> pa.Table:
    """A table not written yet reads as empty (with its declared schema when it has one)."""
    schema = arrow_schema(table) if table.schema else pa.schema([])
    return schema.empty_table()


@dataclass
class _Built(Generic[V]):
    versions: tuple[int | None, ...]
    value: V


@dataclass
class _Slot:
    built: _Built | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # the first build
    looked: float = float("-inf")  # when the last look for newer versions began (monotonic)
    follow: asyncio.Task[None] | None = None  # a look under way, and the rebuild it started
    rebuilding: bool = False
    #: why the last rebuild failed (None: it did not); the failures in a row since the last
    #: success space the next looks out (``_backoff``)
    failure: str | None = None
    failures: int = 0


class CommitRows:
    """The rows each commit of one table added (``lakehouse.io.lake.LakeTable.added_since``), read
    from storage once for all of the process's readers of the table — the live view's
    refreshes, the prices WebSocket — which ask from worker threads. The rows of the newest
    ``RECENT_COMMITS`` commits read are kept."""

    def __init__(self, table: LakeTable, read: Read) -> None:
        self.table = table
        self.read = read
        self._rows: dict[int, pa.Table] = {}  # version → the rows its commit added
        self._lock = threading.Lock()  # one reader of a commit at a time

    def added_since(self, version: int) -> tuple[int, pa.Table]:
        """The rows the commits after ``version`` added, and the newest version read."""
        parts = []
        with self._lock:
            while (rows := self._commit(version + 1)) is not None:
                parts.append(rows)
                version += 1
        if not (parts := [rows for rows in parts if rows.num_rows]):
            return version, pa.table({})
        return version, pa.concat_tables(parts, promote_options="default")

    def newest(self, version: int) -> int:
        """The newest committed version after ``version``, reading no data file."""
        while version + 1 in self._rows or self.table.has_commit(version + 1):
            version += 1
        return version

    def _commit(self, version: int) -> pa.Table | None:
        rows = self._rows.get(version)
        if rows is None:
            files = self.table.committed_files(version)
            if files is None:
                return None
            rows = self.table.files_rows(files, self.read.columns, self.read.dictionary)
            self._rows[version] = rows
            while len(self._rows) > RECENT_COMMITS:
                del self._rows[min(self._rows)]
        return rows


class GoldCache:
    """Prepared views over gold tables, rebuilt when a table's Delta version changes."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.lake = Lakehouse(settings)
        self.metrics = metrics
        self._check_every = settings.api.cache_check_ms / 1000
        self._slots: dict[str, _Slot] = {}
        self._commits: dict[tuple[str, str], CommitRows] = {}

    def commits(self, spec: ViewSpec[Any], table: Table) -> CommitRows:
        """The one reader of the commits of ``table`` as ``spec`` reads it."""
        key = (spec.name, table.qualified_name)
        if key not in self._commits:
            self._commits[key] = CommitRows(self.lake[table], spec.read(table))
        return self._commits[key]

    def advanced(self, table: Table, version: int | None) -> bool:
        """Whether ``table`` has a version newer than ``version`` (None: not written yet)."""
        following = 0 if version is None else version + 1
        return self.lake[table].has_commit(following)

    def current(self, spec: ViewSpec[V]) -> V | None:
        """The view as last built, without looking for a newer version (None: never built)."""
        slot = self._slots.get(spec.name)
        return slot.built.value if slot and slot.built else None

    def _backoff(self, slot: _Slot) -> float:
        """The wait between two looks: ``api.cache_check_ms``; after rebuilds that failed in
        a row, ``BACKOFF_FIRST_SECONDS`` (or that, if longer) doubled with each (up to
        ``BACKOFF_MAX_SECONDS``), so a view that cannot be rebuilt costs no CPU retrying."""
        if not slot.failures:
            return self._check_every
        first = max(self._check_every, BACKOFF_FIRST_SECONDS)
        return backoff_seconds(slot.failures, first, BACKOFF_MAX_SECONDS)

    def failing(self) -> dict[str, str]:
        """The views whose last rebuild failed (still answering from an older version of their
        tables), with the reason: what readiness reports."""
        return {name: slot.failure for name, slot in self._slots.items() if slot.failure}

    def _stale(self, spec: ViewSpec[Any], built: _Built) -> bool:
        return any(self.advanced(t, v) for t, v in zip(spec.tables, built.versions, strict=True))

    def ready(self, spec: ViewSpec[V]) -> V | None:
        """The view as ``get`` answers it once built, without waiting (None: not built yet).
        Starts a look for newer versions of its tables when none ran for
        ``api.cache_check_ms``. Metrics: ``hit`` (current), ``stale`` (answered from the
        previous version during a rebuild)."""
        slot = self._slots.get(spec.name)
        if slot is None or slot.built is None:
            return None
        now = time.monotonic()
        if slot.follow is None and now - slot.looked >= self._backoff(slot):
            slot.looked = now
            slot.follow = asyncio.create_task(self._follow(spec, slot))
        self.metrics.looked_up(spec.name, "stale" if slot.rebuilding else "hit")
        return slot.built.value

    async def get(self, spec: ViewSpec[V]) -> V:
        """The view for the newest versions of its tables — or, while a rebuild for a newer
        version runs, the previous one (``ready``); the first build is waited for (metrics:
        ``miss``)."""
        value = self.ready(spec)
        if value is not None:
            return value
        slot = self._slots.setdefault(spec.name, _Slot())
        async with slot.lock:
            if slot.built is None:
                slot.built = await asyncio.to_thread(self._build, spec)
                self.metrics.looked_up(spec.name, "miss")
        return slot.built.value

    async def _follow(self, spec: ViewSpec[Any], slot: _Slot) -> None:
        """Look for newer versions of the view's tables and, when there are, move the view
        forward — both in worker threads."""
        try:
            built = slot.built
            if await asyncio.to_thread(self._stale, spec, built):
                slot.rebuilding = True
                slot.built = await asyncio.to_thread(self._rebuild, spec, built)
                del built  # the previous view, freed once no request holds it
                await asyncio.to_thread(release_free_memory)
        except Exception as error:  # noqa: BLE001 - counted, told once, shown by /ready
            self.metrics.view_failures.labels(spec.name).inc()
            if slot.failure is None:
                log.error(
                    "view rebuild failed: serving its previous version until a rebuild succeeds",
                    extra={"view": spec.name, "error": f"{type(error).__name__}: {error}"},
                )
            slot.failure, slot.failures = f"{type(error).__name__}: {error}", slot.failures + 1
        else:
            if slot.failure is not None:
                log.info("view rebuilt again", extra={"view": spec.name, "after": slot.failures})
            slot.failure, slot.failures = None, 0
        finally:
            slot.rebuilding = False
            slot.follow = None

    def _added(self, spec: ViewSpec[Any], table: Table, version: int) -> tuple[int, pa.Table]:
        if table in spec.recent:
            return self.commits(spec, table).added_since(version)
        read = spec.read(table)
        return self.lake[table].added_since(version, read.columns, read.dictionary)

    def _rebuild(self, spec: ViewSpec[V], built: _Built[V]) -> _Built[V]:
        """The view at the newest versions: moved forward from ``built`` with the rows the new
        commits added when the view can be, else built anew."""
        if spec.update is None or None in built.versions:
            return self._build(spec)
        began = time.perf_counter()
        added: Tables = {}
        versions: list[int | None] = []
        for table, version in zip(spec.tables, built.versions, strict=True):
            newest, added[table.qualified_name] = self._added(spec, table, version)
            versions.append(newest)
            self.metrics.table_version.labels(table.qualified_name).set(newest)
        value = spec.update(self.settings, built.value, added)
        log.debug(
            "view updated",
            extra={
                "view": spec.name,
                "versions": versions,
                "rows": sum(t.num_rows for t in added.values()),
                "seconds": round(time.perf_counter() - began, 4),
            },
        )
        return _Built(tuple(versions), value)

    def _build(self, spec: ViewSpec[V]) -> _Built[V]:
        began = time.perf_counter()
        tables: Tables = {}
        versions: list[int | None] = []
        opened: dict[Table, DeltaTable | None] = {}
        for table in spec.tables:
            try:
                opened[table] = self.lake[table].open()
            except TableMissing:
                opened[table] = None
        # a recent table's older rows are in the view's other tables (gold's summaries): while
        # one of those is not written yet, every commit of the recent table is read, not forgotten
        summarised = all(delta is not None for t, delta in opened.items() if t not in spec.recent)
        for table, delta in opened.items():
            if delta is None:
                tables[table.qualified_name] = empty_table(table)
                versions.append(None)
            else:
                versions.append(delta.version())
                if table in spec.recent:
                    since = max(delta.version() - RECENT_COMMITS, -1) if summarised else -1
                    versions[-1], rows = self._added(spec, table, since)
                else:
                    read = spec.read(table)
                    where = read.filters(self.settings) if read.filters else ()
                    rows = rows_of(delta, read.columns, where)
                tables[table.qualified_name] = rows
            self.metrics.table_version.labels(table.qualified_name).set(
                -1 if versions[-1] is None else versions[-1]
            )
        value = spec.build(self.settings, tables)
        log.info(
            "view built",
            extra={
                "view": spec.name,
                "versions": versions,
                "seconds": round(time.perf_counter() - began, 3),
            },
        )
        return _Built(tuple(versions), value)
