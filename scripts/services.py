"""Supervision of the embedded stack: start, stop and check each service.

Every service runs in its own process group under its keeper (``scripts.keeper``), with a pid
file under ``<data_dir>/run`` and its output in ``<data_dir>/logs/<name>.log``, rotated by size.
The keeper restarts a service that exits without being asked to, with a back-off, and counts the
restarts. ``up`` is idempotent (a healthy service is left alone), ``down`` stops in reverse order
(SIGTERM to the group, SIGKILL after the stop timeout; the nodes of a Kafka cluster at once),
so no process is left behind.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from confluent_kafka import KafkaException

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings
from lakehouse.io.kafka_io import admin_client, ensure_topics, kafka_reachable
from lakehouse.io.spark import CLUSTER_LOG_CONFIG, cluster_marker
from lakehouse.io.status import STALE_SECONDS, read_status, restarts_path, status_path
from scripts.keeper import Restarts
from scripts.prometheus_config import (
    KAFKA_JMX_RULES,
    LOOPBACK,
    config_text,
    jmx_agent_jar,
    kafka_jmx_port,
    write_scrape_token,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((socket.gethostbyname(host), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _http_ok(url: str) -> Health:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return Health(False, f"{url}: {type(exc).__name__}")
    return Health(response.status_code == 200, f"{url} -> {response.status_code}")


def _tcp_open(host: str, port: int) -> Health:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return Health(True, f"{host}:{port} accepts connections")
    except OSError as exc:
        return Health(False, f"{host}:{port}: {exc.strerror or exc}")


class Service:
    """One supervised process. Subclasses say how to prepare, run and check it."""

    name: str = ""
    #: settings keys of the ports, for messages that tell how to change them
    port_keys: tuple[str, ...] = ()
    #: SIGTERM the whole process group on stop (False: only the leader, which stops its children)
    signal_group: bool = True
    #: ``down`` stops the instances of this kind at once (``stop_services``)
    stops_together: bool = False
    #: the kinds of service that must be up before this one starts (``start_services``)
    needs: tuple[type[Service], ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def instances(cls, settings: Settings) -> list[Service]:
        """The services of this kind the stack runs (one, or none when disabled)."""
        service = cls(settings)
        return [service] if service.enabled() else []

    # --- what subclasses define -------------------------------------------------------
    def enabled(self) -> bool:
        return True

    def ports(self) -> list[int]:
        raise NotImplementedError

    def metrics_ports(self) -> dict[str, int]:
        """The ports of the service's Prometheus endpoint, by setting (none by default)."""
        return {}

    def endpoint(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Check prerequisites and write configuration before the first start."""

    def health(self) -> Health:
        raise NotImplementedError

    def after_start(self) -> None:
        """Work to do once the service is healthy (e.g. create topics)."""

    def environment(self) -> dict[str, str]:
        """Variables the process gets on top of ours."""
        return {}

    def waits_at_start(self) -> bool:
        """Whether ``start`` waits until healthy (False: a later service's start waits for it)."""
        return True

    # --- files ------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.settings.paths.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.paths.log_dir / f"{self.name}.log"

    @property
    def restarts_file(self) -> Path:
        return restarts_path(self.settings, self.name)

    def restarts(self) -> Restarts:
        """How often the keeper restarted the running service, and its last exit."""
        return Restarts.read(self.restarts_file)

    def keeper_command(self) -> list[str]:
        """The service's command under its keeper (log rotation, restarts with back-off)."""
        svc = self.settings.services
        return [
            sys.executable,
            "-m",
            "scripts.keeper",
            f"--name={self.name}",
            f"--log={self.log_file}",
            f"--state={self.restarts_file}",
            f"--log-max-bytes={svc.log_max_bytes}",
            f"--log-backups={svc.log_backups}",
            f"--backoff={svc.restart_backoff_seconds}",
            f"--backoff-max={svc.restart_backoff_max_seconds}",
            f"--niceness={svc.niceness}",
            *([] if self.signal_group else ["--forward-term"]),
            "--",
            *self.command(),
        ]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    # --- process control --------------------------------------------------------------
    def process(self) -> psutil.Process | None:
        """The running process of this service, if its pid file names a live one."""
        try:
            pid, created = json.loads(self.pid_file.read_text()).values()
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 1 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def check_ports(self) -> None:
        """Fail before starting when a port the service would listen on is taken."""
        taken = [*zip(self.port_keys, self.ports(), strict=True), *self.metrics_ports().items()]
        for key, port in taken:
            if not port_is_free(self.host, port):
                env = "SMARTMARKET_" + key.upper().replace(".", "__")
                raise ConfigError(
                    f"{self.name}: port {port} ({key}) is already taken by another process. "
                    f"Stop that process or choose another port with {env}=<port>."
                )

    def start(self) -> str:
        """Start the service unless it already runs; wait until healthy. Returns what it did."""
        if self.process() is not None:
            if self.health().ok or not self.waits_at_start():
                return "already running"
            self.wait_healthy(self.process())
            return "already running (became healthy)"
        self.check_ports()
        self.prepare()
        self.settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
        self.restarts_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.environment(),
        }
        with self.log_file.open("ab") as out:  # the keeper's own errors; it writes the rest
            popen = subprocess.Popen(
                self.keeper_command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
                env=env,
                start_new_session=True,
            )
        proc = psutil.Process(popen.pid)
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "created": proc.create_time()}))
        log.info("service started", extra={"service": self.name, "pid": proc.pid})
        if self.waits_at_start():
            try:
                self.wait_healthy(proc, fresh=True)
            except ConfigError:
                self.stop()  # no crash loop, nothing left behind
                raise
            self.after_start()
        return f"started (pid {proc.pid})"

    def wait_healthy(self, proc: psutil.Process | None, fresh: bool = False) -> None:
        """Wait until the service is healthy; ConfigError when its process ends first, when a
        ``fresh`` start exited (the keeper would restart it) or after the start timeout."""
        deadline = time.monotonic() + self.settings.services.start_timeout_seconds
        health = Health(False, "not checked yet")
        while time.monotonic() < deadline:
            if proc is None or not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                self.pid_file.unlink(missing_ok=True)
                raise ConfigError(
                    f"{self.name} exited during start-up. Last lines of {self.log_file}:\n"
                    + self.tail(20)
                )
            if fresh and self.restarts().restarts:
                raise ConfigError(
                    f"{self.name} exited during start-up ({self.restarts().last_exit}). Last "
                    f"lines of {self.log_file}:\n" + self.tail(20)
                )
            health = self.health()
            if health.ok:
                return
            time.sleep(0.5)
        raise ConfigError(
            f"{self.name} did not become healthy within "
            f"{self.settings.services.start_timeout_seconds:.0f}s ({health.detail}); "
            f"see {self.log_file}"
        )

    def stop(self) -> str:
        """SIGTERM, SIGKILL after ``services.stop_timeout_seconds``: what became of it."""
        return stop_together([self])[0]

    def before_stop(self) -> None:
        """Called by ``stop`` first, whether the service runs or not."""

    def tail(self, lines: int) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


