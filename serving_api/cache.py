"""Gold tables in memory, keyed by Delta version.

A *view* is a structure prepared once from one or more gold tables (an index, precomputed
changes, encoded responses) and kept until one of its tables gets a new Delta version. A request
costs one ``stat`` per input table — does the commit file of the next version,
``_delta_log/<version + 1>.json``, exist? — at most every ``api.cache_check_ms``, and a lookup.
Commits are atomic, so that file appearing is exactly "a new version". Only then is the view
moved forward — from the rows the new commits added, for a view with an updater (the live
prices), else by re-reading its tables with delta-rs — in a worker thread (never a blocked event
loop), while requests keep getting the previous view until the new one is complete
(stale-while-revalidate: a rebuild never adds its time to a request's latency; only the very
first build is waited for).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pyarrow as pa

from lakehouse.fast_read import TableMissing, added_since, open_table
from lakehouse.settings import Settings
from lakehouse.storage import exists
from lakehouse.tables import Table, arrow_schema
from serving_api.metrics import ApiMetrics

log = logging.getLogger(__name__)

V = TypeVar("V")
#: a ``recent`` table's commits read at build time: usually more than the table it is summed
#: up in lags behind (the gold query MERGEs silver's prices into ``gold.price_latest``); a view
#: that follows both catches up on a longer lag when the summary commits
RECENT_COMMITS = 20
Tables = dict[str, pa.Table]
Builder = Callable[[Settings, Tables], V]
Updater = Callable[[Settings, V, Tables], V]


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
    refresh: asyncio.Task[None] | None = None  # a rebuild under way


class GoldCache:
    """Prepared views over gold tables, rebuilt when a table's Delta version changes."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._check_every = settings.api.cache_check_ms / 1000
        # table → (version checked, when, whether a newer version exists)
        self._checks: dict[str, tuple[int | None, float, bool]] = {}
        self._slots: dict[str, _Slot] = {}

    def advanced(self, table: Table, version: int | None) -> bool:
        """Whether ``table`` has a version newer than ``version`` (None: not written yet),
        looked at no more often than ``api.cache_check_ms``."""
        now = time.monotonic()
        checked = self._checks.get(table.qualified_name)
        if checked and checked[0] == version and now - checked[1] < self._check_every:
            return checked[2]
        following = 0 if version is None else version + 1
        newer = exists(self.settings, table.log(self.settings, following))
        self._checks[table.qualified_name] = (version, now, newer)
        return newer

    def current(self, spec: ViewSpec[V]) -> V | None:
        """The view as last built, without looking for a newer version (None: never built)."""
        slot = self._slots.get(spec.name)
        return slot.built.value if slot and slot.built else None

    def _stale(self, spec: ViewSpec[Any], built: _Built | None) -> bool:
        return built is None or any(
            self.advanced(t, v) for t, v in zip(spec.tables, built.versions, strict=True)
        )

    async def get(self, spec: ViewSpec[V]) -> V:
        """The view for the newest versions of its tables — or, while a rebuild for a newer
        version runs, the previous one. Metrics: ``hit`` (current), ``stale`` (answered from
        the previous version during a rebuild), ``miss`` (built before answering)."""
        slot = self._slots.setdefault(spec.name, _Slot())
        built = slot.built
        if built is None:
            async with slot.lock:
                if slot.built is None:
                    slot.built = await asyncio.to_thread(self._build, spec)
                    self.metrics.cache.labels(spec.name, "miss").inc()
            return slot.built.value
        if slot.refresh is None and self._stale(spec, built):
            slot.refresh = asyncio.create_task(self._refresh(spec, slot))
        self.metrics.cache.labels(spec.name, "hit" if slot.refresh is None else "stale").inc()
        return built.value

    async def _refresh(self, spec: ViewSpec[Any], slot: _Slot) -> None:
        try:
            slot.built = await asyncio.to_thread(self._rebuild, spec, slot.built)
        except Exception:
            log.exception("view rebuild failed", extra={"view": spec.name})
        finally:
            slot.refresh = None

    def _rebuild(self, spec: ViewSpec[V], built: _Built[V]) -> _Built[V]:
        """The view at the newest versions: moved forward from ``built`` with the rows the new
        commits added when the view can be, else built anew."""
        if spec.update is None or None in built.versions:
            return self._build(spec)
        began = time.perf_counter()
        added: Tables = {}
        versions: list[int | None] = []
        for table, version in zip(spec.tables, built.versions, strict=True):
            newest, added[table.qualified_name] = added_since(table, self.settings, version)
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
        for table in spec.tables:
            try:
                delta = open_table(table, self.settings)
            except TableMissing:
                tables[table.qualified_name] = empty_table(table)
                versions.append(None)
            else:
                versions.append(delta.version())
                if table in spec.recent:
                    since = max(delta.version() - RECENT_COMMITS, -1)
                    versions[-1], rows = added_since(table, self.settings, since)
                else:
                    rows = delta.to_pyarrow_table()
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
