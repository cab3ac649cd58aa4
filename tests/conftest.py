"""Session fixtures: real services on free loopback ports, one SparkSession per test session.

Every test session gets its own data folder and ports, set through the same environment
variables a user would use, so the code under test reads them with ``load_settings()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.settings import PROJECT_ROOT, Settings, load_settings
from scripts.isolated_stack import stack_env
from scripts.services import KafkaBroker, Mosquitto, Service


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    env = stack_env(str(tmp_path_factory.mktemp("stack")))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_settings()


def _running(service: Service) -> Iterator[Service]:
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[Service]:
    yield from _running(KafkaBroker(settings))


@pytest.fixture(scope="session")
def mosquitto(settings: Settings) -> Iterator[Service]:
    yield from _running(Mosquitto(settings))


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from lakehouse.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def shared_prices() -> Path:
    """The real PIHPS daily price file of ../shared/data (beside the checkout)."""
    path = PROJECT_ROOT.parent / "shared" / "data" / "prices_pihps_daily_2024_2025.csv"
    if not path.exists():
        pytest.skip(f"{path} is not beside the checkout")
    return path


def drain(spark, settings: Settings, *queries) -> None:
    """Start each streaming query in turn, let it process everything available, stop it."""
    for make_query in queries:
        query = make_query(spark, settings)
        try:
            query.processAllAvailable()
        finally:
            query.stop()