def java_binary() -> str:
    """The ``java`` of ``JAVA_HOME``, else the one on the PATH (as Spark's launcher finds it)."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise ConfigError(
            "Java not found: the Kafka broker and Spark need a Java 17+ runtime. Install it "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return found


def jdk_home() -> Path:
    """The folder of the JDK (or JRE) that ``java_binary`` belongs to."""
    return Path(java_binary()).resolve().parent.parent


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


class Mosquitto(Service):
    """The MQTT broker the market sensor devices publish to."""

    name = "mosquitto"
    port_keys = ("mqtt.port",)

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "mosquitto"

    def ports(self) -> list[int]:
        return [self.settings.mqtt.port]

    def endpoint(self) -> str:
        return f"mqtt://{self.settings.mqtt.host}:{self.settings.mqtt.port}"

    def _binary(self) -> str:
        found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if not found:
            raise ConfigError(
                "mosquitto not found: run `./run.sh setup` (it installs it with apt-get) "
                "or `apt-get install mosquitto`."
            )
        return found

    def prepare(self) -> None:
        # the device registry (SQLAlchemy, Alembic) only here, not at every command's start
        from lakehouse.domain.broker_auth import broker_config

        self._binary()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "mosquitto.conf").write_text(broker_config(self.settings, self.host))

    def command(self) -> list[str]:
        return [self._binary(), "-c", str(self.home / "mosquitto.conf")]

    def health(self) -> Health:
        return _tcp_open(self.host, self.settings.mqtt.port)


#: MLflow's switch of its server's job runner
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


class MlflowServer(Service):
    """MLflow tracking server: SQLite backend store, local artifact folder."""

    name = "mlflow"
    port_keys = ("mlflow.port",)

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "mlflow"

    def ports(self) -> list[int]:
        return [self.settings.mlflow.port]

    def endpoint(self) -> str:
        return self.settings.mlflow.tracking_uri

    def prepare(self) -> None:
        (self.home / "artifacts").mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        """Without MLflow 3's job runner (GenAI evaluation, trace roll-ups; nothing of ours): by
        default the server starts seven ``huey`` consumer processes that poll their queues —
        about half a core of the box's two, idle."""
        return {JOB_EXECUTION: "false"}

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.home / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.home / "artifacts"),
            "--host",
            self.host,
            "--port",
            str(self.settings.mlflow.port),
            "--workers",
            "1",
        ]

    def health(self) -> Health:
        return _http_ok(f"http://{self.host}:{self.settings.mlflow.port}/health")


