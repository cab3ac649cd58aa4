"""The pipeline's Prometheus metrics: computed from Spark's query progress, served in the text
format a real Prometheus parser reads (``prometheus_client.parser``); end to end with the real
pipeline in tests/test_stack.py."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.tables import SILVER_HOLDS
from lakehouse.io.lake import Lakehouse
from streaming_jobs.main import QUERY_RESTARTS, recovered_from, restart_recoverable
from streaming_jobs.progress_metrics import (
    QUALITY_OBSERVATION,
    REST,
    PipelineMetrics,
    StepTimes,
    offsets_behind,
    open_holds,
)

# a silver progress as Spark 4 reports it (``StreamingQueryProgress.json``), trimmed
SILVER_PROGRESS = {
    "id": "6b0e0c5e-0000-4000-8000-000000000001",
    "name": "silver",
    "timestamp": "2026-11-25T10:00:00.000Z",
    "batchId": 7,
    "numInputRows": 1200,
    "inputRowsPerSecond": 400.0,
    "processedRowsPerSecond": 800.0,
    "durationMs": {"addBatch": 1300, "latestOffset": 20, "walCommit": 60, "triggerExecution": 1500},
    "stateOperators": [{"operatorName": "dedupeWithinWatermark", "numRowsTotal": 5000}],
    "sources": [
        {
            "description": "KafkaV2[Subscribe[market.prices, market.sensors]]",
            "startOffset": {"market.prices": {"0": 100, "1": 100}},
            "endOffset": {"market.prices": {"0": 700, "1": 700}, "market.sensors": {"0": 9}},
            "latestOffset": {"market.prices": {"0": 750, "1": 720}, "market.sensors": {"0": 9}},
            "metrics": {"avgOffsetsBehindLatest": "35.0", "maxOffsetsBehindLatest": "50"},
        }
    ],
    "sink": {"description": "ForeachBatchSink"},
}
GOLD_PROGRESS = {
    "id": "6b0e0c5e-0000-4000-8000-000000000002",
    "name": "gold",
    "timestamp": "2026-11-25T10:00:02.000Z",
    "batchId": 3,
    "numInputRows": 4,
    "durationMs": {"triggerExecution": 900},
    "sources": [{"description": "DeltaSource", "endOffset": {"reservoirVersion": 8, "index": -1}}],
    "observedMetrics": {
        QUALITY_OBSERVATION: {
            "accepted": 1100,
            "quarantined": 30,
            "duplicates": 70,
            "by_reason": [{"late": 20, "unknown_market": 4}, {"late": 6}],
        }
    },
}


SILVER_END = datetime(2026, 11, 25, 10, 0, 1, 500000, tzinfo=UTC).timestamp()  # + triggerExecution
GOLD_END = datetime(2026, 11, 25, 10, 0, 2, 900000, tzinfo=UTC).timestamp()


def families(metrics: PipelineMetrics) -> dict[str, list]:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def test_offsets_behind_per_topic():
    assert offsets_behind(
        json.dumps({"t": {"0": 10, "1": 5}}), json.dumps({"t": {"0": 4, "1": 5}})
    ) == {"t": 6}
    assert offsets_behind({"t": {"0": 3}}, {}) == {"t": 0}  # nothing read yet: no known end
    assert offsets_behind({"reservoirVersion": 8}, {"reservoirVersion": 8}) == {}
    assert offsets_behind(None, None) == {}


def test_progress_becomes_metrics_a_real_parser_reads():
    steps = StepTimes()
    metrics = PipelineMetrics(steps=steps)
    metrics.started(SILVER_PROGRESS["id"], "silver")
    metrics.started(GOLD_PROGRESS["id"], "gold")
    metrics.progress(SILVER_PROGRESS)
    metrics.progress(GOLD_PROGRESS)
    steps.record("silver", {"judge": 0.7, "write": 0.4})
    metrics.watch_holds(lambda: 3, every=60)

    got = families(metrics)
    assert {metric.name.removesuffix("_total") for metric in m.PIPELINE_METRICS} <= set(got)
    rate = got[m.INPUT_ROWS_PER_SECOND.name]
    assert value(rate, m.INPUT_ROWS_PER_SECOND.name, query="silver") == 400.0
    rows = got[m.INPUT_ROWS.name.removesuffix("_total")]
    assert value(rows, m.INPUT_ROWS.series, query="silver") == 1200
    behind = got[m.OFFSETS_BEHIND.name]
    assert value(behind, m.OFFSETS_BEHIND.name, query="silver", topic="market.prices") == 70
    assert value(behind, m.OFFSETS_BEHIND.name, query="silver", topic="market.sensors") == 0
    phases = got[m.TRIGGER_PHASE_SECONDS.name]
    assert value(phases, m.TRIGGER_PHASE_SECONDS.name, query="silver", phase="walCommit") == 0.06
    steps_seen = got[m.BATCH_STEP_SECONDS.name]
    assert value(steps_seen, m.BATCH_STEP_SECONDS.name, query="silver", step="judge") == 0.7
    state = got[m.STATE_ROWS.name]
    assert value(state, m.STATE_ROWS.name, query="silver", operator="dedupeWithinWatermark") == 5000
    quarantined = got[m.QUARANTINED.name.removesuffix("_total")]
    assert value(quarantined, m.QUARANTINED.series, reason="late") == 26
    assert value(quarantined, m.QUARANTINED.series, reason="unknown_market") == 4
    received = got[m.RECEIVED.name]
    assert value(received, m.RECEIVED.series, outcome="duplicates") == 70
    assert value(got[m.HOLDS_OPEN.name], m.HOLDS_OPEN.name) == 3
    batches = got[m.BATCH_SECONDS.name]
    assert value(batches, f"{m.BATCH_SECONDS.name}_count", query="gold") == 1
    assert value(batches, f"{m.BATCH_SECONDS.name}_sum", query="silver") == 1.5
    ended = value(got[m.LAST_BATCH.name], m.LAST_BATCH.name, query="silver")
    assert ended == pytest.approx(SILVER_END)
    age = value(got[m.LAST_BATCH_AGE.name], m.LAST_BATCH_AGE.name, query="gold")
    assert age == pytest.approx(time.time() - GOLD_END, abs=5)
    assert metrics.summary("silver") == {"lag": 70, "last_batch_at": ended}
    assert metrics.summary("gold") == {"lag": None, "last_batch_at": pytest.approx(GOLD_END)}


def test_a_gold_batch_s_seconds_are_its_work_without_its_rest():
    steps = StepTimes()
    metrics = PipelineMetrics(steps=steps)
    metrics.started(GOLD_PROGRESS["id"], "gold")
    steps.record("gold", {"plan": 0.2, REST: 0.7})  # of 0.9 s of triggerExecution
    metrics.progress(GOLD_PROGRESS)
    batches = families(metrics)[m.BATCH_SECONDS.name]
    assert value(batches, f"{m.BATCH_SECONDS.name}_sum", query="gold") == pytest.approx(0.2)


def test_an_idle_trigger_completes_no_batch():
    metrics = PipelineMetrics(steps=StepTimes())
    metrics.started(SILVER_PROGRESS["id"], "silver")
    metrics.progress({**SILVER_PROGRESS, "numInputRows": 0})
    got = families(metrics)
    assert (
        value(got[m.INPUT_ROWS_PER_SECOND.name], m.INPUT_ROWS_PER_SECOND.name, query="silver")
        == 400
    )
    assert not [s for s in got[m.LAST_BATCH.name] if s.labels.get("query") == "silver"]
    assert metrics.summary("silver")["last_batch_at"] is None
    metrics.terminated(SILVER_PROGRESS["id"])
    assert value(families(metrics)[m.QUERY_ACTIVE.name], m.QUERY_ACTIVE.name, query="silver") == 0


def test_open_holds_counts_the_reviewable_rows_of_the_holds_table(settings, tmp_path):
    own = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"lakehouse_root": tmp_path})}
    )
    count = open_holds(Lakehouse(own)[SILVER_HOLDS])
    assert count() is None  # no table yet

    def write(statuses: list[str]) -> None:
        rows = pa.table({"event_id": [f"e{i}" for i in range(len(statuses))], "status": statuses})
        write_deltalake(str(SILVER_HOLDS.path(own)), rows, mode="overwrite")

    write(["held", "not_confirmed", "released", "rejected", "held"])
    assert count() == 3
    write(["released", "held"])  # a new version is counted again
    assert count() == 1
    metrics = PipelineMetrics(steps=StepTimes())
    metrics.watch_holds(count, every=0)
    assert value(families(metrics)[m.HOLDS_OPEN.name], m.HOLDS_OPEN.name) == 1


def test_a_query_whose_pinned_blocks_were_lost_starts_again_a_few_times_then_the_process_fails():
    """A batch's pinned blocks lost with an executor (a worker lost mid-batch on a cluster):
    the query starts again from its checkpoint in the same driver, ``QUERY_RESTARTS`` times;
    any other failure, or one more, ends the process (its keeper restarts it)."""
    lost = (
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] … org.apache.spark.SparkException: "
        "[CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND] Checkpoint block rdd_242_0 not found!"
    )
    assert [recovered_from(lost, n) for n in range(QUERY_RESTARTS)] == [
        "CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"
    ] * QUERY_RESTARTS
    assert recovered_from(lost, QUERY_RESTARTS) is None
    assert recovered_from("[DELTA_CONCURRENT_APPEND] Files were added", 0) is None
    assert recovered_from("None", 0) is None  # stopped without an exception

    metrics = PipelineMetrics(steps=StepTimes())
    metrics.started(SILVER_PROGRESS["id"], "silver")
    metrics.started(GOLD_PROGRESS["id"], "gold")
    restarts = families(metrics)[m.QUERY_RESTARTS.name]
    assert value(restarts, m.QUERY_RESTARTS.series, query="silver") == 0  # there from the start

    # the supervisor's round: the gold query lost its blocks, the silver query runs
    queries = [FakeQuery("silver"), FakeQuery("gold", lost)]
    started: list[int] = []

    def start(i: int) -> FakeQuery:
        started.append(i)
        return FakeQuery(queries[i].name)

    counts: Counter[str] = Counter()
    assert restart_recoverable(queries, start, counts, metrics)
    assert started == [1] and counts == {"gold": 1} and all(q.isActive for q in queries)
    restarts = families(metrics)[m.QUERY_RESTARTS.name]
    assert value(restarts, m.QUERY_RESTARTS.series, query="gold") == 1
    queries[0] = FakeQuery("silver", "[DELTA_CONCURRENT_APPEND] Files were added")
    assert not restart_recoverable(queries, start, counts, metrics)  # the process fails
    assert started == [1]


class FakeQuery:
    """What the supervisor asks of a ``StreamingQuery``: stopped when it has an error."""

    def __init__(self, name: str, error: str | None = None) -> None:
        self.name, self.error = name, error
        self.isActive = error is None

    def exception(self) -> str | None:
        return self.error
