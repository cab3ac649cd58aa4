"""Which of the Spark application's queries goes first when they compete for the two cores,
and how often the gold query runs when nothing is urgent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic


class SilverFirst:
    """The silver query's batches before the gold and supply queries' steps. The queries share
    the cores and the driver: a gold step that starts while a silver batch runs waits for it, so
    a price does not wait for the aggregates of the one before it. Under a steady load gold's
    steps start as silver batches end; the waits of one gold batch's steps end together at most
    ``spark.gold_yield_seconds`` after the batch began (``batch_gate``), so a load that keeps
    silver busy (a backlog) delays gold by that much a batch, not by that much a step. One per
    Spark application, handed to the queries that share it.

    It also paces the gold query (``gold_interval`` seconds; 0: back to back). A gold batch's
    cost is mostly fixed (a few dozen Spark jobs, whatever its rows), so at rest gold batches
    back to back kept a core busy for a dozen prices. A gold batch ends by resting until
    ``gold_interval`` seconds after it began, unless a silver batch after the ones it
    aggregated had rows an alert may follow at once (``silver_written``): then the next gold
    batch starts as soon as it ends."""

    def __init__(self, gold_interval: float = 0.0) -> None:
        self._silver_idle = threading.Event()
        self._silver_idle.set()
        self.gold_interval = gold_interval
        self._urgent = threading.Condition()
        self._urgent_through = -1  # the newest silver batch that was urgent
        self._alarmed: frozenset[str] = frozenset()  # the alarms that woke gold, latest hours
        self._released = False

    @contextmanager
    def silver_batch(self) -> Iterator[None]:
        self._silver_idle.clear()
        try:
            yield
        finally:
            self._silver_idle.set()

    def gold_step(self, max_wait: float) -> bool:
        """Wait until no silver batch runs, at most ``max_wait`` seconds; whether none does."""
        return self._silver_idle.wait(max_wait)

    def batch_gate(self, max_wait: float) -> Callable[[], bool]:
        """The gate of one batch's steps, from now: each call waits until no silver batch
        runs, until ``max_wait`` seconds from now at the latest; whether none does."""
        deadline = monotonic() + max_wait
        return lambda: self.gold_step(max(0.0, deadline - monotonic()))

    def silver_written(
        self, silver_batch: int, urgent: bool, alarms: frozenset[str] = frozenset()
    ) -> None:
        """Silver batch ``silver_batch`` is written. When it has rows an alert may follow at
        once (``urgent``) or an alarm that did not wake gold yet (``alarms``: ``hour|rule|market|
        metric|severity`` where its readings of a market's hour reach a sensor rule's level,
        ``alerts.sensors.sensor_alarms``), the gold batch resting ends. An alarm wakes gold once per
        hour: a later batch of the same series and hour at the same level finds the alert
        raised, or the hour's statistic still below the level — the paced gold batch, within
        ``gold_interval`` seconds, aggregates it."""
        with self._urgent:
            woken = urgent or not alarms <= self._alarmed
            self._alarmed = latest_hours(self._alarmed | alarms)
            if woken:
                self._urgent_through = max(self._urgent_through, silver_batch)
                self._urgent.notify_all()

    def gold_rest(self, through: int, began: float) -> float:
        """Rest after a gold batch that began at ``began`` (``time.monotonic``) and aggregated
        the silver batches up to ``through``: until ``gold_interval`` seconds after it began, a
        silver batch after ``through`` was urgent, or ``release``. The seconds rested."""
        start = monotonic()
        with self._urgent:
            self._urgent.wait_for(
                lambda: self._released or self._urgent_through > through,
                max(0.0, began + self.gold_interval - start),
            )
        return monotonic() - start

    def release(self) -> None:
        """No more rests (the queries are stopping: a resting batch would hold up the stop)."""
        with self._urgent:
            self._released = True
            self._urgent.notify_all()


def latest_hours(alarms: frozenset[str], hours: int = 2) -> frozenset[str]:
    """The ``alarms`` (``local hour|…``) of the ``hours`` latest hours among them."""
    latest = set(sorted({a.split("|", 1)[0] for a in alarms})[-hours:])
    return frozenset(a for a in alarms if a.split("|", 1)[0] in latest)