class SparkDaemon(Service):
    """A JVM of the embedded standalone cluster, run by pyspark's own ``spark-class``."""

    main_class: str = ""

    @property
    def host(self) -> str:
        return self.settings.spark.cluster.host

    @property
    def master_ui(self) -> str:
        return f"http://{self.host}:{self.settings.spark.cluster.ui_port}"

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        import pyspark

        spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        return [str(spark_class), self.main_class, *self.arguments()]

    def environment(self) -> dict[str, str]:
        import pyspark

        return {
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_DAEMON_MEMORY": self.settings.spark.cluster.daemon_memory,
            # the JIT's first tier only: the master and the workers pass messages and launch
            # executors, nothing a C2 compilation would repay
            "SPARK_DAEMON_JAVA_OPTS": f"-Dlog4j2.configurationFile={CLUSTER_LOG_CONFIG} "
            "-XX:TieredStopAtLevel=1",
            # every socket of the daemons and their executors (web UIs too) on this address
            "SPARK_LOCAL_IP": self.host,
        }

    def prepare(self) -> None:
        java_binary()

    def master_state(self) -> dict | None:
        """The master's view of the cluster (its JSON status page), None if it does not answer."""
        try:
            response = httpx.get(f"{self.master_ui}/json/", timeout=2.0)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None


def cluster_workers(settings: Settings) -> int:
    """Workers of the embedded cluster: as configured (``up --cluster N``), or as many as run."""
    running = [
        p.stem.removeprefix("spark-worker-")
        for p in settings.paths.run_dir.glob("spark-worker-*.pid")
    ]
    return max([settings.spark.cluster.workers, *(int(n) for n in running if n.isdigit())])


class SparkMaster(SparkDaemon):
    """Master of the embedded standalone cluster; while it runs, Spark applications that are
    configured with a local master use it (lakehouse.io.spark.master_url)."""

    name = "spark-master"
    port_keys = ("spark.cluster.master_port", "spark.cluster.ui_port")
    main_class = "org.apache.spark.deploy.master.Master"

    def enabled(self) -> bool:
        return cluster_workers(self.settings) > 0 or self.process() is not None

    def ports(self) -> list[int]:
        c = self.settings.spark.cluster
        return [c.master_port, c.ui_port]

    def endpoint(self) -> str:
        return f"{self.settings.spark.cluster.master_url} (UI {self.master_ui}/)"

    def arguments(self) -> list[str]:
        c = self.settings.spark.cluster
        return ["--host", c.host, "--port", str(c.master_port), "--webui-port", str(c.ui_port)]

    def health(self) -> Health:
        state = self.master_state()
        if state is None or state.get("status") != "ALIVE":
            return Health(False, f"{self.master_ui}/json/ does not report ALIVE")
        alive = sum(w["state"] == "ALIVE" for w in state.get("workers", []))
        return Health(True, f"{alive} worker(s) alive")

    def after_start(self) -> None:
        cluster_marker(self.settings).write_text(self.settings.spark.cluster.master_url)

    def before_stop(self) -> None:
        cluster_marker(self.settings).unlink(missing_ok=True)


