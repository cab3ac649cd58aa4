"""A background service's lower CPU priority holds against the API's session too: its nice
value and, where the kernel has autogroups, its session group's (``lakehouse.config.cpu_priority``).
Each case runs in a child process of its own session, as a service of ``./run.sh up`` does."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from lakehouse.config.cpu_priority import (
    AUTOGROUP,
    MAX_NICE,
    autogroup_nice,
    kernel_has_autogroups,
    lower_priority,
)


def _in_own_session(niceness: int, path: Path, out: mp.Queue) -> None:
    os.setsid()
    before = os.nice(0)
    said = lower_priority(niceness, path)
    out.put((os.nice(0) - before, autogroup_nice(path), said))


def _run(niceness: int, path: Path) -> tuple[int, int | None, str]:
    """Lower a child of a session of its own (as a service runs): what its nice value rose by,
    its group's nice value after, and what it said."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_in_own_session, args=(niceness, path, out))
    child.start()
    result = out.get(timeout=60)
    child.join()
    return result


def test_the_autogroup_file_is_read(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-730 nice 10\n")
    assert autogroup_nice(group) == 10
    assert autogroup_nice(tmp_path / "absent") is None


def test_the_process_and_its_session_group_are_lowered() -> None:
    """On this kernel's own ``/proc/self/autogroup`` when it has autogroups (a new session's
    group starts at 0, so it is then 10), and the nice value alone when it has none. The test's
    own session may be the root group (a CI runner's): only the child's counts."""
    raised, group, said = _run(10, AUTOGROUP)
    assert raised == min(10, MAX_NICE - os.nice(0))  # this session may run lowered already
    if kernel_has_autogroups():
        assert group == 10, said
    else:
        assert (group, said) == (None, f"nice {os.nice(0) + raised}, no autogroups")


def test_a_refused_group_keeps_the_nice_value(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 0\n")
    group.chmod(0o444)
    raised, _, said = _run(5, group)
    nice = min(MAX_NICE, os.nice(0) + 5)
    assert raised == nice - os.nice(0)
    if os.geteuid() == 0:  # root writes a read-only file: the case of a writable group
        assert said == f"nice {nice}, its session's autogroup nice 5"
    else:
        assert said.startswith(f"nice {nice}, autogroup unchanged")


def test_priorities_add_up_to_the_lowest(tmp_path: Path) -> None:
    """A service of a stack run below the default (``services.niceness``) that lowers itself
    again (the pipeline's ``spark.niceness``): both add, at most to 19."""
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-1 nice 10\n")
    _, now, said = _run(15, group)
    assert now == 19, said


def test_no_niceness_changes_nothing() -> None:
    raised, _, said = _run(0, AUTOGROUP)
    assert (raised, said) == (0, "default priority")
