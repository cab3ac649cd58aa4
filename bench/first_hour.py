"""A user's first hour on the default stack, measured from outside (issue #53's targets).

The stack is started as the README's first command starts it — ``./run.sh up`` with the default
settings and every simulator running — on a fresh data folder and free ports of its own, then
left running for ``--minutes`` while this script, as any client would:

- produces a price **raw to Kafka** (a bare confluent-kafka producer, JSON) every
  ``--probe-seconds`` for a market × commodity the simulators do not publish, and times when it
  is served by ``GET /api/v1/prices/live`` — next to when the same price is in ``silver.prices``
  (read with delta-rs: the baseline of the same run, what the pipeline alone takes) — over every
  probe, and over those sent once the first start's work is done (``--settled-minutes``);
- counts the alerts ``GET /api/v1/alerts`` lists, per hour of the run;
- reads each service's CPU over a quiet minute at the end (no request but one a second to the
  API): the API's against its target, the others' as what the default stack costs at rest;
- asks the endpoint behind each dashboard tab whether it has data;
- counts the tracebacks and ERROR lines in the services' logs;
- follows the pipeline's JVM: its heap after each line of progress (``jstat``) and how many JVMs
  it took (a second one: the keeper restarted the pipeline, e.g. after an out-of-memory exit).

    ./run.sh bench first_hour [--minutes 10] [--probe-seconds 10] [--settled-minutes 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from confluent_kafka import Producer

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import SCHEMA_VERSION
from lakehouse.catalog.tables import SILVER_PRICES
from lakehouse.config.settings import PROJECT_ROOT, Settings, load_settings
from lakehouse.io.lake import Lakehouse
from scripts.isolated_stack import stack_env
from scripts.service_logs import FAULT, faults

RUN_SH = str(PROJECT_ROOT / "run.sh")
PROBE_TIMEOUT = 60.0  # a probe not served by then counts as this long
BOARD_TIMEOUT = 600.0  # the first prices on the board (the seeded weeks go first)
#: the endpoint behind each tab of the dashboard (and the forecasts the chart draws)
TABS = {
    "board": "/prices/live",
    "map": "/markets",
    "chart": "/prices/history",
    "alerts": "/alerts",
    "news": "/news",
    "quality": "/quality",
    "supply": "/supply/stock",
    "operations": "/ops/overview",
    "forecasts": "/forecasts",
}


def _get(api: str, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{api}/api/v1{path}", params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()


def _probe_series(api: str, settings: Settings) -> tuple[str, str]:
    """A market × commodity the simulators do not publish (its probes are not overwritten),
    once the board shows the simulators' first prices."""
    began = time.monotonic()
    while not (live := _get(api, "/prices/live")):
        if time.monotonic() - began > BOARD_TIMEOUT:
            raise SystemExit(f"no price on the board {BOARD_TIMEOUT:.0f} s after the start")
        time.sleep(1.0)
    shown = {(r["market_id"], r["commodity"]) for r in live}
    for market_id in sorted({m for m, _ in shown}):
        for commodity in sorted(conf_of(settings).commodities):
            if (market_id, commodity) not in shown:
                return market_id, commodity
    raise SystemExit("every market × commodity is simulated: no series left to probe")


class SilverWatch:
    """Which event ids the commits of ``silver.prices`` added since the watch began: each poll
    reads only the new commits (``LakeTable.added_since``), not the whole table."""

    def __init__(self, settings: Settings) -> None:
        self.lake = Lakehouse(settings)
        version = self.lake[SILVER_PRICES].version()
        self.version = -1 if version is None else version  # none yet: from its first commit
        self.ids: set[str] = set()

    def holds(self, event_id: str) -> bool:
        self.version, rows = self.lake[SILVER_PRICES].added_since(self.version, ["event_id"])
        if rows.num_rows:  # no new commit: a table without columns
            self.ids.update(rows["event_id"].to_pylist())
        return event_id in self.ids


def _served(api: str, series: tuple[str, str], event_id: str) -> bool:
    market_id, commodity = series
    live = _get(api, "/prices/live", market_id=market_id, commodity=commodity)
    return any(r["event_id"] == event_id for r in live)


