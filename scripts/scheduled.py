"""One scheduled job of ``scripts/crontab``, its output appended to a size-rotated log.

    .venv/bin/python -m scripts.scheduled NAME COMMAND [ARG ...]

runs ``COMMAND`` once and copies its output (stdout and stderr) to ``<log_dir>/NAME.log``, which
rotates like the services' logs (``services.log_max_bytes``, ``services.log_backups``). A line
before and after each run says what ran and how it ended. Exits with the job's exit status, so
cron and ``flock`` see it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from lakehouse.settings import load_settings
from scripts.keeper import RotatingLog, copy_output, describe_exit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.scheduled", description=__doc__)
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
