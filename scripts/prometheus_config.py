"""The Prometheus configuration of the embedded stack, generated from the settings (every port
is the one the scraped service listens on: defined once, in conf/settings.yaml).

Jobs: the API's ``/metrics``, the pipeline's (``pipeline_metrics``), the MQTT bridge's with the
broker's numbers (``bridge_metrics``), each embedded Kafka node's JMX exporter and Prometheus
itself; the rules are ``conf/prometheus/rules.yml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.secrets import ensure_secret
from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings

RULES_FILE = PROJECT_ROOT / "conf" / "prometheus" / "rules.yml"
KAFKA_JMX_RULES = PROJECT_ROOT / "conf" / "prometheus" / "kafka-jmx.yaml"
LOOPBACK = "127.0.0.1"


def kafka_jmx_port(settings: Settings, node: int) -> int:
    """The port of node ``node``'s JMX exporter (``prometheus.kafka_jmx_port`` + node - 1)."""
    return settings.prometheus.kafka_jmx_port + node - 1


def jmx_agent_jar(settings: Settings) -> Path:
    """The Prometheus JMX exporter's Java agent Maven resolved (jvm/jmx-exporter)."""
    jars = sorted(
        (settings.paths.jvm_lib_dir / "jmx-exporter").glob("jmx_prometheus_javaagent-*.jar")
    )
    if not jars:
        raise ConfigError("no JMX exporter jar in jvm/lib/jmx-exporter: run `./run.sh setup`")
    return jars[-1]


def scrape_targets(settings: Settings) -> dict[str, list[str]]:
    """Per job, the ``host:port`` of each target the embedded stack runs."""
    targets = {
        m.JOB_PROMETHEUS: [f"{settings.prometheus.host}:{settings.prometheus.port}"],
        m.JOB_API: [f"{LOOPBACK}:{settings.api.port}"],
    }
    if settings.pipeline_metrics.enabled:
        p = settings.pipeline_metrics
        targets[m.JOB_PIPELINE] = [f"{p.host}:{p.port}"]
    if settings.bridge_metrics.enabled:
        b = settings.bridge_metrics
        targets[m.JOB_MQTT] = [f"{b.host}:{b.port}"]
    if settings.kafka.embedded:
        nodes = range(1, settings.kafka.nodes + 1)
        targets[m.JOB_KAFKA] = [f"{LOOPBACK}:{kafka_jmx_port(settings, n)}" for n in nodes]
    return targets


def scrape_token_file(settings: Settings) -> Path:
    """The file Prometheus reads the API's scrape token from (mode 600; closed reads only)."""
    return settings.paths.data_dir / "prometheus" / "scrape-token"


def write_scrape_token(settings: Settings) -> None:
    """With ``api.open_reads`` off, the API's scrape token where Prometheus reads it."""
    if settings.api.open_reads:
        return
    path = scrape_token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(ensure_secret(settings, m.SCRAPE_TOKEN_SECRET))


def scrape_config(
    settings: Settings, job: str, targets: list[str], token: Path | None = None
) -> dict[str, Any]:
    """One job; the API's carries its scrape token (``token``, by default where the embedded
    Prometheus reads it) when reads are closed."""
    config: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": targets}]}
    if job == m.JOB_API and not settings.api.open_reads:
        credentials = str(token or scrape_token_file(settings))
        config["authorization"] = {"type": "Bearer", "credentials_file": credentials}
    return config


def prometheus_config(settings: Settings) -> dict[str, Any]:
    """The ``prometheus.yml`` of the embedded stack."""
    interval = f"{settings.prometheus.scrape_seconds:g}s"
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"stack": "smartmarket"},
        },
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            scrape_config(settings, job, targets)
            for job, targets in scrape_targets(settings).items()
        ],
    }


def config_text(settings: Settings) -> str:
    return yaml.safe_dump(prometheus_config(settings), sort_keys=False)
