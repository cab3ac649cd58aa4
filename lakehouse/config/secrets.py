"""Secrets: the JWT signing key, service passwords, notifier tokens.

A secret named ``a.b`` comes from the environment variable ``SMARTMARKET_SECRET_A__B`` first,
then from the YAML file ``security.secrets_file`` (default ``<data_dir>/secrets.yaml``, outside
git; a nested mapping: ``a: {b: value}``) — never from the tracked ``conf/settings.yaml``.
Secrets the platform can make itself (the JWT key, the bridge's broker password) are generated
on first use and written to that file with mode 600, so every process of one installation
agrees on them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

import yaml

from lakehouse.config.yaml_text import parse_yaml

ENV_PREFIX = "SMARTMARKET_SECRET_"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper().replace(".", "__").replace("-", "_")


class Installation(Protocol):
    """Where an installation keeps its secrets file: the settings
    (``lakehouse.config.settings.Settings``, which loads its channel tokens through this
    module, so this module does not import it)."""

    @property
    def secrets_file_path(self) -> Path: ...


def secrets_path(settings: Installation) -> Path:
    return settings.secrets_file_path


def _read(path: Path) -> dict[str, Any]:
    try:
        data = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _lookup(data: dict[str, Any], name: str) -> str | None:
    node: Any = data
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if node is None else str(node)


def secret(settings: Installation, name: str) -> str | None:
    """The secret ``name`` from the environment or the secrets file, or None."""
    if (value := os.environ.get(env_name(name))) is not None:
        return value
    return _lookup(_read(secrets_path(settings)), name)


def ensure_secret(settings: Installation, name: str, nbytes: int = 32) -> str:
    """The secret ``name``; when it is nowhere yet, a new random one stored in the secrets file
    (under an exclusive lock, so concurrent first uses agree on one value)."""
    if (value := secret(settings, name)) is not None:
        return value
    path = secrets_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.closing(os.fdopen(fd, "r+", encoding="utf-8")) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        data = parse_yaml(handle.read()) or {}
        if (value := _lookup(data, name)) is not None:
            return value
        node = data
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value = secrets.token_urlsafe(nbytes)
        handle.seek(0)
        handle.truncate()
        handle.write(yaml.safe_dump(data, sort_keys=True))
    return value
