"""The generated configuration of the Compose stack, written by its ``config-init`` one-shot
(docker-compose.yml) from the settings and the device registry — the code the embedded stack
uses, with the containers' names for hosts:

- ``prometheus.yml``: every service with metrics (the API, the pipeline, the MQTT bridge, each
  Kafka node's JMX exporter, Alertmanager, Grafana, Prometheus itself), the shipped rules of
  conf/prometheus/ and Alertmanager as where the alerts go;
- ``alertmanager.yml``: the ops alerts routed to ``alerts.channels`` (webhooks and Telegram bots;
  Alertmanager has no WhatsApp receiver), each channel from its ``min_severity``;
- the Kafka nodes' JMX exporter agent (the jar Maven put in jvm/lib);
- the broker's ``mosquitto.conf``, password file and ACL (``lakehouse.domain.accounts.broker_auth``)
  in its folder, the volume the broker and the project's containers share: anonymous clients are
  refused, each device may publish only under its own topic, as in the embedded stack.

    python -m scripts.compose_config /etc/smartmarket
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import yaml

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.secrets import ensure_secret
from lakehouse.config.settings import NotifierChannel, Settings, load_settings
from lakehouse.domain.accounts.broker_auth import broker_config, broker_home
from scripts.prometheus_config import jmx_agent_jar, prometheus_config, scrape_config

#: where docker-compose.yml mounts conf/prometheus/ (rules and the JMX exporter's rules)
RULES_MOUNT = "/etc/prometheus-rules"
#: the Kafka nodes' JMX exporter, as their KAFKA_OPTS name it (docker-compose.yml)
JMX_AGENT = "jmx_prometheus_javaagent.jar"
ALERTMANAGER = "alertmanager:9093"
JOB_ALERTMANAGER = "alertmanager"
JOB_GRAFANA = "grafana"
GRAFANA = "grafana:3000"
#: the route of alerts no channel takes: they stay in Alertmanager's UI and API
UNROUTED = "unrouted"


def scrape_targets(settings: Settings) -> dict[str, list[str]]:
    """Per job, the ``container:port`` of each target of the Compose stack."""
    brokers = [server.split(":")[0] for server in settings.kafka.bootstrap_servers.split(",")]
    return {
        m.JOB_PROMETHEUS: [f"localhost:{settings.prometheus.port}"],
        m.JOB_API: [f"api:{settings.api.port}"],
        m.JOB_PIPELINE: [f"pipeline:{settings.pipeline_metrics.port}"],
        m.JOB_MQTT: [f"bridge:{settings.bridge_metrics.port}"],
        m.JOB_KAFKA: [f"{host}:{settings.prometheus.kafka_jmx_port}" for host in brokers],
        JOB_ALERTMANAGER: [ALERTMANAGER],
        JOB_GRAFANA: [GRAFANA],
    }


def compose_prometheus_config(settings: Settings, out: Path) -> dict[str, Any]:
    """The embedded stack's ``prometheus.yml`` with the containers as targets and Alertmanager."""
    config = prometheus_config(settings)
    config["global"]["external_labels"] = {"stack": "smartmarket-compose"}
    config["rule_files"] = [f"{RULES_MOUNT}/rules.yml"]
    token = out / "scrape-token"
    config["scrape_configs"] = [
        scrape_config(settings, job, targets, token)
        for job, targets in scrape_targets(settings).items()
    ]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]}
    return config


def _receiver(channel: NotifierChannel) -> dict[str, Any] | None:
    if not channel.broadcast:
        return None  # it carries users' subscriptions only
    if channel.kind == "webhook":
        hook: dict[str, Any] = {"url": channel.url, "send_resolved": True}
        if channel.token:
            hook["http_config"] = {"authorization": {"credentials": channel.token}}
        return {"name": channel.name, "webhook_configs": [hook]}
    if channel.kind == "telegram":
        bot = {
            "api_url": channel.url,
            "bot_token": channel.token,
            "chat_id": int(channel.chat_id),
            "send_resolved": True,
        }
        return {"name": channel.name, "telegram_configs": [bot]}
    return None  # WhatsApp, e-mail: no Alertmanager receiver


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """Every ops alert to every channel that takes its severity (``continue``: all of them)."""
    receivers = [r for r in map(_receiver, settings.alerts.channels) if r]
    routes = []
    for channel in settings.alerts.channels:
        if any(r["name"] == channel.name for r in receivers):
            route: dict[str, Any] = {"receiver": channel.name, "continue": True}
            if channel.min_severity == "critical":
                route["matchers"] = ['severity="critical"']
            routes.append(route)
    return {
        "route": {
            "receiver": UNROUTED,
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": [{"name": UNROUTED}, *receivers],
    }


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """World-readable by default: Prometheus and Alertmanager run as other users; the volume is
    mounted only by them and by this one-shot."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    tmp.replace(path)


def write_all(settings: Settings, out: Path) -> list[Path]:
    """Every generated file; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "prometheus.yml": compose_prometheus_config(settings, out),
        out / "alertmanager.yml": alertmanager_config(settings),
    }
    for path, config in files.items():
        _write(path, yaml.safe_dump(config, sort_keys=False))
    shutil.copyfile(jmx_agent_jar(settings), out / JMX_AGENT)
    written = [*files, out / JMX_AGENT]
    if not settings.api.open_reads:
        written.append(out / "scrape-token")
        _write(written[-1], ensure_secret(settings, m.SCRAPE_TOKEN_SECRET))
    conf = broker_home(settings) / "mosquitto.conf"
    _write(conf, broker_config(settings, ""), 0o600)  # the broker runs as the project's user
    return [*written, conf]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder of the generated monitoring files")
    args = parser.parse_args(argv)
    for path in write_all(load_settings(), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
