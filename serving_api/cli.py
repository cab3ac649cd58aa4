"""``./run.sh api-key ROLE``: mint an API key and print the configuration line that accepts it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from scripts.cli import CommandFactory

ROLES = ("reader", "ingest", "admin")


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from serving_api.auth import HEADER, mint_key

    key, entry = mint_key(args.name or f"{args.role}-key", args.role)
    taken = {k.name for k in settings.api.keys}
    note = (
        f"  (a key named {entry.name!r} exists already: rename one)" if entry.name in taken else ""
    )
    print(f"key (shown once, give it to the client as the {HEADER} header):\n  {key}\n")
    print(f"add under `api: keys:` in conf/settings.yaml, then restart the api:{note}")
    print(f"  - {{name: {entry.name}, role: {entry.role}, sha256: {entry.sha256}}}")
    return 0


def register(command: CommandFactory) -> None:
    cmd = command(
        "api-key", cmd_api_key, "mint an API key for the serving API (reader, ingest, admin)"
    )
    cmd.add_argument("role", choices=ROLES)
    cmd.add_argument("--name", help="a name for the key (who uses it), default ROLE-key")
