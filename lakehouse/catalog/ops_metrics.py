"""The operations metrics, defined once: their names, kinds, labels and help texts.

The pipeline serves them (``streaming_jobs.progress_metrics``), the API serves the keepers'
restart counts (``serving_api.metrics``), the MQTT bridge its own counts and Mosquitto's ``$SYS``
numbers (``producers.bridge_metrics``), the rules in ``conf/prometheus/`` alert on them and the
operations view asks Prometheus for them (``serving_api.routers.operations``); a test checks
that every metric those rules and queries name is one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str  # as prometheus_client is given it (a counter's samples add ``_total``)
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def series(self) -> str:
        """The name PromQL uses: a counter's ``_total`` sample; a histogram's family name."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


#: the seconds of a micro-batch (``triggerExecution``) as buckets
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

INPUT_ROWS_PER_SECOND = Metric(
    "smartmarket_pipeline_input_rows_per_second",
    "gauge",
    "Rows per second arriving at a streaming query's sources (last batch)",
    ("query",),
)
PROCESSED_ROWS_PER_SECOND = Metric(
    "smartmarket_pipeline_processed_rows_per_second",
    "gauge",
    "Rows per second a streaming query processed (last batch)",
    ("query",),
)
INPUT_ROWS = Metric(
    "smartmarket_pipeline_input_rows",
    "counter",
    "Rows a streaming query read from its sources",
    ("query",),
)
BATCH_SECONDS = Metric(
    "smartmarket_pipeline_batch_seconds",
    "histogram",
    "Seconds of a streaming query's micro-batches (Spark's triggerExecution)",
    ("query",),
)
TRIGGER_PHASE_SECONDS = Metric(
    "smartmarket_pipeline_trigger_phase_seconds",
    "gauge",
    "Seconds of each phase of a query's last micro-batch, as Spark times them (durationMs: "
    "latestOffset, addBatch, walCommit, ...)",
    ("query", "phase"),
)
BATCH_STEP_SECONDS = Metric(
    "smartmarket_pipeline_batch_step_seconds",
    "gauge",
    "Seconds of each step of a query's last batch function (inside addBatch: judge, write, ...)",
    ("query", "step"),
)
OFFSETS_BEHIND = Metric(
    "smartmarket_pipeline_kafka_offsets_behind",
    "gauge",
    "Kafka records of a topic not read yet by a query: latest offset minus the batch's end "
    "offset, summed over the partitions",
    ("query", "topic"),
)
STATE_ROWS = Metric(
    "smartmarket_pipeline_state_rows",
    "gauge",
    "Rows in a stateful operator's state store",
    ("query", "operator"),
)
QUARANTINED = Metric(
    "smartmarket_pipeline_quarantined_rows",
    "counter",
    "Events quarantined, by reason (an event with several reasons counts under each)",
    ("reason",),
)
RECEIVED = Metric(
    "smartmarket_pipeline_received_rows",
    "counter",
    "Records the silver query completed, by outcome: accepted, quarantined or duplicate",
    ("outcome",),
)
HOLDS_OPEN = Metric(
    "smartmarket_pipeline_holds_open",
    "gauge",
    "Held prices still waiting for confirmation or an operator's decision (silver.holds)",
)
LAST_BATCH = Metric(
    "smartmarket_pipeline_last_batch_timestamp_seconds",
    "gauge",
    "When a query last completed a micro-batch with input (POSIX seconds)",
    ("query",),
)
LAST_BATCH_AGE = Metric(
    "smartmarket_pipeline_last_batch_age_seconds",
    "gauge",
    "Seconds since a query last completed a micro-batch with input",
    ("query",),
)
QUERY_ACTIVE = Metric(
    "smartmarket_pipeline_query_active",
    "gauge",
    "1 while a streaming query runs, 0 once it stopped or failed",
    ("query",),
)
QUERY_RESTARTS = Metric(
    "smartmarket_pipeline_query_restarts",
    "counter",
    "Streaming queries started again in the pipeline's process, from their checkpoints, after "
    "a failure it recovers from (a batch's pinned blocks lost with an executor)",
    ("query",),
)
SERVICE_RESTARTS = Metric(
    "smartmarket_service_restarts",
    "counter",
    "Restarts of a service by its keeper since the stack started it (scripts.keeper)",
    ("service",),
)
PIPELINE_METRICS: tuple[Metric, ...] = (
    INPUT_ROWS_PER_SECOND,
    PROCESSED_ROWS_PER_SECOND,
    INPUT_ROWS,
    BATCH_SECONDS,
    TRIGGER_PHASE_SECONDS,
    BATCH_STEP_SECONDS,
    OFFSETS_BEHIND,
    STATE_ROWS,
    QUARANTINED,
    RECEIVED,
    HOLDS_OPEN,
    LAST_BATCH,
    LAST_BATCH_AGE,
    QUERY_ACTIVE,
    QUERY_RESTARTS,
)

