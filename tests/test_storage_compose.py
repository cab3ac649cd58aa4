"""docker-compose.yml as a production-shaped stack, validated by the Compose CLI (``config``: no
engine is needed) and beyond it: every service, the lakehouse on the S3 store, ports on loopback
by default, every pulled image pinned by version and digest, every long-running service with a
health check, the scheduled jobs from scripts/crontab, and the project's containers built from
the Dockerfile with nothing installed at start."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
}
OTHER_SERVICES = {"s3", "kafka-1", "kafka-2", "kafka-3", "kafka-init"}
OTHER_SERVICES |= {"mosquitto", "prometheus", "grafana"}
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
    assert one_shots == {"s3-init", "kafka-init"}
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
