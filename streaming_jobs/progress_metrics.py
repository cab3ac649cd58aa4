"""The pipeline's Prometheus metrics (names: ``lakehouse.catalog.ops_metrics``), served on
``pipeline_metrics.port`` by the Spark application (``streaming_jobs.main``).

What Spark offers comes first: a ``StreamingQueryListener`` receives every query's progress
(rows in and rows/s, ``durationMs`` per phase, each Kafka source's ``latestOffset`` and
``endOffset``, state rows, the observed metrics of the gold query's input: quarantine by
reason). Two numbers Spark does not have are added: the steps of our batch functions (their
``Laps``, handed over through ``STEPS``) and the holds still open (``silver.holds``, counted
with delta-rs at most every ``pipeline_metrics.holds_seconds``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
)

from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.events import HoldStatus
from lakehouse.catalog.tables import SILVER_HOLDS
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse, LakeTable

log = logging.getLogger(__name__)

#: the name of the observed metrics on the gold query's input (``quality_observed``)
QUALITY_OBSERVATION = "quality"


#: the step a batch function records for the seconds it rested at its end (the gold query's
#: pace, ``SilverFirst.gold_rest``): part of Spark's ``triggerExecution``, not of the batch's work
REST = "rest"


class StepTimes:
    """The seconds of each step of each query's last batch function; the batch functions
    record their ``Laps`` here, the exporter reads them at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, float]] = {}

    def record(self, query: str, seconds: Mapping[str, float]) -> None:
        with self._lock:
            self._last[query] = dict(seconds)

    def rested(self, query: str) -> float:
        """The seconds the last batch of ``query`` rested (``REST``)."""
        with self._lock:
            return self._last.get(query, {}).get(REST, 0.0)

    def items(self) -> list[tuple[str, str, float]]:
        with self._lock:
            return [(q, step, s) for q, steps in self._last.items() for step, s in steps.items()]


STEPS = StepTimes()  # one Spark application per process


class _StepCollector(Collector):
    def __init__(self, steps: StepTimes) -> None:
        self.steps = steps

    def collect(self) -> Iterable[GaugeMetricFamily]:
        metric = m.BATCH_STEP_SECONDS
        family = GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))
        for query, step, seconds in self.steps.items():
            family.add_metric([query, step], seconds)
        yield family


def quality_observed() -> list[Column]:
    """What the gold query observes of its input (the ``gold.data_quality`` rows of completed
    silver batches): totals by outcome and the non-empty quarantine maps by reason."""
    return [
        F.sum("accepted").alias("accepted"),
        F.sum("quarantined").alias("quarantined"),
        F.sum("duplicates").alias("duplicates"),
        F.collect_list(
            F.when(F.size("quarantined_by_reason") > 0, F.col("quarantined_by_reason"))
        ).alias("by_reason"),
    ]


def offsets_behind(latest: object, end: object) -> dict[str, int]:
    """Per topic, the records between a Kafka source's batch end offsets and the latest
    offsets (``{topic: {partition: offset}}``, as JSON text or parsed); a source that is not
    Kafka's has none."""
    latest, end = (json.loads(o) if isinstance(o, str) else o for o in (latest, end))
    if not isinstance(latest, dict) or not isinstance(end, dict):
        return {}
    behind: dict[str, int] = {}
    for topic, partitions in latest.items():
        if not isinstance(partitions, dict):
            return {}  # not a Kafka offset (a Delta source's offset is flat)
        done = end.get(topic) or {}
        behind[topic] = sum(
            max(int(offset) - int(done.get(p, offset)), 0) for p, offset in partitions.items()
        )
    return behind


