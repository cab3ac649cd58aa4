"""Command line behind ``./run.sh``.

Errors the user can fix (a port taken, Java missing, a bad configuration or input file) print
one line starting with ``error:`` and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.formats import FormatChoice
from lakehouse.cli import analyst, ledger
from lakehouse.config.errors import Handler, InputError
from lakehouse.config.logs import configure_logging
from lakehouse.config.settings import ConfigError, Settings, load_settings
from lakehouse.domain.intake.time_text import parse_time
from lakehouse.io.status import pipeline_progress, stop_event
from ml import cli as ml_cli
from ml import impact_cli
from scripts.services.base import Service
from scripts.services.supervisor import services, start_services, stop_services
from serving_api import cli as api_cli

# Feature packages that add subcommands: each module has ``register(command: CommandFactory)``
# and keeps its module-level imports light (heavy ones go inside the handlers).
COMMAND_MODULES = (api_cli, ml_cli, impact_cli, analyst, ledger)


def _find(settings: Settings, name: str | None) -> list[Service]:
    all_services = services(settings)
    if name is None:
        return all_services
    # a name picks that service, or the group it heads: "spark" = the master and its workers
    chosen = [s for s in all_services if s.name == name or s.name.startswith(f"{name}-")]
    if not chosen:
        raise ConfigError(
            f"unknown service {name!r}; choose one of {', '.join(s.name for s in all_services)}"
        )
    return chosen


def _first_impact_model(settings: Settings) -> None:
    """Fit the impact model from the shipped data when none is saved yet (and say so)."""
    from ml.impact import fit_if_missing

    try:
        done = fit_if_missing(settings)
    except InputError as exc:
        print(f"impact model: not fitted ({exc}); /api/v1/impact answers 503", flush=True)
        return
    if done:
        print(done, flush=True)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    if args.cluster is not None:  # a standalone Spark master and N workers (docs/cluster.md)
        spark = settings.spark
        cluster = spark.cluster.model_copy(update={"workers": args.cluster})
        settings = settings.model_copy(
            update={"spark": spark.model_copy(update={"cluster": cluster})}
        )
    if args.service is None:
        _first_impact_model(settings)
    for service, outcome in start_services(_find(settings, args.service)):
        print(f"{service.name:<10} {outcome}", flush=True)
    print()
    return cmd_status(settings, args)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    for service, outcome in stop_services(list(reversed(_find(settings, args.service)))):
        print(f"{service.name:<10} {outcome}", flush=True)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    unhealthy = 0
    print(f"{'SERVICE':<10} {'STATE':<10} {'PID':>7} {'RESTARTS':>8}  ENDPOINT")
    for service in _find(settings, args.service):
        proc = service.process()
        restarts = "-"
        if proc is None:
            state, detail = "stopped", ""
        else:
            health = service.health()
            state, detail = ("healthy", "") if health.ok else ("unhealthy", f"  ({health.detail})")
            crashes = service.restarts()
            restarts = str(crashes.restarts)
            if crashes.restarts:
                ago = time.time() - crashes.last_exit_at
                detail += f"  (last exit: {crashes.last_exit}, {ago:.0f}s ago)"
        unhealthy += state != "healthy"
        pid = str(proc.pid) if proc else "-"
        where = service.endpoint()
        print(f"{service.name:<10} {state:<10} {pid:>7} {restarts:>8}  {where}{detail}")
    if not settings.kafka.embedded:
        external = f"bootstrap {settings.kafka.bootstrap}"
        print(f"{'kafka':<10} {'external':<10} {'-':>7} {'-':>8}  {external}")
    if (progress := pipeline_progress(settings)) is not None:
        print(f"\nqueries    {progress}")
    print(f"\nlakehouse  {settings.paths.lakehouse_root}\nlogs       {settings.paths.log_dir}")
    print(f"dashboard  http://{settings.api.host}:{settings.api.port}/")
    return 1 if unhealthy else 0


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    chosen = _find(settings, args.service)
    if args.follow:
        files = [str(s.log_file) for s in chosen]
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *files])
    for service in chosen:
        print(f"==> {service.log_file} <==\n{service.tail(args.lines)}\n")
    return 0


def _format_choice(settings: Settings, args: argparse.Namespace) -> FormatChoice:
    """The --format/--map/--set of a command, checked before any file is read."""
    choice = FormatChoice(args.format, tuple(args.map), tuple(args.set))
    choice.resolve([], conf_of(settings).formats)  # an unknown format or bad option fails here
    return choice


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.kafka_io import EventProducer
    from producers.csv_ingest import ingest_file

    choice = _format_choice(settings, args)
    try:
        now = parse_time(args.now, settings.tz) if args.now else None
    except ValueError as exc:
        raise InputError(f"--now: {exc}") from None
    producer = EventProducer(settings)
    for path in args.files:
        print(ingest_file(path, settings, producer, choice, now), flush=True)
    return 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.kafka_io import EventProducer
    from producers.csv_ingest import FolderWatcher

    choice = _format_choice(settings, args)
    watcher = FolderWatcher(args.folder, settings, EventProducer(settings), choice)
    if args.once:
        for summary in watcher.scan_once() + watcher.scan_once():
            print(summary)
        return 0
    print(f"watching {args.folder} (Ctrl-C to stop)", flush=True)
    watcher.run(stop_event())
    return 0


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r} (a number or 'max')") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0")
    return value


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.kafka_io import EventProducer
    from producers.replay import replay

    def when(text: str | None) -> datetime | None:
        try:
            return parse_time(text, settings.tz) if text else None
        except ValueError as exc:
            raise InputError(f"--start/--end: {exc}") from None

    choice = _format_choice(settings, args)
    summary = replay(
        args.file,
        settings,
        EventProducer(settings),
        speed=args.speed,
        start=when(args.start),
        end=when(args.end),
        fan_out_markets=args.fan_out,
        choice=choice,
    )
    print(summary)
    return 0


def cmd_load_history(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.history_staging import Staging
    from producers.history_files import stage_file

    choice = _format_choice(settings, args)
    for path in args.files:
        load, new = stage_file(path, settings, choice)
        print(load if new else f"{path}: staged before, as load {load.number}", flush=True)
    staging = Staging(settings)
    pending = staging.pending()
    if not pending:
        print("nothing to load: every staged file was loaded")
        return 0
    from lakehouse.io.spark import get_spark
    from streaming_jobs.history import run_history

    result = run_history(get_spark(settings), settings, sum(load.records for load in pending))
    staging.mark_loaded(pending)
    print(f"loaded {', '.join(str(load.number) for load in pending)}: {result}")
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.devices import run

    print(
        f"simulating devices on mqtt://{settings.mqtt.host}:{settings.mqtt.port} (Ctrl-C to stop)"
    )
    run(settings, stop_event())
    return 0


def cmd_simulate_supply(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.domain.supply_chain.supply_registry import open_supply_registry
    from lakehouse.io.kafka_io import EventProducer
    from producers.supply_sim import simulate

    start = parse_time(args.start, settings.tz)
    producer = EventProducer(settings)
    entities = open_supply_registry(settings).entities()
    sent = 0
    for event in simulate(entities, settings, start, args.days, args.seed):
        producer.send_supply(event)
        sent += 1
    producer.flush()
    print(
        f"{sent} stock and shipment events of {len(entities)} entities, {args.days} days from "
        f"{start:%Y-%m-%d} -> {settings.kafka.topics.supply}"
    )
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.kafka_io import ensure_topics, topic_layout

    created = ensure_topics(settings)
    for topic, (partitions, replicas) in topic_layout(settings).items():
        state = "created" if topic in created else "exists"
        print(f"{topic:<28} {state:<8} partitions={partitions} replicas={replicas}")
    return 0


def cmd_bridge(settings: Settings, args: argparse.Namespace) -> int:
    from producers.mqtt_bridge import MqttBridge

    return MqttBridge(settings).run(stop_event())


def _format_options(command: argparse.ArgumentParser) -> None:
    """--format/--map/--set: how the columns of a price file become event fields."""
    command.add_argument(
        "--format", metavar="NAME", help="a format of conf/formats/ (default: from the header)"
    )
    command.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read FIELD (price, commodity, observed_at, market_id, region, unit, source) "
        "from COLUMN, e.g. --map price=Harga",
    )
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="give FIELD this value on every row, e.g. --set market_id=PROV-32",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./run.sh", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        return cmd

    for name, handler, help_text in (
        ("up", cmd_up, "start the services and the pipeline (idempotent)"),
        ("down", cmd_down, "stop everything `up` started"),
        ("status", cmd_status, "show what runs and whether it is healthy (exit 1 if not)"),
        ("logs", cmd_logs, "show the logs of one service or all"),
    ):
        cmd = command(name, handler, help_text)
        cmd.add_argument("service", nargs="?", help="only this service")
        if name == "up":
            cmd.add_argument(
                "--cluster",
                type=int,
                metavar="N",
                help="run Spark on a standalone master and N workers on this machine",
            )
        if name == "logs":
            cmd.add_argument("-n", "--lines", type=int, default=50)
            cmd.add_argument("-f", "--follow", action="store_true")

    ingest = command("ingest", cmd_ingest, "publish CSV price/sensor/news files to Kafka, once")
    ingest.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ingest.add_argument(
        "--now",
        help="news files: the time relative dates ('2 jam yang lalu') count back from "
        "(default: the file's modification time), e.g. 2026-11-25T14:00+07:00",
    )
    _format_options(ingest)

    watch = command("watch", cmd_watch, "publish each CSV file dropped into a folder, once")
    watch.add_argument("folder", type=Path, metavar="DIR")
    watch.add_argument("--once", action="store_true", help="take what is there now, then exit")
    _format_options(watch)

    rep = command("replay", cmd_replay, "stream a historical CSV into Kafka in event-time order")
    rep.add_argument("file", type=Path, metavar="FILE")
    _format_options(rep)
    rep.add_argument(
        "--speed",
        type=_speed,
        default=86400.0,
        help="history seconds per wall-clock second (default 86400: a day per second), or max",
    )
    rep.add_argument("--start", help="replay from this time (inclusive), e.g. 2025-01-01")
    rep.add_argument("--end", help="replay until this time (exclusive)")
    rep.add_argument(
        "--fan-out", type=int, default=0, metavar="N", help="synthesise N markets from each series"
    )

    history = command(
        "load-history",
        cmd_load_history,
        "load files of history into bronze/silver/quarantine in bulk: the stream's rules and "
        "verdicts, Spark over the files instead of Kafka (exactly once, resumable)",
    )
    history.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="CSV price/sensor reports (as `ingest` reads them) or JSON lines of events; none: "
        "load what was staged and not loaded yet (a run that stopped)",
    )
    _format_options(history)

    command("simulate", cmd_simulate, "run the simulated MQTT sensor devices in the foreground")
    sim = command(
        "simulate-supply",
        cmd_simulate_supply,
        "publish a simulated supply chain (stock, shipments) of the registry's entities",
    )
    sim.add_argument("--start", default="2025-03-17", help="first simulated day (local)")
    sim.add_argument("--days", type=int, default=7, help="days to simulate (default 7)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (same seed, same events)")
    command("bridge", cmd_bridge, "run the MQTT → Kafka bridge in the foreground")
    command("topics", cmd_topics, "create the platform's Kafka topics on the configured cluster")
    for module in COMMAND_MODULES:
        module.register(command)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(default_level="WARNING")
    try:
        settings = load_settings()
        return args.handler(settings, args)
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
