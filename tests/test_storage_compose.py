"""docker-compose.yml as a production-shaped stack, validated by the Compose CLI (``config``: no
engine is needed) and beyond it: every service, the lakehouse on the S3 store, ports on loopback
by default, every pulled image pinned by version and digest, every long-running service with a
health check, the scheduled jobs from scripts/crontab, and the project's containers built from
the Dockerfile with nothing installed at start. The configuration config-init generates
(scripts/compose_config.py) with the stack's own settings is checked by each tool's validator:
every service with metrics scraped (promtool), the ops alerts routed to the channels (amtool),
and the real Mosquitto on the generated broker files refusing an anonymous client."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.config.settings import PROJECT_ROOT

KEYS = {
    "S3_ACCESS_KEY": "compose-test-key",
    "S3_SECRET_KEY": "compose-test-secret",
    "GRAFANA_ADMIN_PASSWORD": "compose-test-grafana",
}
PROJECT_SERVICES = {
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "pipeline",
    "bridge",
    "devices",
    "prices",
    "api",
    "notifier",
    "mlflow",
    "scheduler",
    "s3-init",
    "config-init",
}
OTHER_SERVICES = {"s3", "kafka-1", "kafka-2", "kafka-3", "kafka-init"}
OTHER_SERVICES |= {"mosquitto", "prometheus", "alertmanager", "grafana"}
#: the services that serve Prometheus metrics (Prometheus scrapes itself on localhost)
WITH_METRICS = {"api", "pipeline", "bridge", "kafka-1", "kafka-2", "kafka-3"}
WITH_METRICS |= {"alertmanager", "grafana", "localhost"}
#: a pulled image: name, a version tag (never "latest") and the digest of that version
PINNED = re.compile(r"^[a-z0-9./-]+:(?!latest@)[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")


def compose_cli() -> list[str]:
    """``docker compose`` (v2) when installed, else Debian's ``docker-compose`` (v1.29, which
    ``./run.sh setup`` installs: Debian ships no Compose v2)."""
    docker = shutil.which("docker")
    v2 = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if v2 and v2.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.fail("no Compose CLI: run ./run.sh setup (it installs Debian's docker-compose)")
    return [legacy]


def config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("BIND")}
    return subprocess.run(
        [*compose_cli(), "--project-directory", str(PROJECT_ROOT), "config"],
        cwd=PROJECT_ROOT,
        env={**clean, "COMPOSE_PROJECT_NAME": "smartmarket", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    done = config(KEYS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def host_ips(service: dict[str, Any]) -> list[str]:
    """The host address of each published port, in the short or the long syntax."""
    ips = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ips.append(port.get("host_ip", "0.0.0.0"))
        else:
            parts = str(port).split(":")
            ips.append(parts[0] if len(parts) == 3 else "0.0.0.0")
    return ips


def test_every_service_of_the_stack_is_there(stack: dict[str, Any]) -> None:
    assert set(stack) == PROJECT_SERVICES | OTHER_SERVICES


def test_ports_listen_on_loopback_unless_opened(stack: dict[str, Any]) -> None:
    published = {name: host_ips(s) for name, s in stack.items() if s.get("ports")}
    assert {"api", "s3", "kafka-1", "mlflow", "mosquitto", "spark-master"} <= set(published)
    assert {"prometheus", "grafana"} <= set(published)
    assert all(ip == "127.0.0.1" for ips in published.values() for ip in ips), published

    opened = config({**KEYS, "BIND_ADDRESS": "0.0.0.0"})
    assert opened.returncode == 0, opened.stderr
    assert host_ips(yaml.safe_load(opened.stdout)["services"]["api"]) == ["0.0.0.0"]


def test_the_api_weighs_more_on_the_cpu_than_the_batch_work(stack: dict[str, Any]) -> None:
    """Where the API shares a box with Spark, Compose gives it the CPU first (``cpu_shares``:
    the cgroup's weight), as ``spark.niceness`` does in the embedded stack."""
    batch = ("pipeline", "scheduler", "spark-worker-1", "spark-worker-2")
    weight = {name: int(stack[name].get("cpu_shares", 1024)) for name in ("api", *batch)}
    assert all(weight["api"] >= 8 * weight[name] for name in batch), weight


def test_project_containers_run_the_built_image_on_the_s3_lakehouse(stack: dict[str, Any]) -> None:
    for name in PROJECT_SERVICES:
        service = stack[name]
        assert service["build"], name
        command = " ".join(map(str, service["command"]))
        assert "pip install" not in command and "apt-get" not in command, name
        env = service["environment"]
        assert env["SMARTMARKET_PATHS__LAKEHOUSE_ROOT"] == "s3a://lakehouse/lake"
        assert env["SMARTMARKET_STORAGE__ENDPOINT"] == "http://s3:7070"
        assert env["SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID"] == KEYS["S3_ACCESS_KEY"]
        assert env["SMARTMARKET_SPARK__MASTER"] == "spark://spark-master:7077"
    quorum = stack["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert quorum == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "mvn --batch-mode" in dockerfile and "jvm/pom.xml package" in dockerfile


def test_the_store_keys_are_required(stack: dict[str, Any]) -> None:
    missing = config({})
    assert missing.returncode != 0
    assert "S3_ACCESS_KEY" in missing.stderr


def test_every_pulled_image_is_pinned_by_version_and_digest(stack: dict[str, Any]) -> None:
    pulled = {name: s["image"] for name, s in stack.items() if "build" not in s}
    assert set(pulled) == OTHER_SERVICES
    assert {n: i for n, i in pulled.items() if not PINNED.match(i)} == {}
    assert "minio" not in " ".join(pulled.values())  # withdrawn from the public registry
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    node = re.search(r"^FROM node:(\d+)-bookworm-slim", dockerfile, re.MULTILINE)
    assert node and int(node.group(1)) in (22, 24), "the Node stage must be a supported LTS"


def test_every_long_running_service_has_a_health_check(stack: dict[str, Any]) -> None:
    one_shots = {name for name, s in stack.items() if s.get("restart") == "no"}
    assert one_shots == {"s3-init", "kafka-init", "config-init"}
    unchecked = [
        name
        for name, s in stack.items()
        if name not in one_shots and not s.get("healthcheck", {}).get("test")
    ]
    assert unchecked == []
    for name, service in stack.items():  # a one-shot is waited for until it completed
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in stack, f"{name} depends on unknown {needed}"
            wanted = "service_completed_successfully" if needed in one_shots else "service_"
            assert how["condition"].startswith(wanted), (name, needed, how)


def test_scheduled_jobs_run_from_the_crontab_under_a_container_cron(
    stack: dict[str, Any],
) -> None:
    scheduler = stack["scheduler"]
    assert scheduler["command"][0] == "supercronic"
    assert scheduler["command"][-1] == "/app/scripts/crontab"
    assert all(
        "while true" not in " ".join(map(str, s.get("command") or [])) for s in stack.values()
    )
    crontab = (PROJECT_ROOT / "scripts" / "crontab").read_text(encoding="utf-8")
    jobs = [line for line in crontab.splitlines() if line and not line.startswith(("#", "SHELL="))]
    assert len(jobs) == 5
    prefix = "cd /opt/smart-market && .venv/bin/python -m scripts.scheduled "
    assert all(prefix in job for job in jobs), jobs
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ln -s /usr/local/bin/python /app/.venv/bin/python" in dockerfile
    assert "ln -s /app /opt/smart-market" in dockerfile
    assert "sha256sum -c" in dockerfile and "supercronic" in dockerfile


def test_the_status_health_check_of_a_project_container(clean_env, tmp_path, monkeypatch) -> None:
    from lakehouse.config.settings import load_settings
    from lakehouse.io.status import main as status_check
    from lakehouse.io.status import write_status

    monkeypatch.setenv("SMARTMARKET_PATHS__DATA_DIR", str(tmp_path))
    assert status_check(["bridge"]) == 1  # nothing reported yet
    write_status(load_settings(), "bridge", "running", connected=True)
    assert status_check(["bridge"]) == 0
    write_status(load_settings(), "bridge", "stopped")
    assert status_check(["bridge"]) == 1


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} not found: `./run.sh setup --dev` installs it (apt-get)")
    return found


@pytest.fixture
def compose_settings(stack, clean_env, tmp_path, monkeypatch):
    """The settings config-init runs with (its environment in the stack), a data folder here."""
    from lakehouse.config.settings import load_settings

    for name, value in stack["config-init"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("SMARTMARKET_PATHS__DATA_DIR", str(tmp_path / "data"))
    return load_settings()


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_every_service_with_metrics_is_scraped(stack, compose_settings, tmp_path) -> None:
    from scripts.compose_config import write_all

    write_all(compose_settings, tmp_path / "etc")
    config = yaml.safe_load((tmp_path / "etc" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    hosts = {t.split(":")[0] for ts in targets.values() for t in ts}
    assert hosts == WITH_METRICS, targets
    assert hosts - {"localhost"} <= set(stack)
    # each endpoint listens on the container network, on the port scraped
    env = {name: stack[name]["environment"] for name in ("pipeline", "bridge", "kafka-1")}
    assert env["pipeline"]["SMARTMARKET_PIPELINE_METRICS__HOST"] == "0.0.0.0"
    assert env["bridge"]["SMARTMARKET_BRIDGE_METRICS__HOST"] == "0.0.0.0"
    jmx = f"jmx_prometheus_javaagent.jar={compose_settings.prometheus.kafka_jmx_port}:"
    assert jmx in env["kafka-1"]["KAFKA_OPTS"]
    assert (tmp_path / "etc" / "jmx_prometheus_javaagent.jar").stat().st_size > 0
    assert config["rule_files"] == ["/etc/prometheus-rules/rules.yml"]
    assert "/etc/prometheus-rules:ro" in " ".join(stack["prometheus"]["volumes"])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    checked = run_tool(
        tool("promtool"), "check", "config", "--syntax-only", str(tmp_path / "etc/prometheus.yml")
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ops_alerts_are_routed_to_the_notifier_channels(compose_settings, tmp_path) -> None:
    from lakehouse.config.settings import NotifierChannel
    from scripts.compose_config import UNROUTED, alertmanager_config

    bot = {"kind": "telegram", "url": "https://api.telegram.org", "token": "123:abc"}
    channels = [
        NotifierChannel(name="ops", url="https://hooks.example.org/x", token="t0k"),
        NotifierChannel(name="oncall", chat_id="-1001234567890", min_severity="critical", **bot),
        NotifierChannel(name="wa", kind="whatsapp", url="https://graph.example.org/1/messages"),
    ]
    alerts = compose_settings.alerts.model_copy(update={"channels": channels})
    config = alertmanager_config(compose_settings.model_copy(update={"alerts": alerts}))
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    amtool = tool("amtool")
    checked = run_tool(amtool, "check-config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def receivers(severity: str) -> str:
        routed = run_tool(amtool, "config", "routes", "test", f"--config.file={path}",
                          "alertname=SilverBatchStale", f"severity={severity}")  # fmt: skip
        assert routed.returncode == 0, routed.stderr
        return routed.stdout.strip()

    assert receivers("warning") == "ops"
    assert receivers("critical") == "ops,oncall"
    # no channel: the alerts stay in Alertmanager (valid configuration, nothing sent)
    empty = tmp_path / "empty.yml"
    empty.write_text(yaml.safe_dump(alertmanager_config(compose_settings)))
    assert run_tool(amtool, "check-config", str(empty)).returncode == 0
    assert config["route"]["receiver"] == UNROUTED


def test_anonymous_mqtt_is_refused_by_the_compose_broker(
    stack, compose_settings, tmp_path, monkeypatch
) -> None:
    """The mosquitto service's own command (the broker, reloaded when the registry rewrote its
    files) on the files config-init generates, with the real Mosquitto: an anonymous client
    refused (what the service's health check asks too), the bridge's account admitted, a device
    registered afterwards admitted once the service has reloaded the broker by itself."""
    from lakehouse.config.settings import load_settings
    from lakehouse.domain.accounts.broker_auth import (
        bridge_credentials,
        broker_home,
        write_broker_files,
    )
    from lakehouse.domain.accounts.registry import open_registry
    from scripts.compose_config import write_all
    from scripts.isolated_stack import free_ports
    from scripts.services.base import port_is_free
    from tests.mqtt_clients import close, try_connect

    (port,) = free_ports(1)
    monkeypatch.setenv("SMARTMARKET_MQTT__PORT", str(port))
    monkeypatch.setenv("SMARTMARKET_MQTT__HOST", "127.0.0.1")
    settings = load_settings()
    service = stack["mosquitto"]
    assert service["volumes"] == ["broker:/data/mosquitto:rw"]
    writers = {n for n, s in stack.items() if "broker:/data/mosquitto:rw" in s.get("volumes", [])}
    assert writers == {"config-init", "api", "devices", "mosquitto"}  # only who registers devices
    write_all(settings, tmp_path / "etc")
    home = broker_home(settings)
    assert "allow_anonymous false" in (home / "mosquitto.conf").read_text().splitlines()
    script = service["command"][0].replace("$$", "$").replace("/data/mosquitto", str(home))
    path = f"{Path(tool('mosquitto')).parent}:{os.environ['PATH']}"
    broker = subprocess.Popen(
        [*service["entrypoint"], script],
        env={**os.environ, "PATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while port_is_free("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert try_connect(settings, None, wait=10) is None, "anonymous client accepted"
        health = service["healthcheck"]["test"][1].replace("$$", "$").replace(" 1883 ", f" {port} ")
        checked = subprocess.run(["sh", "-c", health], env={**os.environ, "PATH": path}, timeout=30)
        assert checked.returncode == 0, "the service's health check fails on a healthy broker"
        bridge = try_connect(settings, bridge_credentials(settings))
        assert bridge is not None, "the bridge's account was refused"
        registry = open_registry(settings)
        device, password = registry.register_device("IP-001", ["temperature_c"])
        # the files rewritten from another container: no signal reaches the broker from there
        write_broker_files(settings, registry)
        deadline = time.monotonic() + 20
        client = None
        while client is None and time.monotonic() < deadline:
            client = try_connect(settings, (device.device_id, password), wait=3)
        assert client is not None, "a device registered after the start stays refused"
        close(bridge, client)
    finally:
        os.killpg(broker.pid, signal.SIGTERM)  # the shell, its sleep and the broker
        broker.wait(timeout=10)
