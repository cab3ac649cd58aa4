"""A throw-away stack for tests and benchmarks: its own data folder and free loopback ports,
set through the same environment variables a user would use."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lakehouse.config.settings import Settings, load_settings
from scripts.services.base import Service
from scripts.services.supervisor import services, start_services, stop_services

#: where ``free_ports`` looks: below Linux's default ephemeral range (32768–60999)
LISTEN_PORTS = range(20000, 32768)
#: "FIRST-LAST": a share of ``LISTEN_PORTS`` of this process's own, so that two test sessions
#: side by side (``./run.sh test``) never choose the same port between a choice and its bind
PORTS_VARIABLE = "ISOLATED_STACK_PORTS"


def _listen_ports() -> range:
    first, _, last = os.environ.get(PORTS_VARIABLE, "").partition("-")
    return range(int(first), int(last) + 1) if last else LISTEN_PORTS


def share_of_ports(index: int, count: int) -> str:
    """Share ``index`` (from 0) of ``count`` equal shares of this process's ports, as a
    ``PORTS_VARIABLE`` value: for processes side by side in one session's share (the workers
    of ``./run.sh test --fast``)."""
    ports = _listen_ports()
    size = len(ports) // count
    first = ports.start + index * size
    return f"{first}-{first + size - 1}"


def _ephemeral_start() -> int:
    """The lowest port the kernel gives an outgoing connection (its ephemeral range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LISTEN_PORTS.stop


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on loopback (all held open while choosing, so no two are
    the same), below the ephemeral range: a port the kernel hands out as the source port of an
    outgoing connection — a Kafka or HTTP client's — could be taken between this choice and
    the service's bind (a stack's test once lost its pipeline's metrics port that way)."""
    listen_ports = _listen_ports()
    candidates = [p for p in listen_ports if p < _ephemeral_start()]
    random.shuffle(candidates)
    with contextlib.ExitStack() as stack:
        found: list[int] = []
        for port in candidates:
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"fewer than {count} free ports in {listen_ports}")


def stack_env(data_dir: str) -> dict[str, str]:
    """Environment for an isolated stack rooted at ``data_dir``."""
    ports = free_ports(10)  # all at once: no two the same
    kafka, controller, mqtt, mlflow, api, spark_ui = ports[:6]
    prometheus, pipeline_metrics, bridge_metrics, kafka_jmx = ports[6:]
    return {
        "SMARTMARKET_PATHS__DATA_DIR": data_dir,
        "SMARTMARKET_PATHS__LAKEHOUSE_ROOT": f"{data_dir}/lakehouse",
        "SMARTMARKET_PATHS__CHECKPOINT_ROOT": f"{data_dir}/checkpoints",
        "SMARTMARKET_KAFKA__PORT": str(kafka),
        "SMARTMARKET_KAFKA__CONTROLLER_PORT": str(controller),
        "SMARTMARKET_MQTT__PORT": str(mqtt),
        "SMARTMARKET_MLFLOW__PORT": str(mlflow),
        "SMARTMARKET_API__PORT": str(api),
        "SMARTMARKET_SPARK__UI_PORT": str(spark_ui),
        "SMARTMARKET_PROMETHEUS__PORT": str(prometheus),
        "SMARTMARKET_PROMETHEUS__KAFKA_JMX_PORT": str(kafka_jmx),
        "SMARTMARKET_PIPELINE_METRICS__PORT": str(pipeline_metrics),
        "SMARTMARKET_BRIDGE_METRICS__PORT": str(bridge_metrics),
    }


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # run the clean-up below: no broker is left behind


@contextmanager
def isolated_stack(data_dir: Path, names: tuple[str, ...]) -> Iterator[Settings]:
    """Start the named services of a fresh stack in ``data_dir``; stop them on exit. The
    environment of this process points at that stack meanwhile."""
    env = stack_env(str(data_dir))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started: list[Service] = []
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        settings = load_settings()
        started = [s for s in services(settings) if s.name in names]
        list(start_services(started))
        yield settings
    finally:
        list(stop_services(list(reversed(started))))
        signal.signal(signal.SIGTERM, previous_handler)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
