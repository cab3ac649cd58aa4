"""The ground every kind of service stands on: a health answer, the probes, the
``Service`` a kind subclasses, and stopping processes (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings
from lakehouse.io.status import restarts_path
from scripts.keeper import Restarts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((socket.gethostbyname(host), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def http_ok(url: str) -> Health:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return Health(False, f"{url}: {type(exc).__name__}")
    return Health(response.status_code == 200, f"{url} -> {response.status_code}")


def tcp_open(host: str, port: int) -> Health:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return Health(True, f"{host}:{port} accepts connections")
    except OSError as exc:
        return Health(False, f"{host}:{port}: {exc.strerror or exc}")


def since_boot(proc: psutil.Process) -> float:
    """When ``proc`` started, in seconds since the machine booted. Its ``create_time`` is the
    wall clock's, which moves when the clock is stepped (NTP, a VM's time sync): a step of 29 s
    once made every service of a running stack look stopped, and ``down`` left them running."""
    return proc.create_time() - psutil.boot_time()


class Service:
    """One supervised process. Subclasses say how to prepare, run and check it."""

    name: str = ""
    #: settings keys of the ports, for messages that tell how to change them
    port_keys: tuple[str, ...] = ()
    #: SIGTERM the whole process group on stop (False: only the leader, which stops its children)
    signal_group: bool = True
    #: ``down`` stops the instances of this kind at once (``stop_services``)
    stops_together: bool = False
    #: the kinds of service that must be up before this one starts (``start_services``)
    needs: tuple[type[Service], ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def instances(cls, settings: Settings) -> list[Service]:
        """The services of this kind the stack runs (one, or none when disabled)."""
        service = cls(settings)
        return [service] if service.enabled() else []

    # --- what subclasses define -------------------------------------------------------
    def enabled(self) -> bool:
        return True

    def ports(self) -> list[int]:
        raise NotImplementedError

    def metrics_ports(self) -> dict[str, int]:
        """The ports of the service's Prometheus endpoint, by setting (none by default)."""
        return {}

    def endpoint(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Check prerequisites and write configuration before the first start."""

    def health(self) -> Health:
        raise NotImplementedError

    def after_start(self) -> None:
        """Work to do once the service is healthy (e.g. create topics)."""

    def environment(self) -> dict[str, str]:
        """Variables the process gets on top of ours."""
        return {}

    def waits_at_start(self) -> bool:
        """Whether ``start`` waits until healthy (False: a later service's start waits for it)."""
        return True

    # --- files ------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.settings.paths.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.paths.log_dir / f"{self.name}.log"

    @property
    def restarts_file(self) -> Path:
        return restarts_path(self.settings, self.name)

    def restarts(self) -> Restarts:
        """How often the keeper restarted the running service, and its last exit."""
        return Restarts.read(self.restarts_file)

    def keeper_command(self) -> list[str]:
        """The service's command under its keeper (log rotation, restarts with back-off)."""
        svc = self.settings.services
        return [
            sys.executable,
            "-m",
            "scripts.keeper",
            f"--name={self.name}",
            f"--log={self.log_file}",
            f"--state={self.restarts_file}",
            f"--log-max-bytes={svc.log_max_bytes}",
            f"--log-backups={svc.log_backups}",
            f"--backoff={svc.restart_backoff_seconds}",
            f"--backoff-max={svc.restart_backoff_max_seconds}",
            f"--niceness={svc.niceness}",
            *([] if self.signal_group else ["--forward-term"]),
            "--",
            *self.command(),
        ]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    # --- process control --------------------------------------------------------------
    def process(self) -> psutil.Process | None:
        """The running process of this service, if its pid file names a live one: the pid,
        started when the file says (``since_boot``; a file of an earlier version has the wall
        clock's ``created``)."""
        try:
            record = json.loads(self.pid_file.read_text())
            proc = psutil.Process(record["pid"])
            if "started" in record:
                same = abs(since_boot(proc) - record["started"]) < 1
            else:
                same = abs(proc.create_time() - record["created"]) < 1
            if same and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        return None

    def record(self, proc: psutil.Process) -> None:
        """Name ``proc`` as this service's process in its pid file (``process`` reads it)."""
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "started": since_boot(proc)}))

    def check_ports(self) -> None:
        """Fail before starting when a port the service would listen on is taken."""
        taken = [*zip(self.port_keys, self.ports(), strict=True), *self.metrics_ports().items()]
        for key, port in taken:
            if not port_is_free(self.host, port):
                env = "SMARTMARKET_" + key.upper().replace(".", "__")
                raise ConfigError(
                    f"{self.name}: port {port} ({key}) is already taken by another process. "
                    f"Stop that process or choose another port with {env}=<port>."
                )

    def start(self) -> str:
        """Start the service unless it already runs; wait until healthy. Returns what it did."""
        if self.process() is not None:
            if self.health().ok or not self.waits_at_start():
                return "already running"
            self.wait_healthy(self.process())
            return "already running (became healthy)"
        self.check_ports()
        self.prepare()
        self.settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
        self.restarts_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.environment(),
        }
        with self.log_file.open("ab") as out:  # the keeper's own errors; it writes the rest
            popen = subprocess.Popen(
                self.keeper_command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
                env=env,
                start_new_session=True,
            )
        proc = psutil.Process(popen.pid)
        self.record(proc)
        log.info("service started", extra={"service": self.name, "pid": proc.pid})
        if self.waits_at_start():
            try:
                self.wait_healthy(proc, fresh=True)
            except ConfigError:
                self.stop()  # no crash loop, nothing left behind
                raise
            self.after_start()
        return f"started (pid {proc.pid})"

    def wait_healthy(self, proc: psutil.Process | None, fresh: bool = False) -> None:
        """Wait until the service is healthy; ConfigError when its process ends first, when a
        ``fresh`` start exited (the keeper would restart it) or after the start timeout."""
        deadline = time.monotonic() + self.settings.services.start_timeout_seconds
        health = Health(False, "not checked yet")
        while time.monotonic() < deadline:
            if proc is None or not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                self.pid_file.unlink(missing_ok=True)
                raise ConfigError(
                    f"{self.name} exited during start-up. Last lines of {self.log_file}:\n"
                    + self.tail(20)
                )
            if fresh and self.restarts().restarts:
                raise ConfigError(
                    f"{self.name} exited during start-up ({self.restarts().last_exit}). Last "
                    f"lines of {self.log_file}:\n" + self.tail(20)
                )
            health = self.health()
            if health.ok:
                return
            time.sleep(0.5)
        raise ConfigError(
            f"{self.name} did not become healthy within "
            f"{self.settings.services.start_timeout_seconds:.0f}s ({health.detail}); "
            f"see {self.log_file}"
        )

    def stop(self) -> str:
        """SIGTERM, SIGKILL after ``services.stop_timeout_seconds``: what became of it."""
        return stop_together([self])[0]

    def before_stop(self) -> None:
        """Called by ``stop`` first, whether the service runs or not."""

    def tail(self, lines: int) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


