"""The keeper of one service: runs its command, writes its output to a size-rotated log and
restarts it when it exits without being asked to, after a back-off that doubles.

``scripts.services`` starts every service as ``python -m scripts.keeper … -- COMMAND``. The
keeper is the process of the pid file and the leader of the service's process group. It records
the restarts and the last exit in ``<run_dir>/<name>.restarts.json`` (``./run.sh status`` shows
them). SIGTERM or SIGINT stops it: it passes the signal on to the service when asked to
(``--forward-term``; otherwise the whole group got it already), waits for it and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from lakehouse.config.backoff import backoff_seconds
from lakehouse.config.cpu_priority import lower_priority

CHUNK = 65536


@dataclass
class Restarts:
    """What ``status`` shows of a service's crashes."""

    restarts: int = 0
    last_exit: str = ""
    last_exit_at: float = 0.0

    @classmethod
    def read(cls, path: Path) -> Restarts:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return cls()

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


def describe_exit(returncode: int) -> str:
    """``exit 1`` or ``killed by SIGKILL``."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


class RotatingLog:
    """Appends bytes to ``path``; past ``max_bytes`` it becomes ``path.1`` (``.1`` → ``.2``, …,
    ``backups`` kept) and a new file starts. ``line`` adds a time-stamped line of ``writer``."""

    def __init__(self, path: Path, max_bytes: int, backups: int, writer: str = "keeper") -> None:
        self.path, self.max_bytes, self.backups, self.writer = path, max_bytes, backups, writer
        self.out: BinaryIO = path.open("ab")

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()
        if self.out.tell() >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        self.out.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self.out = self.path.open("ab")

    def line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.write(f"{stamp} {self.writer}: {text}\n".encode())


def copy_output(child: subprocess.Popen[bytes], log: RotatingLog) -> int:
    """Copy the output of ``child`` (stdout, with stderr merged into it) into ``log`` until it
    exits; its exit status."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    while data := os.read(fd, CHUNK):
        log.write(data)
    return child.wait()


class Keeper:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = RotatingLog(args.log, args.log_max_bytes, args.log_backups)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.args.forward_term and self.child.poll() is None:
            self.child.send_signal(signum)

    def run_once(self) -> int:
        """Run the command until it exits, copying its output into the log."""
        self.child = subprocess.Popen(
            self.args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=None
        )
        return copy_output(self.child, self.log)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        failures = 0
        while True:
            started = time.monotonic()
            returncode = self.run_once()
            if self.stopping:
                return 0 if returncode < 0 else returncode
            ran = time.monotonic() - started
            failures = 1 if ran > self.args.backoff_max else failures + 1
            state = Restarts.read(self.args.state)
            state.restarts += 1
            state.last_exit, state.last_exit_at = describe_exit(returncode), time.time()
            state.write(self.args.state)
            wait = backoff_seconds(failures, self.args.backoff, self.args.backoff_max)
            self.log.line(
                f"{self.args.name} {state.last_exit} after {ran:.0f}s; restart {state.restarts} "
                f"in {wait:g}s"
            )
            deadline = time.monotonic() + wait
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, wait))
            if self.stopping:
                return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.keeper", description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--log-max-bytes", type=int, required=True)
    p.add_argument("--log-backups", type=int, required=True)
    p.add_argument("--backoff", type=float, required=True, help="first wait before a restart")
    p.add_argument("--backoff-max", type=float, required=True, help="longest wait")
    p.add_argument("--forward-term", action="store_true", help="pass SIGTERM to the service")
    p.add_argument("--niceness", type=int, default=0, help="the service's CPU priority below")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    lower_priority(args.niceness)  # the keeper leads the service's session: the service inherits
    return Keeper(args).run()


if __name__ == "__main__":
    sys.exit(main())