def _posix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class PipelineMetrics:
    """The pipeline's metrics in a registry of their own, updated from query progress."""

    def __init__(self, registry: CollectorRegistry | None = None, steps: StepTimes = STEPS) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        gauge = lambda d: Gauge(d.name, d.help, d.labels, registry=r)  # noqa: E731
        counter = lambda d: Counter(d.name, d.help, d.labels, registry=r)  # noqa: E731
        self.input_rate = gauge(m.INPUT_ROWS_PER_SECOND)
        self.processed_rate = gauge(m.PROCESSED_ROWS_PER_SECOND)
        self.input_rows = counter(m.INPUT_ROWS)
        self.batch_seconds = Histogram(
            m.BATCH_SECONDS.name,
            m.BATCH_SECONDS.help,
            m.BATCH_SECONDS.labels,
            buckets=m.BATCH_BUCKETS,
            registry=r,
        )
        self.phase_seconds = gauge(m.TRIGGER_PHASE_SECONDS)
        self.offsets_behind = gauge(m.OFFSETS_BEHIND)
        self.state_rows = gauge(m.STATE_ROWS)
        self.quarantined = counter(m.QUARANTINED)
        self.received = counter(m.RECEIVED)
        self.holds_open = gauge(m.HOLDS_OPEN)
        self.last_batch = gauge(m.LAST_BATCH)
        self.last_batch_age = gauge(m.LAST_BATCH_AGE)
        self.active = gauge(m.QUERY_ACTIVE)
        self.restarts = counter(m.QUERY_RESTARTS)
        r.register(_StepCollector(steps))
        self.steps = steps
        self._names: dict[str, str] = {}  # query id → name
        self._completed: dict[str, float] = {}  # query name → when its last batch ended
        self._behind: dict[str, int] = {}  # query name → records behind in Kafka

    def started(self, query_id: str, name: str) -> None:
        self._names[query_id] = name
        self.active.labels(name).set(1)
        self.restarts.labels(name)  # 0 from the start: an increase is seen from the first
        self.last_batch_age.labels(name).set_function(lambda n=name: self._age(n))

    def terminated(self, query_id: str) -> None:
        if name := self._names.get(query_id):
            self.active.labels(name).set(0)

    def summary(self, name: str) -> dict[str, float | int | None]:
        """A query's records behind in Kafka (None: it reads no Kafka topic) and when its last
        batch ended (None: none yet), for the status file."""
        return {"lag": self._behind.get(name), "last_batch_at": self._completed.get(name)}

    def _age(self, name: str) -> float:
        completed = self._completed.get(name)
        return float("nan") if completed is None else max(time.time() - completed, 0.0)

    def progress(self, p: Mapping[str, Any]) -> None:
        """One ``StreamingQueryProgress`` as JSON (``progress.json``, parsed)."""
        name = p.get("name") or p["id"]
        rows = int(p.get("numInputRows") or 0)
        self.input_rate.labels(name).set(float(p.get("inputRowsPerSecond") or 0.0))
        self.processed_rate.labels(name).set(float(p.get("processedRowsPerSecond") or 0.0))
        for phase, ms in (p.get("durationMs") or {}).items():
            self.phase_seconds.labels(name, phase).set(ms / 1000)
        kafka = [
            offsets_behind(source.get("latestOffset"), source.get("endOffset"))
            for source in p.get("sources") or []
        ]
        for topic, behind in (pair for topics in kafka for pair in topics.items()):
            self.offsets_behind.labels(name, topic).set(behind)
        if any(kafka):
            self._behind[name] = sum(sum(topics.values()) for topics in kafka)
        for operator in p.get("stateOperators") or []:
            self.state_rows.labels(name, operator.get("operatorName", "state")).set(
                operator.get("numRowsTotal", 0)
            )
        if rows == 0:
            return  # an idle trigger: no batch completed
        self.input_rows.labels(name).inc(rows)
        trigger_ms = (p.get("durationMs") or {}).get("triggerExecution")
        if trigger_ms is not None:  # the batch's work: without its rest
            self.batch_seconds.labels(name).observe(
                max(trigger_ms / 1000 - self.steps.rested(name), 0.0)
            )
        completed = _posix(p["timestamp"]) + (trigger_ms or 0) / 1000
        self._completed[name] = completed
        self.last_batch.labels(name).set(completed)
        self._quality((p.get("observedMetrics") or {}).get(QUALITY_OBSERVATION))

    def _quality(self, observed: Mapping[str, Any] | None) -> None:
        if not observed:
            return
        for outcome in ("accepted", "quarantined", "duplicates"):
            self.received.labels(outcome).inc(int(observed.get(outcome) or 0))
        for by_reason in observed.get("by_reason") or []:
            for reason, count in by_reason.items():
                self.quarantined.labels(reason).inc(int(count))

    def watch_holds(self, count: Callable[[], int | None], every: float) -> None:
        """Holds open from ``count`` (None: no table yet), asked at scrape time at most every
        ``every`` seconds."""
        read: tuple[float, float] | None = None

        def holds() -> float:
            nonlocal read
            if read is None or time.monotonic() - read[0] >= every:
                n = count()
                read = (time.monotonic(), float("nan") if n is None else float(n))
            return read[1]

        self.holds_open.set_function(holds)


def open_holds(holds_table: LakeTable) -> Callable[[], int | None]:
    """How many holds of ``holds_table`` (``silver.holds``) are still reviewable, re-counted
    when the table has a new version."""
    counted: tuple[int, int] | None = None  # version, count

    def count() -> int | None:
        nonlocal counted
        version = holds_table.version()
        if version is None:
            return None
        if counted is None or counted[0] != version:
            try:
                holds = holds_table.read(["status"])
            except TableMissing:
                return None
            reviewable = pa.array([s.value for s in HoldStatus.reviewable()])
            open_now = pc.is_in(holds["status"], value_set=reviewable)
            counted = (version, int(pc.sum(open_now).as_py() or 0))
        return counted[1]

    return count


class ProgressListener(StreamingQueryListener):
    """Hands every query's progress to ``PipelineMetrics`` (on Spark's listener thread)."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        self.metrics.started(str(event.id), event.name or str(event.id))

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        try:
            self.metrics.progress(json.loads(event.progress.json))
        except Exception:  # a metric must never stop a query
            log.exception("query progress not recorded")

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        """Nothing to record: an idle query's last batch stays its last."""

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        self.metrics.terminated(str(event.id))


class MetricsEndpoint:
    """The pipeline's metrics, served over HTTP while ``spark``'s queries report to them."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        config = settings.pipeline_metrics
        self.spark = spark
        self.metrics = PipelineMetrics()
        holds = Lakehouse(settings)[SILVER_HOLDS]
        self.metrics.watch_holds(open_holds(holds), config.holds_seconds)
        self.listener = ProgressListener(self.metrics)
        spark.streams.addListener(self.listener)
        self.server, _ = start_http_server(config.port, config.host, registry=self.metrics.registry)
        log.info("pipeline metrics served", extra={"port": config.port})

    def close(self) -> None:
        self.spark.streams.removeListener(self.listener)
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(spark: SparkSession, settings: Settings) -> MetricsEndpoint | None:
    """Listen to the queries of ``spark`` and serve their metrics on ``pipeline_metrics``'s
    address (None when disabled)."""
    return MetricsEndpoint(spark, settings) if settings.pipeline_metrics.enabled else None
