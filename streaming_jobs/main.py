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
from streaming_jobs.progress_metrics import MetricsEndpoint, serve_metrics
from streaming_jobs.query_priority import SilverFirst
from streaming_jobs.supply_query import SUPPLY_QUERY, supply_query

log = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 2.0
STATUS_NAME = "pipeline"
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


def _report(
    settings: Settings,
    state: str,
    queries: list[StreamingQuery],
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
    queries = [factory(spark, settings) for factory in queries_of(settings, priority)]
    # started: now the whole session (the JVM with it) yields to the API; the start itself,
    # a JVM's most CPU-hungry minute, ran at the session's default weight (on a busy box it
    # otherwise waited past the service's start timeout)
    cpu = lower_session(settings.spark.niceness)
    log.info("pipeline running", extra={"queries": [q.name for q in queries], "cpu": cpu})
    code = 0
    try:
        while not stop.wait(STATUS_INTERVAL_SECONDS):
            failed = [q for q in queries if not q.isActive]
            if failed:
                for q in failed:
                    log.error("query stopped", extra={"query": q.name, "error": str(q.exception())})
                code = 1
                break
            _report(settings, "running", queries, endpoint)
    finally:
        # a batch that stop interrupts is replayed from the checkpoint at the next start; py4j
        # would log its InterruptedException as an error of the foreachBatch callback, and the
        # JVM the writes and broadcasts it cut short
        logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)
        set_log_levels(spark, INTERRUPTED_BATCH_LOGGERS)
        priority.release()  # a gold batch resting ends now, not after its interval
        for q in queries:
            q.stop()
        _report(settings, "failed" if code else "stopped", queries)
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
