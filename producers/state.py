"""What the simulating producers remember across restarts, in small JSON files of the data folder:
the stack's first day (``first_day``), from which the simulated supply chain and the replayed
headlines are dated, and each producer's own progress (``read_state``/``write_state``)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from lakehouse.config.settings import Settings

FIRST_START = "first_start"


def state_path(settings: Settings, name: str) -> Path:
    return settings.paths.data_dir / f"{name}.json"


def read_state(settings: Settings, name: str) -> dict[str, Any]:
    """The state ``name`` recorded (empty when none, or unreadable)."""
    try:
        state = json.loads(state_path(settings, name).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(settings: Settings, name: str, state: dict[str, Any]) -> None:
    """Record ``state`` atomically (a reader sees the old state or the new one)."""
    path = state_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, default=str))
    tmp.replace(path)


def first_day(settings: Settings, today: date) -> date:
    """The local date of the stack's first start: ``today`` unless an earlier call recorded
    one. Services starting together agree: the first to record it wins (a hard link, which
    fails when the file exists), the others read it."""
    path = state_path(settings, FIRST_START)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"day": today.isoformat()}))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return date.fromisoformat(read_state(settings, FIRST_START)["day"])
