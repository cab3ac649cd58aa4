"""``./run.sh ledger``: chain the new silver prices (once, or every N seconds), or verify."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import TYPE_CHECKING

from lakehouse.config.settings import Settings

if TYPE_CHECKING:
    from lakehouse.config.errors import CommandFactory


def cmd_ledger(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.domain import ledger
    from lakehouse.io.status import stop_event

    if args.verify:
        verdict = ledger.verify(settings, args.date)
        print(json.dumps(verdict.as_dict(), default=str, indent=2))
        return 0 if verdict.ok else 1
    stop = stop_event()
    while True:
        appended = ledger.build(settings)
        print(f"{appended} entries appended to the price ledger")
        if not args.follow or stop.wait(args.follow):
            return 0


def register(command: CommandFactory) -> None:
    cmd = command("ledger", cmd_ledger, "hash-chain the new silver prices, or verify the chains")
    cmd.add_argument("--verify", action="store_true", help="verify instead (exit 1 if broken)")
    cmd.add_argument("--date", type=date.fromisoformat, help="with --verify: only this local day")
    cmd.add_argument("--follow", type=float, metavar="SECONDS", help="keep chaining every N s")
