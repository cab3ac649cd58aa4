"""Which of the Spark application's queries goes first when they compete for the two cores."""

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
    Spark application, handed to the queries that share it."""

    def __init__(self) -> None:
        self._silver_idle = threading.Event()
        self._silver_idle.set()

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
