"""Supervision of the embedded stack: start, stop and check each service.

Every service runs in its own process group under its keeper (``scripts.keeper``), with a pid
file under ``<data_dir>/run`` and its output in ``<data_dir>/logs/<name>.log``, rotated by size.
The keeper restarts a service that exits without being asked to, with a back-off, and counts the
restarts. ``up`` is idempotent (a healthy service is left alone), ``down`` stops in reverse order
(SIGTERM to the group, SIGKILL after the stop timeout), so no process is left behind.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from lakehouse.broker_auth import broker_auth_lines
from lakehouse.settings import PROJECT_ROOT, ConfigError, Settings
from lakehouse.status import STALE_SECONDS, read_status, status_path
from producers.kafka_io import ensure_topics, kafka_reachable
from scripts.keeper import Restarts

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

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # --- what subclasses define -------------------------------------------------------
    def enabled(self) -> bool:
        return True

    def ports(self) -> list[int]:
        raise NotImplementedError

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

    # --- files ------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.settings.paths.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.paths.log_dir / f"{self.name}.log"

    @property
    def restarts_file(self) -> Path:
        return self.settings.paths.run_dir / f"{self.name}.restarts.json"

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
        for port, key in zip(self.ports(), self.port_keys, strict=True):
            if not port_is_free(self.host, port):
                env = "SMARTMARKET_" + key.upper().replace(".", "__")
                raise ConfigError(
                    f"{self.name}: port {port} ({key}) is already taken by another process. "
                    f"Stop that process or choose another port with {env}=<port>."
                )

    def start(self) -> str:
        """Start the service unless it already runs; wait until healthy. Returns what it did."""
        if self.process() is not None:
            if self.health().ok:
                return "already running"
            self.wait_healthy(self.process())
            return "already running (became healthy)"
        self.check_ports()
        self.prepare()
        self.settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
        self.restarts_file.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}
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
        proc = self.process()
        if proc is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        family = [proc, *proc.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            if self.signal_group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=self.settings.services.stop_timeout_seconds)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self.pid_file.unlink(missing_ok=True)
        log.info("service stopped", extra={"service": self.name, "killed": len(alive)})
        return (
            "stopped"
            if not alive
            else f"killed after {self.settings.services.stop_timeout_seconds:.0f}s"
        )

    def tail(self, lines: int) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


def _java() -> str:
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


class KafkaBroker(Service):
    """Apache Kafka, single node in KRaft mode (broker + controller), from the Maven jars."""

    name = "kafka"
    port_keys = ("kafka.port", "kafka.controller_port")

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "kafka"

    def enabled(self) -> bool:
        return self.settings.kafka.embedded

    def ports(self) -> list[int]:
        return [self.settings.kafka.port, self.settings.kafka.controller_port]

    def endpoint(self) -> str:
        return f"bootstrap {self.settings.kafka.bootstrap}"

    def _classpath(self) -> str:
        lib = self.settings.paths.jvm_lib_dir / "kafka-broker"
        if not any(lib.glob("kafka_2.13-*.jar")):
            raise ConfigError(f"no Kafka jars in {lib}: run `./run.sh setup` to resolve them")
        return f"{lib}/*"

    def _properties(self) -> str:
        k = self.settings.kafka
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{self.host}:{k.controller_port}",
                f"listeners=PLAINTEXT://{self.host}:{k.port},CONTROLLER://{self.host}:{k.controller_port}",
                f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={k.partitions}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
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
            _java(),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
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
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
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

    def command(self) -> list[str]:
        return self._java_command("kafka.Kafka", str(self.properties_file))

    def health(self) -> Health:
        return Health(*kafka_reachable(self.settings))

    def after_start(self) -> None:
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
        self._binary()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "mosquitto.conf").write_text(
            "\n".join(
                [
                    f"listener {self.settings.mqtt.port} {self.host}",
                    *broker_auth_lines(self.settings),
                    "persistence true",
                    f"persistence_location {self.home}/",
                    "autosave_interval 10",
                    "max_queued_messages 1000000",
                    "max_inflight_messages 1000",
                    f"user {getpass.getuser()}",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def command(self) -> list[str]:
        return [self._binary(), "-c", str(self.home / "mosquitto.conf")]

    def health(self) -> Health:
        return _tcp_open(self.host, self.settings.mqtt.port)


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


class StatusFileService(Service):
    """A Python process of ours that reports its state in a status file (lakehouse.status)."""

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
    signal_group = False  # the driver stops its queries, then its JVM

    def endpoint(self) -> str:
        return f"lakehouse {self.settings.paths.lakehouse_root}"

    def prepare(self) -> None:
        _java()
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

    def endpoint(self) -> str:
        m, k = self.settings.mqtt, self.settings.kafka
        return f"{m.topic_root}/+/devices/+/+ -> {k.topics.sensors}"

    def check_status(self, status: dict) -> Health:
        return Health(status.get("connected", False), f"{status.get('forwarded', 0)} forwarded")


class Devices(StatusFileService):
    """Simulated market sensor devices publishing to MQTT (producers.devices)."""

    name = "devices"
    module = "producers.devices"

    def enabled(self) -> bool:
        return self.settings.simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.simulator
        return f"{sim.devices_per_market}/market every {sim.interval_seconds:g}s"


class NotifierService(StatusFileService):
    """Alert notifications to webhooks, Telegram and WhatsApp (streaming_jobs.notifier); runs
    when ``alerts.channels`` lists at least one channel."""

    name = "notifier"
    module = "streaming_jobs.notifier"

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

    def ports(self) -> list[int]:
        return [self.settings.api.port]

    def endpoint(self) -> str:
        return self.settings.api.url

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "serving_api.app:app",
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


SERVICE_TYPES: tuple[type[Service], ...] = (
    KafkaBroker,
    Mosquitto,
    MlflowServer,
    Bridge,
    Devices,
    Pipeline,
    NotifierService,
    Api,
)


def services(settings: Settings) -> list[Service]:
    """The services of the embedded default, in start order."""
    return [s for s in (cls(settings) for cls in SERVICE_TYPES) if s.enabled()]
