"""Where the test suite's time goes: run a command (default: the README's test command,
``./run.sh test``) while sampling every process of the box once a second, then print the wall
time, the CPU seconds by kind of process and how busy the box's cores were.

If the cores were busy nearly all the time, the suite is bound by CPU and running its tests side by
side cannot make it faster on this box: only less work can. The CPU by kind says which work.
A process that lives less than a sampling interval is not seen; the difference between the box's
busy time and what was seen is printed as ``unseen``. ``--top N`` lists the N processes that used
the most, each by the end of its command line and its parent's (a Spark driver's JVM is named
by the Python process that started it: a test session, the pipeline, a benchmark).

    ./run.sh bench suite_cpu                      # the full suite
    ./run.sh bench suite_cpu --top 20 -- bash .ci/run   # any command, its 20 heaviest processes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
#: kinds of process by what their command line holds, the first that matches
KINDS = (
    ("Spark JVM", ("java", "org.apache.spark")),
    ("Kafka JVM", ("java", "kafka.Kafka")),
    ("other JVM", ("java",)),
    ("Spark Python workers", ("python_daemon",)),  # lakehouse.io.python_daemon
    ("pytest", ("pytest",)),
    ("API (uvicorn)", ("uvicorn",)),
    ("MLflow", ("mlflow",)),
    ("other Python", ("python",)),
    ("Mosquitto", ("mosquitto",)),
    ("Prometheus", ("prometheus",)),
    ("PostgreSQL", ("postgres",)),
    ("Chromium", ("chrom",)),
    ("Maven", ("maven",)),
    ("Node (dashboard build)", ("node",)),
)


@dataclass
class Seen:
    kind: str
    base: int  # CPU ticks not to count: what a process had used before the command started
    last: int  # CPU ticks at the newest sample
    name: str  # the ends of its command line and its parent's (``--top``)


def kind_of(command: str) -> str:
    """The kind of a process by its command line (``other`` when none matches)."""
    for kind, words in KINDS:
        if all(w in command for w in words):
            return kind
    return "other"


def _stat(pid: str) -> tuple[int, int, str] | None:
    """(start time, CPU ticks used, parent pid) of a process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]), int(fields[11]) + int(fields[12]), fields[1]


def _command(pid: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _name(pid: str, parent: str) -> str:
    """A process by the ends of its command line and of its parent's."""
    return f"{_command(pid)[-70:]}  <  {_command(parent)[-50:]}"


def box_busy_ticks() -> int:
    """Ticks every core spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def sample(seen: dict[tuple[str, int], Seen], started: bool) -> None:
    """Add or update every process of the box but this one in ``seen`` (by pid and start
    time); a process found before the command ``started`` counts only the CPU it uses from then
    on."""
    own = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat = None if pid == own else _stat(pid)
        if stat is None:
            continue
        start, ticks, parent = stat
        if (pid, start) in seen:
            known = seen[pid, start]
            known.last = ticks
            if known.kind == "other":  # an exec keeps pid and start: `./run.sh test` → pytest
                known.kind, known.name = kind_of(_command(pid)), _name(pid, parent)
        else:
            base = 0 if started else ticks
            seen[pid, start] = Seen(kind_of(_command(pid)), base, ticks, _name(pid, parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--top", type=int, default=0, help="list the N heaviest processes")
    parser.add_argument("command", nargs="*", help="default: ./run.sh test")
    args = parser.parse_args(argv)
    command = args.command or ["./run.sh", "test"]
    seen: dict[tuple[str, int], Seen] = {}
    sample(seen, started=False)
    busy, began = box_busy_ticks(), time.monotonic()
    child = subprocess.Popen(command)
    while child.poll() is None:
        time.sleep(args.every)
        sample(seen, started=True)
    wall = time.monotonic() - began
    busy = (box_busy_ticks() - busy) / TICK
    by_kind: dict[str, float] = defaultdict(float)
    processes: dict[str, int] = defaultdict(int)
    for s in seen.values():
        by_kind[s.kind] += (s.last - s.base) / TICK
        processes[s.kind] += s.last > s.base
    cores = os.cpu_count() or 1
    print(f"\n{' '.join(command)}: exit {child.returncode}, {wall / 60:.1f} min wall")
    print(
        f"box busy {busy:,.0f} CPU s of {wall * cores:,.0f} ({cores} cores): "
        f"{busy / (wall * cores):.0%} utilisation"
    )
    seen_total = sum(by_kind.values())
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        if seconds >= 1:
            print(
                f"  {kind:24} {seconds:8,.0f} CPU s {seconds / busy:6.1%}"
                f"  in {processes[kind]:,} processes"
            )
    print(f"  {'unseen (short-lived)':24} {busy - seen_total:8,.0f} CPU s")
    heaviest = sorted(seen.values(), key=lambda s: s.last - s.base, reverse=True)[: args.top]
    for s in heaviest:
        print(f"{(s.last - s.base) / TICK:8,.0f} CPU s  {s.name}")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
