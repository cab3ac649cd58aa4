"""``run_rounds``: the loop of every simulator keeps its status fresh through rounds that take
as long as their interval (a status older than ``STALE_SECONDS`` reads as a hang)."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from typing import Any

import pytest

from lakehouse.config.settings import Settings
from lakehouse.io import status


def test_a_status_never_goes_stale_between_slow_rounds(
    conf_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale, interval, work = 0.6, 1.0, 0.1  # an interval longer than the staleness, as the devices'
    writes: list[tuple[float, dict[str, Any]]] = []
    monkeypatch.setattr(status, "STALE_SECONDS", stale)
    monkeypatch.setattr(
        status, "write_status", lambda _s, _n, state, **d: writes.append((time.time(), d))
    )
    rounds: list[float] = []

    def round_() -> tuple[float, dict[str, Any]]:
        began = time.time()
        time.sleep(work)
        rounds.append(began)
        return began + interval, {"detail": f"round {len(rounds)}"}

    stop = threading.Event()
    threading.Timer(2.5, stop.set).start()
    status.run_rounds(conf_settings, "probe", stop, round_)

    assert len(rounds) == 3  # at 0, 1 and 2 s: the interval counts from a round's start
    gaps = [b - a for (a, _), (b, _) in pairwise(writes)]
    assert max(gaps) < stale, gaps
    assert writes[-1][1] == {"detail": "round 3"}
