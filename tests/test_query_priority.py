"""The silver query's batches go before the gold query's steps, and the gold query rests between
batches unless a silver batch is urgent (``query_priority.SilverFirst``)."""

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


def test_a_batch_s_steps_wait_for_silver_together_at_most_the_limit():
    """Under a load that keeps silver busy, a gold batch is held back by the limit once, not
    once a step: its gate's waits end together, the limit after the batch began."""
    gate = SilverFirst()
    with gate.silver_batch():
        batch = gate.batch_gate(0.3)
        began = time.monotonic()
        assert not batch()  # the first step waited the limit
        assert not batch() and not batch()  # the next ones: no more
        assert time.monotonic() - began < 0.6
    assert gate.batch_gate(5)()  # silver idle: no wait


def test_a_gold_batch_rests_until_its_interval_after_it_began():
    pace = SilverFirst(gold_interval=1.0)
    began = time.monotonic()
    rested = pace.gold_rest(through=3, began=began)
    assert rested >= 0.9 and time.monotonic() - began >= 0.99  # a timed wait may end a hair early
    assert pace.gold_rest(through=3, began=began) < 0.5  # its interval is over: no more rest
    assert SilverFirst().gold_rest(through=3, began=time.monotonic()) < 0.5  # back to back


def test_only_an_urgent_silver_batch_it_did_not_aggregate_ends_a_gold_rest():
    pace = SilverFirst(gold_interval=30)
    pace.urgent(3)  # aggregated by the batch resting below (through 3): no reason to wake
    began = time.monotonic()  # before the timer starts: it cannot fire sooner after this
    threading.Timer(0.2, pace.urgent, (4,)).start()
    assert pace.gold_rest(through=3, began=began) < 5
    assert time.monotonic() - began >= 0.15  # woken by batch 4, not by batch 3 (at once)
    assert pace.gold_rest(through=3, began=time.monotonic()) < 1  # batch 4 still waits


def test_release_ends_a_rest_and_every_later_one():
    pace = SilverFirst(gold_interval=30)
    threading.Timer(0.2, pace.release).start()
    assert pace.gold_rest(through=1, began=time.monotonic()) < 5
    assert pace.gold_rest(through=1, began=time.monotonic()) < 1
