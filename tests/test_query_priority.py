"""The silver query's batches go before the gold query's steps (``query_priority.SilverFirst``)."""

from __future__ import annotations

import threading
import time

from streaming_jobs.query_priority import SilverFirst


def test_a_gold_step_waits_for_the_running_silver_batch():
    gate, order, gold_ready = SilverFirst(), [], threading.Event()

    def gold_step() -> None:
        gold_ready.set()
        gate.gold_step(60)
        order.append("gold")

    gold = threading.Thread(target=gold_step)
    with gate.silver_batch():
        gold.start()
        gold_ready.wait()
        time.sleep(0.2)  # room for a gold step that does not wait to run first
        order.append("silver")
    gold.join(10)
    assert order == ["silver", "gold"]


def test_a_gold_step_waits_at_most_its_limit_and_not_at_all_when_silver_is_idle():
    gate = SilverFirst()
    with gate.silver_batch():
        assert not gate.gold_step(0.05)  # gave up waiting: the silver batch still runs
    assert gate.gold_step(5)  # silver idle
