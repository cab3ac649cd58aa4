"""Which of the Spark application's queries goes first when they compete for the two cores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SilverFirst:
    """The silver query's batches before the gold and supply queries' steps. The queries share
    the cores and the driver: a gold step that starts while a silver batch runs waits for it (at
    most ``spark.gold_yield_seconds``), so a price does not wait for the aggregates of the one
    before it. Under a steady load gold's steps start as silver batches end. One per Spark
    application, handed to the queries that share it."""

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
