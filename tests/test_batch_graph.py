"""The runner of a declared micro-batch (``batch_graph``): order, parallelism, skips, errors."""

from __future__ import annotations

import threading
import time

import pytest

from lakehouse.catalog.tables import GOLD_PRICE_DAILY
from lakehouse.io.delta_io import Write
from streaming_jobs.batch_graph import BatchGraph, Step
from streaming_jobs.medallion import inherit_properties


def test_steps_get_what_they_need_and_the_independent_ones_run_at_once():
    both_started = threading.Barrier(2, timeout=10)  # broken unless a and b run side by side
    seen: dict[str, int] = {}

    def side(x: int) -> int:
        both_started.wait()
        return x + 1

    graph = BatchGraph(
        ["x"],
        [
            Step("a", side, ("x",)),
            Step("b", side, ("x",)),
            Step("total", lambda a, b, x: seen.setdefault("total", a + b + x), ("a", "b", "x")),
        ],
    )
    seconds = graph.run({"x": 1})
    assert seen == {"total": 5}
    assert set(seconds) == {"a", "b", "total"}


def test_a_step_follows_its_after_steps_without_their_result():
    order: list[str] = []
    slow_done = threading.Event()

    def slow() -> None:
        slow_done.wait(0.2)
        order.append("slow")

    graph = BatchGraph(
        [],
        [Step("slow", slow), Step("then", lambda: order.append("then"), after=("slow",))],
    )
    graph.run({})
    assert order == ["slow", "then"]


def test_a_false_when_skips_the_step_and_what_needs_it_but_not_what_follows_it():
    ran: list[str] = []
    mark = lambda name: lambda **_: ran.append(name) or name  # noqa: E731
    graph = BatchGraph(
        ["go"],
        [
            Step("maybe", mark("maybe"), when="go"),
            Step("needs_maybe", mark("needs_maybe"), ("maybe",)),
            Step("after_maybe", mark("after_maybe"), after=("maybe",)),
        ],
    )
    assert set(graph.run({"go": False})) == {"after_maybe"}
    assert ran == ["after_maybe"]
    ran.clear()
    graph.run({"go": True})
    assert sorted(ran) == ["after_maybe", "maybe", "needs_maybe"]


def test_what_a_step_returns_to_write_is_written_and_its_rows_passed_on():
    """A step computes; its ``Write`` goes to the graph's writer (on the step's thread, before
    the steps that need it start), and those steps get the rows."""
    written: list[Write] = []
    seen: dict[str, object] = {}

    def region(daily: int) -> None:
        seen.update(written=list(written), daily=daily)

    graph = BatchGraph(
        ["x"],
        [
            Step("daily", lambda x: Write(GOLD_PRICE_DAILY, x * 2, {"only_if": "true"}), ("x",)),
            Step("region", region, ("daily",)),
        ],
        written.append,
    )
    graph.run({"x": 21})
    assert seen == {"written": [Write(GOLD_PRICE_DAILY, 42, {"only_if": "true"})], "daily": 42}
    unwritten = BatchGraph([], [Step("daily", lambda: Write(GOLD_PRICE_DAILY, 1))])
    with pytest.raises(ValueError, match="no writer"):
        unwritten.run({})


def test_every_step_passes_the_gate_as_it_starts():
    gate_calls: list[int] = []
    graph = BatchGraph([], [Step("a", lambda: None), Step("b", lambda: None)])
    graph.run({}, gate=lambda: gate_calls.append(1))
    assert len(gate_calls) == 2


def test_a_failure_is_raised_after_the_other_steps_end():
    ended = threading.Event()

    def fails() -> None:
        raise RuntimeError("boom")

    graph = BatchGraph([], [Step("fails", fails), Step("other", ended.set)])
    with pytest.raises(RuntimeError, match="boom"):
        graph.run({})
    assert ended.is_set()


@pytest.mark.parametrize(
    "steps",
    [
        [Step("a", lambda b: b, ("b",)), Step("b", lambda: 1)],  # used before it is declared
        [Step("a", lambda: 1), Step("a", lambda: 2)],  # a repeated name
        [Step("a", lambda: 1, when="nowhere")],
    ],
)
def test_a_declaration_with_an_unknown_or_repeated_name_is_refused(steps: list[Step]):
    with pytest.raises(ValueError, match="step 'a'"):
        BatchGraph([], steps)


def test_a_batch_without_a_declared_input_is_refused():
    graph = BatchGraph(["x"], [Step("a", lambda x: x, ("x",))])
    with pytest.raises(ValueError, match="inputs missing"):
        graph.run({})


def _ended_executions_holding_jobs(spark) -> set[int]:
    """The SQL executions that have ended and still have jobs filed with Spark's scheduler."""
    entries = spark._jsc.sc().dagScheduler().activeQueryToJobs().entrySet().iterator()
    executions = spark._jvm.org.apache.spark.sql.execution.SQLExecution
    ended = set()
    while entries.hasNext():
        execution = int(entries.next().getKey())
        if executions.getQueryExecution(execution) is None:
            ended.add(execution)
    return ended


def test_steps_on_spark_leave_no_job_with_the_scheduler(spark):
    """Each step's thread gets local properties of its own (``inherit_properties``). When the
    steps shared one set, a step's jobs were filed under another step's SQL execution; those
    filed after that execution had ended stayed in Spark's scheduler, plans and all, for good:
    the pipeline's driver ran out of heap after an hour (#53)."""

    def step() -> int:  # several SQL executions, each with a job or two
        return sum(spark.range(50).localCheckpoint().count() for _ in range(3))

    graph = BatchGraph([], [Step(f"step{n}", step) for n in range(6)])
    for _ in range(3):
        graph.run({}, inherit_properties(spark))
    deadline = time.monotonic() + 10  # the scheduler's loop takes each execution's end in turn
    while (left := _ended_executions_holding_jobs(spark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == set()