def probe(api: str, settings: Settings, series: tuple[str, str], price: float) -> dict[str, float]:
    """Seconds from a raw produce to ``/prices/live`` serving it, and to ``silver.prices``."""
    market_id, commodity = series
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "event_type": "price",
        "market_id": market_id,
        "commodity": commodity,
        "price": price,
        "unit": conf_of(settings).commodities[commodity].unit,
        "observed_at": datetime.now(UTC).isoformat(),
        "source": "bench-first-hour",
    }
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    silver = SilverWatch(settings)
    began = time.monotonic()
    key = f"{market_id}:{commodity}"
    producer.produce(settings.kafka.topics.prices, json.dumps(event).encode(), key)
    producer.flush(30)
    seen: dict[str, float] = {}
    while len(seen) < 2 and (waited := time.monotonic() - began) < PROBE_TIMEOUT:
        if "api" not in seen and _served(api, series, event_id):
            seen["api"] = waited
        if "silver" not in seen and silver.holds(event_id):
            seen["silver"] = time.monotonic() - began
        time.sleep(0.05)
    return {k: seen.get(k, PROBE_TIMEOUT) for k in ("api", "silver")}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _services(run_dir: Path) -> dict[str, psutil.Process]:
    """The running services' processes, by name (their ``*.pid`` files)."""
    return {
        pid.stem: psutil.Process(json.loads(pid.read_text())["pid"])
        for pid in sorted(run_dir.glob("*.pid"))
    }


