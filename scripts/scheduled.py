"""One scheduled job of ``scripts/crontab``, its output appended to a size-rotated log.

    .venv/bin/python -m scripts.scheduled [--lock LOCK [--wait SECONDS]] NAME COMMAND [ARG ...]

runs ``COMMAND`` once and copies its output (stdout and stderr) to ``<log_dir>/NAME.log``, which
rotates like the services' logs (``services.log_max_bytes``, ``services.log_backups``). A line
before and after each run says what ran and how it ended. Exits with the job's exit status.

Jobs that write the same tables share a lock, ``<run_dir>/LOCK.lock``: a run that finds it taken
waits up to ``--wait`` seconds for it (0: not at all), and is otherwise skipped — with a
``skipped:`` line in its log, so a missed nightly run is never silent.
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from lakehouse.config.settings import load_settings
from scripts.keeper import RotatingLog, copy_output, describe_exit


def take_lock(path: Path, wait: float) -> TextIO | None:
    """An exclusive ``flock`` on ``path``, held until the returned file is closed (or the
    process ends); None if another process still holds it after ``wait`` seconds."""
    held = path.open("a")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return held
        except BlockingIOError:
            if time.monotonic() >= deadline:
                held.close()
                return None
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.01)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.scheduled", description=__doc__)
    p.add_argument(
        "--lock", help="a lock shared with jobs that must not overlap: <run_dir>/LOCK.lock"
    )
    p.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for the lock, else skip the run"
    )
    p.add_argument("name", help="the job's name: its log is <log_dir>/NAME.log")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the job's command line")
    args = p.parse_args(argv)
    if not args.command:
        p.error("no command to run")
    settings = load_settings()
    settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
    svc = settings.services
    log = RotatingLog(
        settings.paths.log_dir / f"{args.name}.log", svc.log_max_bytes, svc.log_backups, args.name
    )
    if args.lock:
        settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        lock = settings.paths.run_dir / f"{args.lock}.lock"
        held = take_lock(lock, args.wait)  # kept open: the lock lasts until this process ends
        if held is None:
            log.line(f"skipped: {lock} still held by another job after {args.wait:g} s")
            return 0
    log.line(f"started: {' '.join(args.command)}")
    try:
        child = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        log.line(f"could not start: {exc}")
        return 127
    returncode = copy_output(child, log)
    log.line(f"ended: {describe_exit(returncode)}")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
