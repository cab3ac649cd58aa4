"""docker-compose.yml as a production-shaped stack, validated by the Compose CLI (``config``: no
engine is needed): every service, the lakehouse on the S3 store, ports on loopback by default,
and the project's containers built from the Dockerfile with nothing installed at start."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from lakehouse.settings import PROJECT_ROOT

KEYS = {"S3_ACCESS_KEY": "compose-test-key", "S3_SECRET_KEY": "compose-test-secret"}
PROJECT_SERVICES = {
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "pipeline",
    "bridge",
    "devices",
    "api",
    "notifier",
    "retrain",
    "maintain",
}
OTHER_SERVICES = {"minio", "minio-init", "kafka-1", "kafka-2", "kafka-3", "kafka-init"}
OTHER_SERVICES |= {"mosquitto", "mlflow"}


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
    assert {"api", "minio", "kafka-1", "mlflow", "mosquitto", "spark-master"} <= set(published)
    assert all(ip == "127.0.0.1" for ips in published.values() for ip in ips), published

    opened = config({**KEYS, "BIND_ADDRESS": "0.0.0.0"})
    assert opened.returncode == 0, opened.stderr
    assert host_ips(yaml.safe_load(opened.stdout)["services"]["api"]) == ["0.0.0.0"]


def test_project_containers_run_the_built_image_on_the_s3_lakehouse(stack: dict[str, Any]) -> None:
    for name in PROJECT_SERVICES:
        service = stack[name]
        assert service["build"], name
        command = " ".join(map(str, service["command"]))
        assert "pip install" not in command and "apt-get" not in command, name
        env = service["environment"]
        assert env["LAKEHOUSE_ROOT"] == "s3a://lakehouse/lake"
        assert env["SMARTMARKET_STORAGE__ENDPOINT"] == "http://minio:9000"
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
