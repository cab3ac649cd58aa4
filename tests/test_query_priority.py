"""The silver query's batches go before the gold query's steps, and the gold query rests between
batches unless a silver batch is urgent (``query_priority.SilverFirst``)."""

from __future__ import annotations

import threading
import time

from streaming_jobs.query_priority import SilverFirst, latest_hours


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
    pace.silver_written(3, urgent=True)  # aggregated by the rest below (through 3): no wake
    began = time.monotonic()  # before the timer starts: it cannot fire sooner after this
    threading.Timer(0.2, pace.silver_written, (4, True)).start()
    assert pace.gold_rest(through=3, began=began) < 5
    assert time.monotonic() - began >= 0.15  # woken by batch 4, not by batch 3 (at once)
    assert pace.gold_rest(through=3, began=time.monotonic()) < 1  # batch 4 still waits


def test_an_alarm_wakes_gold_once_a_new_severity_or_hour_again():
    pace = SilverFirst(gold_interval=30)
    humid = "2026-11-30 19:00:00|humidity|IP-001|humidity_pct|warning"  # 02:00 WIB

    def wakes(batch: int, *alarms: str) -> bool:
        pace.silver_written(batch, urgent=False, alarms=frozenset(alarms))
        return pace.gold_rest(through=batch - 1, began=time.monotonic() - 29.8) < 0.1

    assert not wakes(1)  # no alarm: the rest lasts its interval
    assert wakes(2, humid)
    assert not wakes(3, humid)  # the next round's reading at the level: no wake
    assert wakes(4, humid, humid.replace("warning", "critical"))
    assert wakes(5, humid.replace(" 19:", " 20:"))
    assert not wakes(6, humid.replace(" 19:", " 20:"))
    assert wakes(7, humid.replace(" 19:", " 18:"))  # older than the two latest hours: forgotten
    assert latest_hours(frozenset({humid, humid.replace(" 19:", " 20:")}), hours=1) == {
        humid.replace(" 19:", " 20:")
    }


def test_release_ends_a_rest_and_every_later_one():
    pace = SilverFirst(gold_interval=30)
    threading.Timer(0.2, pace.release).start()
    assert pace.gold_rest(through=1, began=time.monotonic()) < 5
    assert pace.gold_rest(through=1, began=time.monotonic()) < 1
