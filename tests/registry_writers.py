"""A process that registers devices, for the tests of concurrent registry writers: a module of
its own, so that each spawned process imports the registry alone, not a test module's API."""

from __future__ import annotations

from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.registry import open_registry


def register_many(args: tuple[Settings, int]) -> int:
    """Register 20 devices of IP-003 as writer ``worker``; returns ``worker``."""
    settings, worker = args
    registry = open_registry(settings)
    for i in range(20):
        registry.register_device("IP-003", ["crowd_count"], f"w{worker}-{i}")
    return worker
