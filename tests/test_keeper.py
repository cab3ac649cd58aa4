"""The keeper of a service: its log rotates by size, and a service that crashes (kill -9) is
restarted with a back-off, which ``./run.sh status`` reports. Scheduled jobs (scripts/crontab)
write to logs that rotate the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lakehouse.config.backoff import backoff_seconds
from lakehouse.config.cpu_priority import MAX_NICE, kernel_has_autogroups
from scripts.cli import main
from scripts.isolated_stack import isolated_stack
from scripts.keeper import RotatingLog, describe_exit
from scripts.services.supervisor import services


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff_seconds(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_exits_are_described() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit 3"


def test_log_rotates_by_size_and_keeps_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    log = RotatingLog(path, max_bytes=1000, backups=2)
    for n in range(50):
        log.write(f"line {n:04d} {'x' * 90}\n".encode())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size < 1100 for p in tmp_path.iterdir())
    assert (
        b"line 0049" in path.read_bytes() or b"line 0049" in (tmp_path / "svc.log.1").read_bytes()
    )


def test_keeper_writes_the_service_output_to_a_rotated_log(tmp_path: Path) -> None:
    log, state = tmp_path / "chatty.log", tmp_path / "chatty.restarts.json"
    chatty = "import time\nfor n in range(3000): print('line', n, 'x' * 60)\ntime.sleep(60)"
    keeper = subprocess.Popen(
        [sys.executable, "-m", "scripts.keeper", "--name=chatty", f"--log={log}",
         f"--state={state}", "--log-max-bytes=20000", "--log-backups=2", "--backoff=1",
         "--backoff-max=5", "--", sys.executable, "-u", "-c", chatty],
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: any(b"line 2999" in f.read_bytes() for f in tmp_path.glob("chatty.log*")),
            "the output",
        )
    finally:
        os.killpg(keeper.pid, signal.SIGTERM)  # as `./run.sh down` does
        assert keeper.wait(timeout=30) == 0
    assert sorted(p.name for p in tmp_path.glob("chatty.log*")) == [
        "chatty.log", "chatty.log.1", "chatty.log.2"
    ]  # fmt: skip
    assert log.stat().st_size < 21000
    assert not state.exists()  # stopped when asked: not a restart


def test_a_service_below_the_default_runs_with_its_session_lowered(tmp_path: Path) -> None:
    """``--niceness`` (``services.niceness``): the keeper leads the service's session and lowers
    it before the service starts — its nice value and, with autogroups, its session group's."""
    log, state = tmp_path / "low.log", tmp_path / "low.restarts.json"
    show = "import os, pathlib\ng = pathlib.Path('/proc/self/autogroup')\n"
    show += "print('nice', os.nice(0), 'group', g.read_text().split()[-1] if g.exists() else None)"
    keeper = subprocess.Popen(
        [sys.executable, "-m", "scripts.keeper", "--name=low", f"--log={log}",
         f"--state={state}", "--log-max-bytes=20000", "--log-backups=2", "--backoff=60",
         "--backoff-max=60", "--niceness=7", "--", sys.executable, "-u", "-c", show],
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: b"nice" in log.read_bytes() if log.exists() else False, "the output")
    finally:
        os.killpg(keeper.pid, signal.SIGTERM)
        keeper.wait(timeout=30)
    group = "7" if kernel_has_autogroups() else "None"  # the service's session is new: from 0
    nice = min(MAX_NICE, os.nice(0) + 7)  # this session may run lowered already
    assert f"nice {nice} group {group}" in log.read_text()


def test_a_scheduled_job_logs_to_a_rotated_log_and_keeps_its_exit_status(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SMARTMARKET_PATHS__DATA_DIR": str(tmp_path),
        "SMARTMARKET_SERVICES__LOG_MAX_BYTES": "4096",
        "SMARTMARKET_SERVICES__LOG_BACKUPS": "1",
    }
    job = "for n in range(200): print('row', n, 'y' * 40)\nraise SystemExit(3)"
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-m", "scripts.scheduled", "nightly", sys.executable, "-c", job],
            env=env, capture_output=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 3, run.stderr
        assert run.stdout == b""  # everything went to the log, nothing to cron's mail
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["nightly.log", "nightly.log.1"]
    text = b"".join(p.read_bytes() for p in logs.iterdir()).decode()
    assert "nightly: ended: exit 3" in text
    assert "row 199" in text