class SparkWorker(SparkDaemon):
    """Worker ``number`` (from 1) of the embedded cluster; its executors are its children."""

    port_keys = ("spark.cluster.worker_ui_port",)
    main_class = "org.apache.spark.deploy.worker.Worker"
    needs = (SparkMaster,)

    def __init__(self, settings: Settings, number: int = 1) -> None:
        super().__init__(settings)
        self.number = number
        self.name = f"spark-worker-{number}"

    @classmethod
    def instances(cls, settings: Settings) -> list[Service]:
        return [cls(settings, n) for n in range(1, cluster_workers(settings) + 1)]

    @property
    def ui_port(self) -> int:
        return self.settings.spark.cluster.worker_ui_port + self.number - 1

    def ports(self) -> list[int]:
        return [self.ui_port]

    def endpoint(self) -> str:
        c = self.settings.spark.cluster
        return (
            f"{c.worker_cores} core(s), {c.worker_memory} (UI http://{self.host}:{self.ui_port}/)"
        )

    def arguments(self) -> list[str]:
        c = self.settings.spark.cluster
        work = self.settings.paths.data_dir / "spark" / self.name
        work.mkdir(parents=True, exist_ok=True)
        return [
            "--host",
            c.host,
            "--cores",
            str(c.worker_cores),
            "--memory",
            c.worker_memory,
            "--webui-port",
            str(self.ui_port),
            "--work-dir",
            str(work),
            c.master_url,
        ]

    def environment(self) -> dict[str, str]:
        """The daemon's, and the worker removes the folders of applications that ended (their
        executors' logs among them) once they are a week old."""
        return {**super().environment(), "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true"}

    def health(self) -> Health:
        workers = (self.master_state() or {}).get("workers", [])
        mine = [w for w in workers if w.get("webuiaddress", "").endswith(f":{self.ui_port}")]
        if any(w["state"] == "ALIVE" for w in mine):
            return Health(True, "registered with the master")
        return Health(False, "not registered with the master")


class StatusFileService(Service):
    """A Python process of ours that reports its state in a status file (lakehouse.io.status)."""

    module: str = ""

    def ports(self) -> list[int]:
        return []

    def prepare(self) -> None:
        status_path(self.settings, self.name).unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def check_status(self, status: dict) -> Health:
        """Service-specific verdict on a fresh, running status."""
        return Health(True, status.get("detail", "running"))

    def health(self) -> Health:
        status = read_status(self.settings, self.name)
        if status is None:
            return Health(False, "no status reported yet")
        age = time.time() - status["updated_at"]
        if status["state"] != "running" or age > STALE_SECONDS:
            return Health(False, f"state={status['state']}, last report {age:.0f}s ago")
        return self.check_status(status)


class Pipeline(StatusFileService):
    """The Spark application running the Structured Streaming queries (streaming_jobs.main)."""

    name = "pipeline"
    module = "streaming_jobs.main"
    needs = (KafkaBroker, SparkMaster, SparkWorker)
    signal_group = False  # the driver stops its queries, then its JVM

    def endpoint(self) -> str:
        return f"lakehouse {self.settings.paths.lakehouse_root}"

    def metrics_ports(self) -> dict[str, int]:
        metrics = self.settings.pipeline_metrics
        return {"pipeline_metrics.port": metrics.port} if metrics.enabled else {}

    def prepare(self) -> None:
        java_binary()
        super().prepare()

    def check_status(self, status: dict) -> Health:
        inactive = [q["name"] for q in status["queries"] if not q["active"]]
        if inactive:
            return Health(False, f"inactive queries: {inactive}")
        return Health(True, f"{len(status['queries'])} queries active")


class Bridge(StatusFileService):
    """MQTT → Kafka bridge (producers.mqtt_bridge)."""

    name = "bridge"
    module = "producers.mqtt_bridge"
    needs = (KafkaBroker, Mosquitto)

    def endpoint(self) -> str:
        m, k = self.settings.mqtt, self.settings.kafka
        return f"{m.topic_root}/+/devices/+/+ -> {k.topics.sensors}"

    def metrics_ports(self) -> dict[str, int]:
        metrics = self.settings.bridge_metrics
        return {"bridge_metrics.port": metrics.port} if metrics.enabled else {}

    def check_status(self, status: dict) -> Health:
        return Health(status.get("connected", False), f"{status.get('forwarded', 0)} forwarded")


class Devices(StatusFileService):
    """Simulated market sensor devices publishing to MQTT (producers.devices)."""

    name = "devices"
    module = "producers.devices"
    needs = (Mosquitto,)

    def enabled(self) -> bool:
        return self.settings.simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.simulator
        return f"{sim.devices_per_market}/market every {sim.interval_seconds:g}s"


class PriceFeed(StatusFileService):
    """Real price history as the markets' past and today (producers.price_simulator); on unless
    ``price_simulator.enabled`` is false."""

    name = "prices"
    module = "producers.price_simulator"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return self.settings.price_simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.price_simulator
        where = f"{sim.markets} markets" if sim.markets else "every market"
        return (
            f"{where} in turns, {sim.markets_per_round} every {sim.interval_seconds:g}s"
            f" -> {self.settings.kafka.topics.prices}"
        )


