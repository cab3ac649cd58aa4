"""Status files: how long-running processes (the Spark pipeline, the MQTT bridge, the device
simulator) tell the supervisor they are alive and well.

Each writes ``<data_dir>/run/<name>.status.json`` every few seconds; a status older than
``STALE_SECONDS`` means the process hangs.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.config.settings import Settings

STALE_SECONDS = 30.0


def status_path(settings: Settings, name: str) -> Path:
    return settings.paths.run_dir / f"{name}.status.json"


def write_status(settings: Settings, name: str, state: str, **details: Any) -> None:
    """Atomically record ``state`` ("starting", "running", "stopped", "failed") and details."""
    path = status_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"state": state, "updated_at": time.time(), **details}, default=str))
    tmp.replace(path)


def read_status(settings: Settings, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(settings, name).read_text())
    except (OSError, ValueError):
        return None


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: long-running loops poll it to stop gracefully."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


Round = Callable[[], tuple[float, dict[str, Any]]]
"""One round of a service's work: returns when the next round is due (``time.time()`` seconds)
and the details its status should carry until then."""


def next_round_at(interval: float, now: float) -> float:
    """The first multiple of ``interval`` seconds since the epoch after ``now`` (a time in
    seconds): services whose rounds start there run in step, so that their rounds of one
    moment reach Kafka together (one silver batch, not one each)."""
    return (now // interval + 1) * interval


def run_rounds(settings: Settings, name: str, stop: threading.Event, round_: Round) -> None:
    """Call ``round_`` whenever it is due until ``stop`` is set, writing status ``name`` as
    "running" with its details after each round and at least every ``STALE_SECONDS / 3``
    between rounds — so that a round as long as its interval never reads as a hang."""
    due, details = 0.0, {}
    while not stop.is_set():
        if time.time() >= due:
            due, details = round_()
        write_status(settings, name, "running", **details)
        stop.wait(max(0.0, min(due - time.time(), STALE_SECONDS / 3)))


def serve(name: str, run: Callable[[Settings, threading.Event], None]) -> int:
    """The ``main`` of a service that reports in status file ``name``: logging configured, the
    settings loaded, ``run`` until SIGTERM or SIGINT, its state "starting" before and "stopped"
    after. Returns the exit status."""
    from lakehouse.config.logs import configure_logging
    from lakehouse.config.settings import load_settings

    configure_logging()
    settings = load_settings()
    stop = stop_event()
    write_status(settings, name, "starting")
    run(settings, stop)
    write_status(settings, name, "stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.io.status NAME``: exit 0 when process NAME reports itself running and
    its status is fresh, 1 otherwise — the health check of a container that runs one process."""
    import argparse

    from lakehouse.config.settings import load_settings

    parser = argparse.ArgumentParser(description="is this process's status running and fresh?")
    parser.add_argument("name")
    status = read_status(load_settings(), parser.parse_args(argv).name)
    fresh = status is not None and time.time() - status["updated_at"] <= STALE_SECONDS
    return 0 if fresh and status["state"] == "running" else 1


RESTARTS_SUFFIX = ".restarts.json"  # what a service's keeper records (scripts.keeper.Restarts)


def restarts_path(settings: Settings, name: str) -> Path:
    return settings.paths.run_dir / f"{name}{RESTARTS_SUFFIX}"


def restart_counts(settings: Settings) -> dict[str, int]:
    """How often each service's keeper restarted it since the stack started it: 0 for a
    service that has a pid file (``<run_dir>/<name>.pid``) and no restart yet — so that its
    first restart is an increase — else its keeper's count."""
    run_dir = settings.paths.run_dir
    counts = {path.stem: 0 for path in run_dir.glob("*.pid")}
    for path in run_dir.glob(f"*{RESTARTS_SUFFIX}"):
        try:
            counts[path.name.removesuffix(RESTARTS_SUFFIX)] = int(
                json.loads(path.read_text())["restarts"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return counts


def pipeline_progress(settings: Settings) -> str | None:
    """``./run.sh status``'s line on the running pipeline: per query, the records waiting in
    Kafka and the age of its last completed batch (None: the pipeline does not run)."""
    status = read_status(settings, "pipeline")
    if not status or status.get("state") != "running":
        return None
    parts = []
    for query in status.get("queries", []):
        lag, at = query.get("lag"), query.get("last_batch_at")
        lag_text = "" if lag is None else f"{lag} records behind in Kafka, "
        age_text = "no batch yet" if at is None else f"last batch {time.time() - at:.0f}s ago"
        parts.append(f"{query['name']}: {lag_text}{age_text}")
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
