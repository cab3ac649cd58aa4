"""``run_rounds``: the loop of every simulator keeps its status fresh through rounds that take
as long as their interval (a status older than ``STALE_SECONDS`` reads as a hang). Timed on a
clock of the test's own, so that a busy box cannot change the outcome."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from lakehouse.config.settings import Settings
from lakehouse.io import status


class Clock:
    """``time.time`` for ``run_rounds``, and a stop event whose waits move it on; stopped at
    ``until`` seconds."""

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until

    def time(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self.now >= self.until

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return self.is_set()


def test_a_status_never_goes_stale_between_slow_rounds(
    conf_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale, interval, work = 0.6, 1.0, 0.1  # an interval longer than the staleness, as the devices'
    clock = Clock(until=2.5)
    writes: list[tuple[float, dict[str, Any]]] = []
    monkeypatch.setattr(status, "STALE_SECONDS", stale)
    monkeypatch.setattr(status, "time", clock)
    monkeypatch.setattr(
        status, "write_status", lambda _s, _n, state, **d: writes.append((clock.now, d))
    )
    rounds: list[float] = []

    def round_() -> tuple[float, dict[str, Any]]:
        began = clock.now
        clock.now += work
        rounds.append(began)
        return began + interval, {"detail": f"round {len(rounds)}"}

    status.run_rounds(conf_settings, "probe", clock, round_)  # type: ignore[arg-type]

    assert rounds == pytest.approx([0.0, 1.0, 2.0])  # the interval counts from a round's start
    gaps = [b - a for (a, _), (b, _) in pairwise(writes)]
    assert max(gaps) < stale, gaps
    assert writes[-1][1] == {"detail": "round 3"}


def test_services_with_intervals_that_divide_each_other_start_rounds_together():
    """The devices (every 30 s) and the prices (every 15 s) started at any moment: every
    device round begins with a price round, on the clock's multiples of the interval."""
    for started in (0.0, 7.3, 29.999, 1_764_000_017.5):
        devices, prices = [started], [started]
        while devices[-1] < started + 300:
            devices.append(status.next_round_at(30, devices[-1]))
        while prices[-1] < started + 300:
            prices.append(status.next_round_at(15, prices[-1]))
        assert all(t % 30 == 0 for t in devices[1:])
        assert set(devices[1:-1]) <= set(prices)
        assert [b - a for a, b in pairwise(devices[1:])] == [30.0] * (len(devices) - 2)
