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
from pathlib import Path
from typing import Any

from lakehouse.settings import Settings

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


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.status NAME``: exit 0 when process NAME reports itself running and
    its status is fresh, 1 otherwise — the health check of a container that runs one process."""
    import argparse

    from lakehouse.settings import load_settings

    parser = argparse.ArgumentParser(description="is this process's status running and fresh?")
    parser.add_argument("name")
    status = read_status(load_settings(), parser.parse_args(argv).name)
    fresh = status is not None and time.time() - status["updated_at"] <= STALE_SECONDS
    return 0 if fresh and status["state"] == "running" else 1


if __name__ == "__main__":
    raise SystemExit(main())
