"""`./run.sh` as a user runs it: the whole embedded stack up, status, down — and bad set-ups."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, load_settings
from scripts.isolated_stack import stack_env
from scripts.services import Bridge, KafkaBroker, Pipeline, Service

RUN_SH = str(PROJECT_ROOT / "run.sh")
SERVICES = (
    "kafka",
    "mosquitto",
    "mlflow",
    "bridge",
    "devices",
    "prices",
    "pipeline",
    "api",
    "prometheus",
)


def run(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RUN_SH, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _family(run_dir: Path) -> list[psutil.Process]:
    procs = []
    for pid_file in run_dir.glob("*.pid"):
        proc = psutil.Process(json.loads(pid_file.read_text())["pid"])
        procs += [proc, *proc.children(recursive=True)]
    return procs


@pytest.mark.services  # the whole embedded stack, the pipeline (Spark) included
@pytest.mark.spark
def test_up_status_down_leaves_no_process(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path))}
    try:
        up = run(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        for name in SERVICES:
            assert f"{name:<10} started" in up.stdout
        assert "(none yet: fitted from" in up.stdout  # a first start fits the impact model

        again = run(env, "up")
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == len(SERVICES)
        assert "impact model" not in again.stdout

        status = run(env, "status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == len(SERVICES)
        api = f"http://127.0.0.1:{env['SMARTMARKET_API__PORT']}"
        assert httpx.get(f"{api}/ready", timeout=10).json()["status"] == "ready"
        where = {"commodity": "beras", "region": "Bandung", "date": "2025-03-10"}
        impact = httpx.get(f"{api}/api/v1/impact", params=where, timeout=60)
        assert impact.status_code == 200, impact.text
        for commodity in ("cabai_merah", "bawang_merah", "bawang_putih"):  # the shipped daily file
            where = {"commodity": commodity, "region": "Indonesia", "date": "2025-02-12"}
            impact = httpx.get(f"{api}/api/v1/impact", params=where, timeout=60)
            assert impact.status_code == 200, impact.text

        procs = _family(tmp_path / "run")
        assert len(procs) >= len(SERVICES)
    finally:
        down = run(env, "down")
    assert down.returncode == 0, down.stderr
    still_alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert still_alive == []
    stopped = run(env, "status")
    assert stopped.returncode == 1
    assert stopped.stdout.count("stopped") == len(SERVICES)


def test_port_taken_fails_fast_and_says_what_to_change(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path))}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["SMARTMARKET_MQTT__PORT"])))
        squatter.listen()
        result = run(env, "up", "mosquitto", timeout=120)
    port = env["SMARTMARKET_MQTT__PORT"]
    assert result.returncode == 2
    assert f"port {port} (mqtt.port) is already taken" in result.stderr
    assert "SMARTMARKET_MQTT__PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("service", "key"),
    [
        (Pipeline, "pipeline_metrics.port"),
        (Bridge, "bridge_metrics.port"),
        (KafkaBroker, "prometheus.kafka_jmx_port"),
    ],
)
def test_a_taken_metrics_port_fails_before_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: type[Service], key: str
):
    for name, value in stack_env(str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    env = "SMARTMARKET_" + key.upper().replace(".", "__")
    port = int(os.environ[env])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ConfigError, match=rf"port {port} \({key}\) is already taken.*{env}"):
            service(load_settings()).check_ports()


def test_missing_java_fails_fast(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path)), "PATH": str(tmp_path / "empty-bin")}
    env.pop("JAVA_HOME", None)
    python = str(PROJECT_ROOT / ".venv" / "bin" / "python")
    result = subprocess.run(
        [python, "-m", "scripts.cli", "up", "kafka"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert "error: Java not found" in result.stderr
    assert "JAVA_HOME" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_unreadable_conf_file_fails_fast(tmp_path: Path, kind: str):
    conf = tmp_path / "settings.yaml"
    if kind == "directory":
        conf.mkdir()
    env = {**os.environ, "SMARTMARKET_CONFIG": str(conf)}
    result = run(env, "status", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read configuration file {conf}")
    assert "Traceback" not in result.stderr


def test_unknown_service_is_named(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path))}
    result = run(env, "logs", "zookeeper", timeout=60)
    assert result.returncode == 2
    assert "unknown service 'zookeeper'" in result.stderr
    assert "kafka" in result.stderr
