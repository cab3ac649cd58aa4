"""``./run.sh api-key ROLE``: mint an API key and print the configuration line that accepts it;
``./run.sh user NAME ROLE``: create a user (or reset its role and password) in the registry."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, get_args

from lakehouse.config.settings import ConfigError, Role, Settings

if TYPE_CHECKING:
    from lakehouse.config.errors import CommandFactory

ROLES: tuple[str, ...] = get_args(Role)
MIN_PASSWORD = 12


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


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.domain.accounts.registry import RegistryError, open_registry

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    try:
        open_registry(settings).add_user(args.name, args.role, password)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    print(f"user {args.name!r} has role {args.role!r}: POST /api/v1/auth/token for a token")
    return 0


def register(command: CommandFactory) -> None:
    cmd = command("api-key", cmd_api_key, "mint an API key for the serving API")
    cmd.add_argument("role", choices=ROLES)
    cmd.add_argument("--name", help="a name for the key (who uses it), default ROLE-key")
    user = command("user", cmd_user, "create a user of the API or reset its role and password")
    user.add_argument("name")
    user.add_argument("role", choices=ROLES)
    user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