def test_jobs_sharing_a_lock_never_overlap_and_a_skipped_run_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "SMARTMARKET_PATHS__DATA_DIR": str(tmp_path)}

    def scheduled(name: str, wait: str, seconds: float) -> subprocess.Popen[bytes]:
        job = (
            f"import time; print('{name} working', flush=True); "
            f"print('from', time.time()); time.sleep({seconds}); print('until', time.time())"
        )
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.scheduled", "--lock", "jobs", "--wait", wait, name,
             sys.executable, "-c", job],
            env=env,
        )  # fmt: skip

    log = lambda name: (tmp_path / "logs" / f"{name}.log").read_text()  # noqa: E731
    long = scheduled("nightly", "0", 4)
    wait_for(lambda: (tmp_path / "logs" / "nightly.log").exists() and "working" in log("nightly"),
             "the first job")  # fmt: skip
    assert scheduled("frequent", "0", 0).wait(timeout=60) == 0  # skipped: the lock is taken
    patient = scheduled("patient", "60", 0)  # waits for the lock, then runs
    assert long.wait(timeout=60) == 0 and patient.wait(timeout=60) == 0
    assert "skipped:" in log("frequent") and "working" not in log("frequent")
    assert "patient working" in log("patient") and "ended: exit 0" in log("patient")
    stamp = lambda name, word: float(log(name).split(f"{word} ")[1].split()[0])  # noqa: E731
    assert stamp("patient", "from") >= stamp("nightly", "until")  # one after the other


@pytest.mark.services  # a real Mosquitto under its keeper
def test_a_killed_service_is_restarted_and_status_says_so(tmp_path: Path, capsys) -> None:
    with isolated_stack(tmp_path, ("mosquitto",)) as settings:
        (mosquitto,) = [s for s in services(settings) if s.name == "mosquitto"]
        keeper = mosquitto.process()
        assert keeper is not None
        (broker,) = keeper.children()
        broker.kill()  # kill -9
        wait_for(lambda: mosquitto.restarts().restarts == 1, "the restart")
        wait_for(lambda: mosquitto.health().ok, "a healthy broker again")
        (restarted,) = keeper.children()
        assert restarted.pid != broker.pid
        assert mosquitto.process().pid == keeper.pid
        assert mosquitto.restarts().last_exit == "killed by SIGKILL"
        assert "keeper: mosquitto killed by SIGKILL" in mosquitto.tail(50)

        capsys.readouterr()
        assert main(["status", "mosquitto"]) == 0
        line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("mosquitto"))
        assert line.split()[1:2] + line.split()[3:4] == ["healthy", "1"]
        assert "last exit: killed by SIGKILL" in line
        family = [keeper, restarted]
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_keeper_passes_sigterm_on_when_asked(tmp_path: Path) -> None:
    """The pipeline's keeper alone gets SIGTERM (the driver then stops its JVM itself)."""
    log = tmp_path / "svc.log"
    graceful = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('stopping'), sys.exit(0)))\n"
        "print('up', flush=True)\ntime.sleep(60)"
    )
    keeper = subprocess.Popen(
        [sys.executable, "-m", "scripts.keeper", "--name=svc", f"--log={log}",
         f"--state={tmp_path / 'state.json'}", "--log-max-bytes=100000", "--log-backups=1",
         "--backoff=1", "--backoff-max=5", "--forward-term",
         "--", sys.executable, "-u", "-c", graceful],
        start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: log.exists() and b"up" in log.read_bytes(), "the service")
    keeper.send_signal(signal.SIGTERM)  # the keeper only, not its group
    assert keeper.wait(timeout=30) == 0
    assert b"stopping" in log.read_bytes()
    assert not (tmp_path / "state.json").exists()