def _cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU seconds of ``process`` and its children (0 for any that is gone)."""
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in family:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:  # ended between the listing and its reading
            continue
    return total


def _pipeline_jvm(run_dir: Path, seen: set[int]) -> psutil.Process | None:
    """The pipeline service's Spark driver (the java process among its children), if running;
    its pid is added to ``seen`` (more than one over a run: the pipeline was restarted)."""
    try:
        family = _services(run_dir)["pipeline"].children(recursive=True)
    except (KeyError, psutil.NoSuchProcess):
        return None
    jvm = next((p for p in family if p.name() == "java"), None)
    if jvm is not None:
        seen.add(jvm.pid)
    return jvm


def _heap_mb(jvm: psutil.Process) -> tuple[float, float]:
    """The heap ``jvm`` uses and its old generation, in MB (``jstat -gc``; NaN if unread)."""
    out = subprocess.run(["jstat", "-gc", str(jvm.pid)], capture_output=True, text=True).stdout
    try:
        row = dict(zip(*(line.split() for line in out.splitlines()[:2]), strict=True))
        used = sum(float(row[k]) for k in ("S0U", "S1U", "EU", "OU"))
        return used / 1024, float(row["OU"]) / 1024
    except (ValueError, KeyError):
        return float("nan"), float("nan")


def _quiet_cpu(api: str, services: dict[str, psutil.Process], seconds: float = 60.0) -> dict:
    """Each service's CPU (percent of one core, its process and children) over ``seconds`` with
    one ``/health`` a second to the API."""
    before = {name: _cpu_seconds(p) for name, p in services.items()}
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        httpx.get(f"{api}/health", timeout=10)
        time.sleep(1)
    spent = time.monotonic() - began
    return {n: 100 * (_cpu_seconds(p) - before[n]) / spent for n, p in services.items()}


def _tabs(api: str) -> dict[str, bool]:
    answers = {}
    for tab, path in TABS.items():
        try:
            body = _get(api, path, **({"minutes": 5} if tab == "operations" else {}))
        except httpx.HTTPError:
            answers[tab] = False
            continue
        items = body.get("items", body.get("panels")) if isinstance(body, dict) else body
        answers[tab] = bool(items)
    return answers


def measure(settings: Settings, env: dict[str, str], minutes: float, every: float) -> dict:
    """Start the stack, probe it for ``minutes``, read what a user would meet; stop it."""
    api = f"http://127.0.0.1:{settings.api.port}"
    began = time.monotonic()
    up = subprocess.run([RUN_SH, "up"], env=env, capture_output=True, text=True, check=False)
    found: dict[str, Any] = {"up_seconds": time.monotonic() - began}
    try:
        if up.returncode != 0:
            raise SystemExit(f"./run.sh up failed:\n{up.stdout}{up.stderr}")
        print(f"./run.sh up (installed) to all healthy: {found['up_seconds']:.1f} s")
        series = _probe_series(api, settings)
        print(f"probing {series[0]} × {series[1]} every {every:g} s for {minutes:g} min")
        times: list[dict[str, float]] = []
        run_dir = Path(env["SMARTMARKET_PATHS__DATA_DIR"]) / "run"
        jvms: set[int] = set()
        running = time.monotonic()
        while time.monotonic() - running < 60 * minutes:
            sent = time.monotonic() - began
            times.append(probe(api, settings, series, 10_000 + len(times)) | {"sent": sent})
            if len(times) % 30 == 0:  # a line every ~5 min: a long run shows where it is
                served = [t["api"] for t in times[-30:]]
                jvm = _pipeline_jvm(run_dir, jvms)
                heap, old = _heap_mb(jvm) if jvm else (float("nan"),) * 2
                print(
                    f"  minute {sent / 60:4.0f}: last 30 probes p50 {statistics.median(served):.2f}"
                    f" s, p95 {_percentile(served, 0.95):.2f} s; pipeline heap {heap:.0f} MB"
                    f" (old {old:.0f} MB), JVMs so far {len(jvms)}",
                    flush=True,
                )
            time.sleep(max(0.0, every - times[-1]["api"]))
        found["times"] = times
        found["hours"] = (time.monotonic() - began) / 3600
        found["alerts"] = _get(api, "/alerts", limit=1000)
        _pipeline_jvm(run_dir, jvms)
        found["pipeline_jvms"] = len(jvms)
        found["cpu"] = _quiet_cpu(api, _services(run_dir))
        found["tabs"] = _tabs(api)
        found["faults"] = faults(settings.paths.log_dir)
    finally:
        subprocess.run([RUN_SH, "down"], env=env, capture_output=True, check=False)
    return found


def _freshness(times: list[dict[str, float]], title: str) -> None:
    api_s, silver_s = ([t[k] for t in times] for k in ("api", "silver"))
    print(f"\n{title}: {len(times)} probes")
    if not times:
        return
    print(f"  {'':<28} {'p50':>7} {'p95':>7} {'max':>7}")
    for label, values in (("produce → /prices/live", api_s), ("produce → silver", silver_s)):
        p50, p95 = statistics.median(values), _percentile(values, 0.95)
        print(f"  {label:<28} {p50:>6.2f}s {p95:>6.2f}s {max(values):>6.2f}s")
    ratio = _percentile(api_s, 0.95) / _percentile(silver_s, 0.95)
    print(f"  /prices/live p95 against silver's (the baseline): {ratio:.2f}")


def report(found: dict[str, Any], settled_minutes: float) -> None:
    times = found["times"]
    _freshness(times, "every probe")
    settled = [t for t in times if t["sent"] >= 60 * settled_minutes]
    _freshness(settled, f"probes from minute {settled_minutes:g} after `up` (the first start done)")
    alerts, hours = len(found["alerts"]), found["hours"]
    print(f"alerts: {alerts} in {60 * hours:.1f} min ({alerts / hours:.0f} per hour)")
    by_rule = Counter(a["rule"] for a in found["alerts"])
    print("  by rule: " + ", ".join(f"{r} {n}" for r, n in by_rule.most_common()))
    by_place = Counter((a["rule"], a.get("region") or "–") for a in found["alerts"])
    print(
        "  most by rule × province: "
        + ", ".join(f"{r} in {w} {n}" for (r, w), n in by_place.most_common(8))
    )
    cpu = found["cpu"]
    print(f"API CPU over a quiet minute: {cpu.get('api', float('nan')):.1f} % of a core")
    print(
        f"  every service, {sum(cpu.values()):.0f} % of a core in all: "
        + ", ".join(f"{n} {c:.0f} %" for n, c in sorted(cpu.items(), key=lambda i: -i[1]))
    )
    print(f"pipeline JVMs over the run: {found['pipeline_jvms']} (more than 1: restarted)")
    tabs = found["tabs"]
    empty = ", ".join(t for t, ok in tabs.items() if not ok) or "none"
    print(f"tabs with data: {sum(tabs.values())} of {len(tabs)} (empty: {empty})")
    print(f"log lines matching {FAULT.pattern!r}: {len(found['faults'])}")
    for line in found["faults"][:10]:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to probe")
    parser.add_argument("--probe-seconds", type=float, default=10.0, help="a probe this often")
    parser.add_argument(
        "--settled-minutes",
        type=float,
        default=5.0,
        help="freshness is also reported for the probes sent this long after `up` on (the "
        "first start's work — the seeded days through gold, the first forecasts — done)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="first-hour-") as data:
        own = stack_env(data)
        os.environ.update(own)  # this process reads the stack's settings as its commands do
        env = dict(os.environ)
        found = measure(load_settings(), env, args.minutes, args.probe_seconds)
        report(found, args.settled_minutes)


if __name__ == "__main__":
    main()