class SupplyFeed(StatusFileService):
    """The simulated supply chain's stock and shipment reports as they happen
    (producers.supply_sim); on unless ``supply_simulator.enabled`` is false."""

    name = "supply"
    module = "producers.supply_sim"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return self.settings.supply_simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.supply_simulator
        topic = self.settings.kafka.topics.supply
        return f"simulated entities every {sim.interval_seconds:g}s -> {topic}"


class FirstForecasts(StatusFileService):
    """The first forecasts of a fresh stack, once the seeded history is in gold
    (ml.first_forecasts); runs with the price simulator's history."""

    name = "forecasts"
    module = "ml.first_forecasts"
    needs = (Pipeline, MlflowServer)

    def enabled(self) -> bool:
        sim = self.settings.price_simulator
        return sim.enabled and sim.seed_days > 0

    def endpoint(self) -> str:
        return "first gold.forecasts, then idle"


class NotifierService(StatusFileService):
    """Alert notifications to webhooks, Telegram, WhatsApp and e-mail, and to the users'
    subscriptions (streaming_jobs.notifier); runs when ``alerts.channels`` lists at least one
    channel (a subscription's e-mail, Telegram or WhatsApp goes through the channel of its
    kind)."""

    name = "notifier"
    module = "streaming_jobs.notifier"
    needs = (Pipeline,)

    def enabled(self) -> bool:
        return bool(self.settings.alerts.channels)

    def endpoint(self) -> str:
        return "alerts -> " + ", ".join(c.name for c in self.settings.alerts.channels)

    def check_status(self, status: dict) -> Health:
        return Health(
            True,
            f"{status.get('delivered', 0)} delivered, {status.get('undelivered', 0)} undelivered,"
            f" {status.get('retrying', 0)} retrying",
        )


class Api(Service):
    """The serving API (uvicorn + FastAPI)."""

    name = "api"
    port_keys = ("api.port",)
    needs = (KafkaBroker,)
    factory = "serving_api.app:create_app"  # what uvicorn calls (--factory) for the app

    def ports(self) -> list[int]:
        return [self.settings.api.port]

    def endpoint(self) -> str:
        return self.settings.api.url

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            self.host,
            "--port",
            str(self.settings.api.port),
            "--workers",
            str(self.settings.api.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
        ]

    def health(self) -> Health:
        return _http_ok(f"http://{self.host}:{self.settings.api.port}/health")


class NewsFeeds(StatusFileService):
    """The feed collector (producers.news_feeds): polls the RSS/Atom feeds of ``news.feeds``
    and replays the headlines of ``news.replay_file``, each item once; runs when there is
    either."""

    name = "news_feeds"
    module = "producers.news_feeds"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return bool(self.settings.news.feeds) or self.settings.news.replay_file is not None

    def endpoint(self) -> str:
        news = self.settings.news
        replay = f" + {news.replay_file.name}" if news.replay_file else ""
        return f"{len(news.feeds)} feeds{replay} -> {self.settings.kafka.topics.news}"


# --- the Prometheus server (docs/operations.md, "Prometheus") ----------------------------------


class PrometheusServer(Service):
    """Prometheus (Debian's ``prometheus`` package): scrapes the API, the pipeline, the MQTT
    bridge and the Kafka broker's JMX exporter, evaluates ``conf/prometheus/rules.yml``; its data in
    ``<data_dir>/prometheus``."""

    name = "prometheus"
    port_keys = ("prometheus.port",)

    def enabled(self) -> bool:
        return self.settings.prometheus.enabled

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "prometheus"

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.settings.prometheus.port}"

    def ports(self) -> list[int]:
        return [self.settings.prometheus.port]

    def endpoint(self) -> str:
        return f"{self.url}/"

    def _binary(self) -> str:
        found = shutil.which("prometheus")
        if not found:
            raise ConfigError(
                "prometheus not found: run `./run.sh setup` (it installs it with apt-get) "
                "or `apt-get install prometheus`."
            )
        return found

    def prepare(self) -> None:
        self._binary()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config_text(self.settings))
        write_scrape_token(self.settings)

    def command(self) -> list[str]:
        p = self.settings.prometheus
        return [
            self._binary(),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={p.retention}",
            f"--web.listen-address={self.host}:{p.port}",
            "--log.level=warn",
        ]

    def health(self) -> Health:
        return _http_ok(f"{self.url}/-/ready")


