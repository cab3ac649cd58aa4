"""A background process's lower share of the CPU beside the API on one box.

Linux's scheduler weighs the CPU between *autogroups* first when the kernel has them
(``/proc/sys/kernel/sched_autogroup_enabled``, on by default in most distributions): every
session is one group, and every service of ``./run.sh up`` runs in a session of its own
(``scripts.services``: ``start_new_session``). A process's own nice value then orders it only
among the processes of its session — against the API, in another session, it changes nothing.
So a lower priority is set twice: the process's nice value (its children — the pipeline's JVM
and Python workers — inherit it) and its session group's (``/proc/self/autogroup``, which an
unprivileged process may raise). Without autogroups the first is the one that counts.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUPS_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
MAX_NICE = 19


def kernel_has_autogroups(path: Path = AUTOGROUPS_ENABLED) -> bool:
    """Whether the kernel groups the CPU by session. A process of init's own session (a CI
    runner's, a container's PID 1 and its children) is then in the root group all the same,
    whose ``/proc/self/autogroup`` reads empty: ``autogroup_nice`` is None there too."""
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return False


def autogroup_nice(path: Path = AUTOGROUP) -> int | None:
    """The nice value of this process's autogroup (``/autogroup-730 nice 10``), or None when
    it has none: the kernel has no autogroups, or the process is in the root group."""
    try:
        return int(path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def lower_priority(niceness: int, path: Path = AUTOGROUP) -> str:
    """Run this process (and what it starts from now on) ``niceness`` lower: its nice value
    and, where the kernel has autogroups, its session group's (``lower_session``). Says what
    was set, for the service's log."""
    if niceness <= 0:
        return "default priority"
    nice = os.nice(niceness)
    return f"nice {nice}, {lower_session(niceness, path)}"


def lower_session(niceness: int, path: Path = AUTOGROUP) -> str:
    """Lower this process's session group — every process of the session, those running
    already included — by ``niceness`` (at most to 19), where the kernel has autogroups. Says
    what was set."""
    group = autogroup_nice(path)
    if group is None:
        return "its session in the root group" if kernel_has_autogroups() else "no autogroups"
    if niceness <= 0:
        return "session unchanged"
    group = min(group + niceness, MAX_NICE)
    try:
        path.write_text(str(group))
    except OSError as exc:  # a kernel or sandbox that refuses: the nice value still holds
        return f"autogroup unchanged: {exc.strerror}"
    return f"its session's autogroup nice {group}"
