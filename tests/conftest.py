"""Session fixtures: real services on free loopback ports, one SparkSession per test session.

Every test session gets its own data folder and ports, set through the same environment
variables a user would use, so the code under test reads them with ``load_settings()``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from lakehouse.settings import Settings, load_settings
from scripts.services import KafkaBroker, Mosquitto


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(data_dir: str) -> dict[str, str]:
    """Environment for an isolated stack: its own data folder and free ports."""
    return {
        "SMARTMARKET_PATHS__DATA_DIR": data_dir,
        "LAKEHOUSE_ROOT": f"{data_dir}/lakehouse",
        "SMARTMARKET_PATHS__CHECKPOINT_ROOT": f"{data_dir}/checkpoints",
        "SMARTMARKET_KAFKA__PORT": str(free_port()),
        "SMARTMARKET_KAFKA__CONTROLLER_PORT": str(free_port()),
        "SMARTMARKET_MQTT__PORT": str(free_port()),
        "SMARTMARKET_MLFLOW__PORT": str(free_port()),
        "SMARTMARKET_API__PORT": str(free_port()),
        "SMARTMARKET_SPARK__UI_PORT": str(free_port()),
        "SMARTMARKET_SPARK__SHUFFLE_PARTITIONS": "2",
        "SMARTMARKET_SPARK__TRIGGER_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    env = stack_env(str(tmp_path_factory.mktemp("stack")))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_settings()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(settings)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mosquitto(settings: Settings) -> Iterator[Mosquitto]:
    broker = Mosquitto(settings)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from lakehouse.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The current environment, for subprocesses that must see the session's settings."""
    return dict(os.environ)