SERVICE_TYPES: tuple[type[Service], ...] = (
    KafkaBroker,
    Mosquitto,
    MlflowServer,
    SparkMaster,
    SparkWorker,
    Bridge,
    Devices,
    PriceFeed,
    SupplyFeed,
    NewsFeeds,
    Pipeline,
    FirstForecasts,
    NotifierService,
    Api,
    PrometheusServer,
)


def _exited(proc: psutil.Process) -> bool:
    """Gone, or a zombie: exited, waiting only to be reaped by its parent — a keeper's parent
    is init, which may reap seconds later."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_exited(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each of ``procs`` has exited or ``timeout`` seconds have passed; those that
    have not."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if not _exited(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def start_services(starting: list[Service]) -> Iterator[tuple[Service, str]]:
    """Start ``starting``: the instances of a kind one after another (the nodes of a Kafka
    cluster share node 1's storage id), the kinds at once, each once the kinds it ``needs``
    among ``starting`` are up. Yields each service with what its start did, as starts finish.
    A kind whose need failed is not started; the first failure is raised once the other
    starts are done."""
    kinds: dict[type[Service], list[Service]] = {}
    for service in starting:
        kinds.setdefault(type(service), []).append(service)
    finished = {kind: threading.Event() for kind in kinds}
    failed: set[type[Service]] = set()
    outcomes: queue.Queue[tuple[Service, str | Exception]] = queue.Queue()

    def start_kind(kind: type[Service]) -> None:
        try:
            for need in kind.needs:
                if need in finished:
                    finished[need].wait()
            if down := [s.name for need in kind.needs if need in failed for s in kinds[need]]:
                failed.add(kind)
                for service in kinds[kind]:
                    outcomes.put((service, f"not started: {', '.join(down)} did not start"))
                return
            for i, service in enumerate(kinds[kind]):
                try:
                    outcomes.put((service, service.start()))
                except Exception as exc:  # noqa: BLE001 - raised by the caller once all are done
                    failed.add(kind)
                    outcomes.put((service, exc))
                    for later in kinds[kind][i + 1 :]:
                        outcomes.put((later, f"not started: {service.name} did not start"))
                    return
        finally:
            finished[kind].set()

    for kind in kinds:
        threading.Thread(target=start_kind, args=(kind,), name=f"start-{kind.__name__}").start()
    errors: list[Exception] = []
    for _ in starting:
        service, outcome = outcomes.get()
        if isinstance(outcome, Exception):
            errors.append(outcome)
            outcome = "failed"
        yield service, outcome
    if errors:
        raise errors[0]


def stop_together(stopping: list[Service]) -> list[str]:
    """Stop ``stopping`` at once: SIGTERM to each, then one wait for them all, SIGKILL to what
    is left after ``services.stop_timeout_seconds``. What became of each, in order."""
    families: list[list[psutil.Process]] = []
    for service in stopping:
        service.before_stop()
        proc = service.process()
        family = [proc, *proc.children(recursive=True)] if proc is not None else []
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                if service.signal_group:
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    proc.send_signal(signal.SIGTERM)
        families.append(family)
    timeout = max((s.settings.services.stop_timeout_seconds for s in stopping), default=0)
    alive = _wait_exited([p for f in families for p in f], timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _wait_exited(alive, 5)
    outcomes = []
    for service, family in zip(stopping, families, strict=True):
        service.pid_file.unlink(missing_ok=True)
        killed = [p for p in family if p in alive]
        if family:
            log.info("service stopped", extra={"service": service.name, "killed": len(killed)})
        outcomes.append(
            "not running" if not family else f"killed after {timeout:.0f}s" if killed else "stopped"
        )
    return outcomes


def stop_services(stopping: list[Service]) -> Iterator[tuple[Service, str]]:
    """Stop ``stopping`` in their order, the nodes of a cluster that ``stops_together`` at once;
    each service with what became of it, as it is stopped."""
    for _, wave in itertools.groupby(
        stopping, key=lambda s: type(s) if s.stops_together else id(s)
    ):
        wave = list(wave)
        yield from zip(wave, stop_together(wave), strict=True)


def services(settings: Settings) -> list[Service]:
    """The services of the embedded default, in start order."""
    return [s for cls in SERVICE_TYPES for s in cls.instances(settings)]
