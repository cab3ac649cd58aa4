"""Command line behind ``./run.sh``: up, down, status, logs.

Errors the user can fix (a port taken, Java missing, a bad configuration file) print one line
starting with ``error:`` and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from lakehouse.logs import configure_logging
from lakehouse.settings import ConfigError, Settings, load_settings
from scripts.services import Service, services


def _find(settings: Settings, name: str | None) -> list[Service]:
    all_services = services(settings)
    if name is None:
        return all_services
    chosen = [s for s in all_services if s.name == name]
    if not chosen:
        raise ConfigError(
            f"unknown service {name!r}; choose one of {', '.join(s.name for s in all_services)}"
        )
    return chosen


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    for service in _find(settings, args.service):
        print(f"{service.name:<10} {service.start()}", flush=True)
    print()
    return cmd_status(settings, args)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    for service in reversed(_find(settings, args.service)):
        print(f"{service.name:<10} {service.stop()}", flush=True)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    unhealthy = 0
    print(f"{'SERVICE':<10} {'STATE':<10} {'PID':>7}  ENDPOINT")
    for service in _find(settings, args.service):
        proc = service.process()
        if proc is None:
            state, detail = "stopped", ""
        else:
            health = service.health()
            state, detail = ("healthy", "") if health.ok else ("unhealthy", f"  ({health.detail})")
        unhealthy += state != "healthy"
        pid = str(proc.pid) if proc else "-"
        print(f"{service.name:<10} {state:<10} {pid:>7}  {service.endpoint()}{detail}")
    if not settings.kafka.embedded:
        print(f"{'kafka':<10} {'external':<10} {'-':>7}  bootstrap {settings.kafka.bootstrap}")
    print(f"\nlakehouse  {settings.paths.lakehouse_root}\nlogs       {settings.paths.log_dir}")
    return 1 if unhealthy else 0


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    chosen = _find(settings, args.service)
    if args.follow:
        files = [str(s.log_file) for s in chosen]
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *files])
    for service in chosen:
        print(f"==> {service.log_file} <==\n{service.tail(args.lines)}\n")
    return 0


COMMANDS: dict[str, tuple[Callable[[Settings, argparse.Namespace], int], str]] = {
    "up": (cmd_up, "start the services and the pipeline (idempotent)"),
    "down": (cmd_down, "stop everything `up` started"),
    "status": (cmd_status, "show what runs and whether it is healthy (exit 1 if not)"),
    "logs": (cmd_logs, "show the logs of one service or all"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./run.sh", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("service", nargs="?", help="only this service")
        if name == "logs":
            cmd.add_argument("-n", "--lines", type=int, default=50)
            cmd.add_argument("-f", "--follow", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(default_level="WARNING")
    try:
        settings = load_settings()
        return COMMANDS[args.command][0](settings, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