BRIDGE_FORWARDED = Metric(
    "smartmarket_mqtt_bridge_forwarded_messages",
    "counter",
    "MQTT messages the bridge forwarded to Kafka's sensor topic (confirmed by Kafka)",
)
BRIDGE_DEAD_LETTERED = Metric(
    "smartmarket_mqtt_bridge_dead_lettered_messages",
    "counter",
    "MQTT messages the bridge could not make a sensor event of, sent to the dead-letter topic",
)
BRIDGE_CONNECTED = Metric(
    "smartmarket_mqtt_bridge_connected",
    "gauge",
    "1 while the bridge is connected to the MQTT broker, else 0",
)
BRIDGE_METRICS: tuple[Metric, ...] = (BRIDGE_FORWARDED, BRIDGE_DEAD_LETTERED, BRIDGE_CONNECTED)

# Mosquitto's numbers, as its ``$SYS/broker/...`` topics publish them (``producers.bridge_metrics``
# maps each topic to one of these); they count since the broker started
BROKER_CLIENTS_CONNECTED = Metric(
    "smartmarket_mqtt_broker_clients_connected",
    "gauge",
    "Clients connected to the MQTT broker",
)
BROKER_MESSAGES_RECEIVED = Metric(
    "smartmarket_mqtt_broker_messages_received",
    "counter",
    "PUBLISH messages the MQTT broker received",
)
BROKER_MESSAGES_SENT = Metric(
    "smartmarket_mqtt_broker_messages_sent",
    "counter",
    "PUBLISH messages the MQTT broker sent",
)
BROKER_MESSAGES_DROPPED = Metric(
    "smartmarket_mqtt_broker_messages_dropped",
    "counter",
    "PUBLISH messages the MQTT broker dropped, e.g. past a client's queue limit",
)
BROKER_MESSAGES_STORED = Metric(
    "smartmarket_mqtt_broker_messages_stored",
    "gauge",
    "Messages the MQTT broker holds: retained ones and those queued for persistent sessions",
)
BROKER_BYTES_RECEIVED = Metric(
    "smartmarket_mqtt_broker_received_bytes",
    "counter",
    "Bytes the MQTT broker received",
)
BROKER_BYTES_SENT = Metric(
    "smartmarket_mqtt_broker_sent_bytes",
    "counter",
    "Bytes the MQTT broker sent",
)
BROKER_UPTIME = Metric(
    "smartmarket_mqtt_broker_uptime_seconds",
    "gauge",
    "Seconds since the MQTT broker started",
)
BROKER_METRICS: tuple[Metric, ...] = (
    BROKER_CLIENTS_CONNECTED,
    BROKER_MESSAGES_RECEIVED,
    BROKER_MESSAGES_SENT,
    BROKER_MESSAGES_DROPPED,
    BROKER_MESSAGES_STORED,
    BROKER_BYTES_RECEIVED,
    BROKER_BYTES_SENT,
    BROKER_UPTIME,
)
ALL_METRICS: tuple[Metric, ...] = (
    *PIPELINE_METRICS,
    SERVICE_RESTARTS,
    *BRIDGE_METRICS,
    *BROKER_METRICS,
)

#: Prometheus jobs of the embedded stack's scrape configuration (``scripts.prometheus_config``)
JOB_API = "api"
JOB_PIPELINE = "pipeline"
JOB_KAFKA = "kafka"
JOB_MQTT = "mqtt"  # the MQTT bridge's endpoint: its own counts and Mosquitto's $SYS numbers
JOB_PROMETHEUS = "prometheus"
#: the secret Prometheus presents as a bearer token to scrape the API's /metrics when reads are
#: closed (``lakehouse.config.secrets``: generated on first use, shared by the installation's
#: processes)
SCRAPE_TOKEN_SECRET = "prometheus.scrape_token"


@dataclass(frozen=True)
class Panel:
    """One panel of the operations view (the dashboard's Operations tab and the Grafana
    dashboard): a PromQL query over the metrics above or the recording rules of
    ``conf/prometheus/rules.yml``, one series per value of ``legend``."""

    id: str
    title: str
    unit: str
    query: str
    legend: str = ""


OPS_PANELS: tuple[Panel, ...] = (
    Panel("ingest", "Ingest rate", "rows/s", "smartmarket:pipeline_input_rows:rate1m", "query"),
    Panel("lag", "Kafka lag", "records", "smartmarket:pipeline_offsets_behind:sum", "topic"),
    Panel(
        "batch",
        "Batch duration (5 min average)",
        "s",
        "smartmarket:pipeline_batch_seconds:avg5m",
        "query",
    ),
    Panel("freshness", "Age of the last batch", "s", LAST_BATCH_AGE.series, "query"),
    Panel(
        "quarantine",
        "Quarantined by reason",
        "rows/s",
        "smartmarket:pipeline_quarantined:rate5m",
        "reason",
    ),
    Panel("holds", "Holds open", "holds", HOLDS_OPEN.series),
    Panel(
        "restarts",
        "Restarts per service (last hour)",
        "restarts",
        "smartmarket:service_restarts:increase1h",
        "service",
    ),
)
