"""Apache Kafka in KRaft mode from the Maven jars, one node or a cluster of them."""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings
from lakehouse.io.kafka_io import admin_client, ensure_topics, kafka_reachable
from scripts.prometheus_config import (
    KAFKA_JMX_RULES,
    LOOPBACK,
    jmx_agent_jar,
    kafka_jmx_port,
)
from scripts.services.base import Health, Service
from scripts.services.java import java_binary

log = logging.getLogger(__name__)


class KafkaBroker(Service):
    """Apache Kafka in KRaft mode from the Maven jars: one node (broker + controller), or node
    ``node`` of ``kafka.nodes`` such nodes, all of them voters of the controller quorum."""

    name = "kafka"
    port_keys = ("kafka.port", "kafka.controller_port")
    #: every node is a voter of the controller quorum: they stop together (``down``), each
    #: without asking the quorum's leave first (``controlled.shutdown.enable=false``, below)
    stops_together = True

    def __init__(self, settings: Settings, node: int = 1) -> None:
        super().__init__(settings)
        self.node = node
        if node > 1:
            self.name = f"kafka-{node}"

    @classmethod
    def instances(cls, settings: Settings) -> list[Service]:
        k = settings.kafka
        return [cls(settings, n) for n in range(1, k.nodes + 1)] if k.embedded else []

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / self.name

    def enabled(self) -> bool:
        return self.settings.kafka.embedded

    def ports(self) -> list[int]:
        return list(self.settings.kafka.node_ports(self.node))

    def metrics_ports(self) -> dict[str, int]:
        if not self.settings.prometheus.enabled:
            return {}
        return {"prometheus.kafka_jmx_port": kafka_jmx_port(self.settings, self.node)}

    def endpoint(self) -> str:
        if self.settings.kafka.nodes == 1:
            return f"bootstrap {self.settings.kafka.bootstrap}"
        return f"node {self.node} of {self.settings.kafka.nodes} at {self.host}:{self.ports()[0]}"

    def waits_at_start(self) -> bool:
        """Nodes start together: the quorum needs a majority, so the last one waits for all."""
        return self.node == self.settings.kafka.nodes

    def _classpath(self) -> str:
        lib = self.settings.paths.jvm_lib_dir / "kafka-broker"
        if not any(lib.glob("kafka_2.13-*.jar")):
            raise ConfigError(f"no Kafka jars in {lib}: run `./run.sh setup` to resolve them")
        return f"{lib}/*"

    def _properties(self) -> str:
        k = self.settings.kafka
        port, controller_port = k.node_ports(self.node)
        voters = ",".join(f"{n}@{self.host}:{k.node_ports(n)[1]}" for n in range(1, k.nodes + 1))
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://{self.host}:{port},CONTROLLER://{self.host}:{controller_port}",
                f"advertised.listeners=PLAINTEXT://{k.host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={k.partitions}",
                f"default.replication.factor={k.replicas}",
                f"min.insync.replicas={k.min_isr}",
                "auto.create.topics.enable=false",
                f"offsets.topic.replication.factor={k.replicas}",
                f"transaction.state.log.replication.factor={k.replicas}",
                f"transaction.state.log.min.isr={k.min_isr}",
                f"share.coordinator.state.topic.replication.factor={k.replicas}",
                f"share.coordinator.state.topic.min.isr={k.min_isr}",
                "group.initial.rebalance.delay.ms=0",
                # the active controller's no-op record to the metadata log when nothing else is
                # written: every 5 s, not every 0.5 s (an idle node 1.38 → 0.95 CPU s a minute;
                # docs/benchmarks.md, forty-fifth entry)
                "metadata.max.idle.interval.ms=5000",
                "log.retention.hours=168",
                # the nodes only stop together: a controlled shutdown (leaders moved away, with
                # the quorum's approval) has nowhere to move them, and a node still asking once
                # the other voters are gone waits for a quorum that never comes until it is
                # killed. Its logs are flushed and marked clean either way
                "controlled.shutdown.enable=false",
                "",
            ]
        )

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    def _java_command(self, main: str, *args: str) -> list[str]:
        heap = self.settings.kafka.heap
        log4j = PROJECT_ROOT / "conf" / "kafka-log4j2.properties"
        return [
            java_binary(),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            *self.settings.kafka.java_options.split(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.settings.paths.log_dir}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._properties())
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = self._cluster_id()
        result = subprocess.run(
            self._java_command(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # one argument: an id may start with "-"
                "--config",
                str(self.properties_file),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"formatting Kafka storage failed: {result.stderr or result.stdout}")

    def _cluster_id(self) -> str:
        """The id of node 1's formatted storage (all nodes share it), or a new one."""
        first = KafkaBroker(self.settings).home / "data" / "meta.properties"
        if self.node > 1 and first.exists():
            for line in first.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.removeprefix("cluster.id=")
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()

    def command(self) -> list[str]:
        java, *rest = self._java_command("kafka.Kafka", str(self.properties_file))
        return [java, *self._jmx_agent(), *rest]

    def _jmx_agent(self) -> list[str]:
        """The Prometheus JMX exporter as the broker's Java agent (when Prometheus runs)."""
        if not self.settings.prometheus.enabled:
            return []
        port = kafka_jmx_port(self.settings, self.node)
        return [f"-javaagent:{jmx_agent_jar(self.settings)}={LOOPBACK}:{port}:{KAFKA_JMX_RULES}"]

    def _registered(self) -> set[int]:
        """Node ids registered with the cluster, as this node answers."""
        own = f"{self.host}:{self.ports()[0]}"
        return set(admin_client(self.settings, own).list_topics(timeout=2.0).brokers)

    def health(self) -> Health:
        if self.settings.kafka.nodes == 1:
            return Health(*kafka_reachable(self.settings))
        try:
            registered = self._registered()
        except KafkaException as exc:
            return Health(False, f"{self.host}:{self.ports()[0]}: {exc.args[0].str()}")
        if self.node not in registered:
            return Health(False, f"node {self.node} not registered yet")
        return Health(True, f"{len(registered)} of {self.settings.kafka.nodes} nodes registered")

    def after_start(self) -> None:
        """Create the topics once every node is registered (their replicas need them all)."""
        deadline = time.monotonic() + self.settings.services.start_timeout_seconds
        while len(self._registered()) < self.settings.kafka.nodes:
            if time.monotonic() > deadline:
                raise ConfigError(f"not all {self.settings.kafka.nodes} Kafka nodes registered")
            time.sleep(0.5)
        ensure_topics(self.settings)
