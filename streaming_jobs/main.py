"""The Spark application of the pipeline: starts every streaming query and supervises them.

Run by ``./run.sh up`` (as the ``pipeline`` service). It reports its state to
``<data_dir>/run/pipeline.status.json`` every few seconds; on SIGTERM it stops the queries
gracefully, so the next start resumes from their checkpoints.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial

from pyspark.sql.streaming import StreamingQuery

from lakehouse.config.cpu_priority import lower_session
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import Settings, load_settings
from lakehouse.io.spark import get_spark, set_log_levels
from lakehouse.io.status import stop_event, write_status
from streaming_jobs.medallion import (
    GOLD_QUERY,
    SILVER_QUERY,
    QueryFactory,
    gold_query,
    silver_query,
)
from streaming_jobs.news import NEWS_QUERY, news_query
from streaming_jobs.progress_metrics import MetricsEndpoint, PipelineMetrics, serve_metrics
from streaming_jobs.query_priority import SilverFirst
from streaming_jobs.supply_query import SUPPLY_QUERY, supply_query

log = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 2.0
STATUS_NAME = "pipeline"
#: the failures of a query the pipeline recovers from itself, by starting the query again from
#: its checkpoint (its batch is replayed whole, as after a restart of the process, without a new
#: driver): a batch's pinned blocks (``lakehouse.io.spark.pinned``, a local checkpoint) lost
#: with the executor that held them — on a cluster, a worker lost mid-batch
RECOVERABLE = ("CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND",)
#: how many times a query is started again in one process's life; its next failure ends the
#: process (its keeper restarts it)
QUERY_RESTARTS = 3
#: the driver's loggers that report the work of a batch a stop interrupts: quiet once the
#: pipeline stops (``./run.sh down`` otherwise left, now and then, "ERROR TorrentBroadcast: Store
#: broadcast … fail", "ERROR ShuffleBlockFetcherIterator: Error occurred while fetching local
#: blocks, null" (a task's fetch interrupted) and a Hadoop ``Shell`` warning with a Java stack
#: trace in its log, and always a "Failed to cancel job group" warning per job)
INTERRUPTED_BATCH_LOGGERS = {
    "org.apache.spark.broadcast.TorrentBroadcast": "OFF",
    "org.apache.spark.storage.ShuffleBlockFetcherIterator": "OFF",
    "org.apache.hadoop.util.Shell": "OFF",
    "org.apache.spark.scheduler.DAGScheduler": "ERROR",
}


def queries_of(settings: Settings, priority: SilverFirst) -> list[QueryFactory]:
    """The application's streaming queries (``spark.queries``, by the queries' names, in this
    order); those competing for the cores share ``priority``."""
    factories: dict[str, QueryFactory] = {
        SILVER_QUERY: partial(silver_query, priority=priority),
        GOLD_QUERY: partial(gold_query, priority=priority),
        SUPPLY_QUERY: partial(supply_query, priority=priority),
        NEWS_QUERY: news_query,
    }
    return [factory for name, factory in factories.items() if name in settings.spark.queries]


def recovered_from(error: str, restarts: int) -> str | None:
    """The failure of ``RECOVERABLE`` that ``error`` (a stopped query's exception, as text)
    names when the query, started again ``restarts`` times already, is started again in this
    process; None when the process fails."""
    if restarts >= QUERY_RESTARTS:
        return None
    return next((code for code in RECOVERABLE if code in error), None)


def restart_recoverable(
    queries: list[StreamingQuery],
    start: Callable[[int], StreamingQuery],
    restarts: Counter[str],
    metrics: PipelineMetrics | None = None,
) -> bool:
    """Start again (``start(i)``, in place) each stopped query of ``queries`` whose failure the
    pipeline recovers from (``recovered_from``), counting it in ``restarts`` and ``metrics``;
    whether none stopped otherwise."""
    ok = True
    for i, q in enumerate(queries):
        if q.isActive:
            continue
        error = str(q.exception())
        reason = recovered_from(error, restarts[q.name])
        if reason is None:
            log.error("query stopped", extra={"query": q.name, "error": error})
            ok = False
            continue
        restarts[q.name] += 1
        log.warning(
            "query started again from its checkpoint",
            extra={"query": q.name, "restarts": restarts[q.name], "reason": reason},
        )
        if metrics is not None:
            metrics.restarts.labels(q.name).inc()
        queries[i] = start(i)
    return ok


def _report(
    settings: Settings,
    state: str,
    queries: list[StreamingQuery],
    restarts: Counter[str],
    endpoint: MetricsEndpoint | None = None,
) -> None:
    write_status(
        settings,
        STATUS_NAME,
        state,
        queries=[
            {
                "name": q.name,
                "id": str(q.id),
                "active": q.isActive,
                "batch": (q.lastProgress or {}).get("batchId"),
                "restarts": restarts[q.name],
                **(endpoint.metrics.summary(q.name) if endpoint else {}),
            }
            for q in queries
        ],
    )


def run(settings: Settings, stop: threading.Event) -> int:
    """Start the queries of ``spark.queries`` and supervise them until ``stop`` is set or one
    fails."""
    spark = get_spark(settings)
    endpoint = serve_metrics(spark, settings)  # before the queries: it sees them start
    priority = SilverFirst(gold_interval=settings.spark.gold_interval_seconds)
    factories = queries_of(settings, priority)
    queries = [factory(spark, settings) for factory in factories]
    restarts: Counter[str] = Counter()
    # started: now the whole session (the JVM with it) yields to the API; the start itself,
    # a JVM's most CPU-hungry minute, ran at the session's default weight (on a busy box it
    # otherwise waited past the service's start timeout)
    cpu = lower_session(settings.spark.niceness)
    log.info("pipeline running", extra={"queries": [q.name for q in queries], "cpu": cpu})
    metrics = endpoint.metrics if endpoint else None

    def start(i: int) -> StreamingQuery:  # the i-th query again, from its checkpoint
        return factories[i](spark, settings)

    code = 0
    try:
        while not stop.wait(STATUS_INTERVAL_SECONDS):
            if not restart_recoverable(queries, start, restarts, metrics):
                code = 1
                break
            _report(settings, "running", queries, restarts, endpoint)
    finally:
        # a batch that stop interrupts is replayed from the checkpoint at the next start; py4j
        # would log its InterruptedException as an error of the foreachBatch callback, and the
        # JVM the writes and broadcasts it cut short
        logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)
        set_log_levels(spark, INTERRUPTED_BATCH_LOGGERS)
        priority.release()  # a gold batch resting ends now, not after its interval
        for q in queries:
            q.stop()
        _report(settings, "failed" if code else "stopped", queries, restarts)
        if endpoint is not None:
            endpoint.close()
        spark.stop()
    return code


def main() -> int:
    configure_logging()
    settings = load_settings()
    os.nice(settings.spark.niceness)  # before the JVM starts: it and its workers inherit it
    stop = stop_event()
    return run(settings, stop)


if __name__ == "__main__":
    sys.exit(main())