def _exited(proc: psutil.Process) -> bool:
    """Gone, or a zombie: exited, waiting only to be reaped by its parent — a keeper's parent
    is init, which may reap seconds later."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_exited(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each of ``procs`` has exited or ``timeout`` seconds have passed; those that
    have not."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if not _exited(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def stop_together(stopping: list[Service]) -> list[str]:
    """Stop ``stopping`` at once: SIGTERM to each, then one wait for them all, SIGKILL to what
    is left after ``services.stop_timeout_seconds``. What became of each, in order."""
    families: list[list[psutil.Process]] = []
    for service in stopping:
        service.before_stop()
        proc = service.process()
        family = [proc, *proc.children(recursive=True)] if proc is not None else []
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                if service.signal_group:
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    proc.send_signal(signal.SIGTERM)
        families.append(family)
    timeout = max((s.settings.services.stop_timeout_seconds for s in stopping), default=0)
    alive = _wait_exited([p for f in families for p in f], timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _wait_exited(alive, 5)
    outcomes = []
    for service, family in zip(stopping, families, strict=True):
        service.pid_file.unlink(missing_ok=True)
        killed = [p for p in family if p in alive]
        if family:
            log.info("service stopped", extra={"service": service.name, "killed": len(killed)})
        outcomes.append(
            "not running" if not family else f"killed after {timeout:.0f}s" if killed else "stopped"
        )
    return outcomes
