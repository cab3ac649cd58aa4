"""Processes the end-to-end tests start as a user would: the command line and the pipeline;
and the MQTT bridge, in a thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lakehouse.config.settings import PROJECT_ROOT, Settings
from producers.mqtt_bridge import MqttBridge
from scripts.isolated_stack import free_ports
from scripts.services.base import port_is_free

RUN_SH = str(PROJECT_ROOT / "run.sh")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RUN_SH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ),
    )


#: ``spark.queries`` of a pipeline a test starts to check silver and gold: without the supply
#: and news queries, whose start (their tables created, their first plans) cost a cold driver
#: ~9 CPU s (the kill -9 test's pipeline: 49 → 40 CPU s)
MEDALLION_QUERIES = '["silver", "gold"]'


def start_pipeline(settings: Settings, max_offsets: int = 1500) -> subprocess.Popen:
    """The Spark application (``streaming_jobs.main``) as ``./run.sh up`` runs it, in its own
    process group, on the tables and topics of ``settings``; its log beside the checkpoints.
    ``max_offsets`` records per silver batch at most: small, so that a replay takes several
    batches and a kill lands mid-replay. It runs the medallion queries alone
    (``MEDALLION_QUERIES``): the tests that start it check silver and gold."""
    t = settings.kafka.topics
    env = {
        **os.environ,
        "SMARTMARKET_PATHS__LAKEHOUSE_ROOT": str(settings.paths.lakehouse_root),
        "SMARTMARKET_PATHS__CHECKPOINT_ROOT": str(settings.paths.checkpoint_root),
        "SMARTMARKET_PATHS__DATA_DIR": str(settings.paths.checkpoint_root.parent / "data"),
        **{f"SMARTMARKET_KAFKA__TOPICS__{name.upper()}": topic for name, topic in t},
        "SMARTMARKET_SPARK__MAX_OFFSETS_PER_TRIGGER": str(max_offsets),
        "SMARTMARKET_SPARK__CONF": json.dumps(settings.spark.conf),
        "SMARTMARKET_SPARK__QUERIES": MEDALLION_QUERIES,
    }
    log = settings.paths.checkpoint_root.parent / "pipeline.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streaming_jobs.main"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def running_bridge(settings: Settings, client_id: str, wait: float = 30.0) -> Iterator[MqttBridge]:
    """The MQTT bridge of ``settings`` running in a thread, connected to the broker (within
    ``wait`` seconds); stopped on exit."""
    bridge = MqttBridge(settings, client_id=client_id)
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + wait
        while not bridge.connected:
            assert runner.is_alive() and time.monotonic() < deadline, "bridge did not connect"
            time.sleep(0.05)
        yield bridge
    finally:
        stop.set()
        runner.join()


def wait_for(settings: Settings, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    log = settings.paths.checkpoint_root.parent / "pipeline.log"
    while not condition():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"timed out waiting for {what}; pipeline log:\n{tail}")
        time.sleep(1)


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on loopback."""
    while True:
        (first,) = free_ports(1)
        if all(port_is_free("127.0.0.1", first + i) for i in range(1, count)):
            return first
