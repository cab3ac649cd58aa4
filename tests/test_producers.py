"""Producers against the real Kafka and Mosquitto: CSV, folder watch, replay, MQTT bridge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from lakehouse.config.settings import PROJECT_ROOT
from lakehouse.io.kafka_io import EventProducer
from lakehouse.io.status import read_status
from producers.csv_ingest import FolderWatcher, ingest_file
from producers.devices import FleetConnection, Simulator, fleet, provision, publish
from scripts.cli import main
from tests.kafka_helpers import consume, end_offsets
from tests.processes import run_cli
from tests.report_samples import MESSY


def test_csv_report_good_rows_published_bad_rows_dead_lettered(kafka, settings, tmp_path):
    topics = settings.kafka.topics
    path = tmp_path / "messy.csv"
    path.write_text(MESSY, encoding="utf-8")
    before = {t: end_offsets(settings, t) for t in (topics.prices, topics.deadletter)}

    summary = ingest_file(path, settings, EventProducer(settings))

    assert (summary.rows, summary.published, summary.dead_lettered) == (8, 3, 5)
    prices = consume(settings, topics.prices, expected=3, since=before[topics.prices])
    assert sorted(v["market_id"] for _, v in prices) == ["IP-001", "IP-003", "IP-004"]
    assert all(k == f"{v['market_id']}:{v['commodity']}" for k, v in prices)
    letters = consume(settings, topics.deadletter, expected=5, since=before[topics.deadletter])
    assert sorted(v["line"] for _, v in letters) == [5, 6, 7, 9, 10]
    assert all(v["file"] == str(path) and v["origin"] == "csv" and v["reason"] for _, v in letters)
    assert {v["raw"] for _, v in letters} >= {MESSY.splitlines()[4]}


def test_watch_publishes_each_file_once_across_restarts(kafka, settings, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    before = end_offsets(settings, settings.kafka.topics.prices)
    report = "observed_at,market_id,commodity,price\n2025-03-01,IP-001,beras,14500\n"

    first = FolderWatcher(inbox, settings, EventProducer(settings))
    assert first.scan_once() == []
    # the watcher is down while a file arrives
    (inbox / "a.csv").write_text(report)
    restarted = FolderWatcher(inbox, settings, EventProducer(settings))
    assert restarted.scan_once() == []  # seen once: maybe still being written
    (summary,) = restarted.scan_once()
    assert summary.published == 1
    assert (inbox / "processed" / "a.csv").exists()

    # the same content dropped again, and a broken file: neither is published
    (inbox / "again.csv").write_text(report)
    (inbox / "broken.csv").write_bytes(b"\x00\x01binary")
    again = FolderWatcher(inbox, settings, EventProducer(settings))
    assert again.scan_once() + again.scan_once() == []
    assert (inbox / "processed" / "again.csv").exists()
    assert "binary" in (inbox / "failed" / "broken.csv.reason.txt").read_text()

    records = consume(settings, settings.kafka.topics.prices, since=before)
    assert len(records) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "empty"),
        (
            "header.csv",
            b"observed_at,market_id,region,commodity,price,unit,source\n",
            "no data rows",
        ),
        ("binary.csv", bytes(range(256)) * 4, "binary file"),
        (
            "pipes.csv",
            b"observed_at|market_id|commodity|price\n2025-01-01|IP-001|beras|1\n",
            "',' or ';'",
        ),
    ],
)
def test_bad_input_files_give_a_clear_error(clean_env, capsys, tmp_path, name, content, message):
    """Refused before anything is sent: no broker is running, and none is asked for. (The CLI's
    entry point in this process; `./run.sh ingest` on a bad file: tests/test_news_ingest.py.)"""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for command in (["ingest", str(path)], ["replay", str(path), "--speed", "max"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_replay_of_the_real_file_puts_every_row_in_kafka(kafka, settings, sample_prices):
    rows = sum(1 for line in sample_prices.read_text().splitlines()[1:] if line.strip())
    before = end_offsets(settings, settings.kafka.topics.prices)
    result = run_cli("replay", str(sample_prices), "--speed", "max")
    assert result.returncode == 0, result.stderr
    assert f"{rows} events published" in result.stdout
    records = consume(settings, settings.kafka.topics.prices, expected=rows, since=before)
    assert len(records) == rows
    assert len({v["event_id"] for _, v in records}) == rows
    # event-time order within each series (its Kafka key)
    times = defaultdict(list)
    for key, value in records:
        times[key].append(datetime.fromisoformat(value["observed_at"]))
    assert all(t == sorted(t) for t in times.values())


def test_replay_window_and_fan_out(kafka, settings, sample_prices):
    before = end_offsets(settings, settings.kafka.topics.prices)
    result = run_cli(
        "replay",
        str(sample_prices),
        "--speed",
        "max",
        "--start",
        "2025-03-01",
        "--end",
        "2025-03-08",
        "--fan-out",
        "5",
    )
    assert result.returncode == 0, result.stderr
    records = consume(settings, settings.kafka.topics.prices, expected=7 * 3 * 5, since=before)
    assert len(records) == 7 * 3 * 5
    assert len({v["market_id"] for _, v in records}) == 5


def _start_bridge(client_id: str) -> subprocess.Popen:
    env = {**os.environ, "SMARTMARKET_PRODUCERS__BRIDGE_CLIENT_ID": client_id}
    return subprocess.Popen(
        [sys.executable, "-m", "producers.mqtt_bridge"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_connected(settings, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = read_status(settings, "bridge")
        if status and status.get("connected") and proc.poll() is None:
            return
        time.sleep(0.2)
    raise AssertionError("bridge did not connect")


def test_bridge_loses_nothing_across_kill_minus_nine(kafka, mosquitto, settings):
    topics = settings.kafka.topics
    before = end_offsets(settings, topics.sensors)
    dl_before = end_offsets(settings, topics.deadletter)
    client_id = f"bridge-{uuid.uuid4().hex[:8]}"
    bridge = _start_bridge(client_id)
    _wait_connected(settings, bridge)

    wib = ZoneInfo("Asia/Jakarta")
    devices = fleet(3, ["IP-001", "IP-003", "IP-004", "IP-005"])
    sim = Simulator(settings, devices, seed=7)
    readings = list(
        islice(sim.readings(datetime(2025, 3, 1, tzinfo=wib), timedelta(minutes=1)), 10_000)
    )
    client = FleetConnection(settings, provision(settings, devices))

    def publish_slowly() -> None:
        for i in range(0, len(readings), 500):
            publish(client, iter(readings[i : i + 500]), 500)
            time.sleep(0.25)

    publisher = threading.Thread(target=publish_slowly)
    publisher.start()
    deadline = time.monotonic() + 120
    while (
        seen := sum(end_offsets(settings, topics.sensors).values()) - sum(before.values())
    ) < 2500:
        assert time.monotonic() < deadline, "bridge forwarded too little"
        time.sleep(0.05)
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    assert seen < 10_000, "the bridge finished before it could be killed"
    client.client("IP-001-d1").publish(
        "markets/IP-001/devices/IP-001-d1/temperature_c", b"\xff\xfe garbage", qos=1
    ).wait_for_publish()
    publisher.join()

    restarted = _start_bridge(client_id)
    try:
        records = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            records = consume(settings, topics.sensors, since=before)
            if len({v["event_id"] for _, v in records}) >= 10_000:
                break
        ids = defaultdict(set)
        for _, value in records:
            ids[value["event_id"]].add(tuple(sorted((k, str(v)) for k, v in value.items())))
        assert len(ids) == 10_000, "readings were lost"
        assert all(len(copies) == 1 for copies in ids.values()), "a duplicate differs"
        letters = consume(settings, topics.deadletter, expected=1, since=dl_before)
        assert letters[0][1]["mqtt_topic"] == "markets/IP-001/devices/IP-001-d1/temperature_c"
        assert letters[0][1]["raw_encoding"] == "base64"
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=60) == 0
        client.close()
