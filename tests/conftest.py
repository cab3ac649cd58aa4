"""Session fixtures: real services on free loopback ports, one SparkSession per test session.

Every test session gets its own data folder and ports, set through the same environment
variables a user would use, so the code under test reads them with ``load_settings()``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config.settings import (
    PROVINCE_PANEL,
    SAMPLE_PRICES,
    Settings,
    Topics,
    load_settings,
)
from scripts.isolated_stack import PORTS_VARIABLE, share_of_ports, stack_env
from scripts.services.base import Service
from scripts.services.kafka_broker import KafkaBroker
from scripts.services.mlflow_server import MlflowServer
from scripts.services.mqtt_broker import Mosquitto

#: the JIT's quick tier alone (C1) for a JVM that lives minutes: it spends less than the
#: optimising tier's work it would not live to use. The session's driver runs each test's plans
#: once or twice, so little of its code stays hot: tests/test_alerts.py, test_holds.py and
#: test_jvm_judge.py 123 → 107 CPU s of its JVM, the late session's files 208 → 190; a
#: pipeline a test starts, 157 → 134 s (the medallion kill -9 test). The quick tier alone
#: reserves a code cache of 48 MB, not 240: the S3 test's pipeline filled it ("Out of space in
#: CodeCache"), so it keeps the usual size
SHORT_LIVED_JIT = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
#: Spark options of the tests' sessions and of the pipelines and clusters they start (not of
#: the journey's, which runs the default settings): each test's plans run once or twice on a
#: few rows, where compiling them (whole-stage code, then the JIT's work on the classes) and
#: re-planning every stage (adaptive execution) cost more than they save — tests/test_alerts.py
#: took 158 s with them and 96 s without; the results are Spark's either way. No web UI: no test
#: reads one, and a pipeline a test started found the UI port of the session's own driver taken,
#: took the next one (Spark tries 16) and with it, once, the session's pipeline metrics port —
#: the pipeline could not serve its metrics and exited (CI of 961b9f9)
TEST_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.driver.extraJavaOptions": SHORT_LIVED_JIT,
    "spark.executor.extraJavaOptions": SHORT_LIVED_JIT,
}

SERVICE_FIXTURES = {"kafka", "mosquitto", "replayed", "mlflow_server", "postgres"}
SPARK_FIXTURES = {"spark", "replayed"}


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker (``./run.sh test --fast``) chooses free ports in a share of the
    session's of its own, so that no two workers choose the same one between choice and bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, …
    if worker:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        os.environ[PORTS_VARIABLE] = share_of_ports(int(worker.removeprefix("gw")), count)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it needs, from the fixtures it uses: ``services`` (real Kafka,
    Mosquitto, MLflow, or the replayed lakehouse) and ``spark`` — so ``./run.sh test --fast``
    (``-m "not services and not spark and not journey"``) is the quick loop. The first-run
    journey is marked ``journey`` by hand: it starts a whole stack of its own."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if used & SPARK_FIXTURES:
            item.add_marker(pytest.mark.spark)


def _without_stack_env(mp: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("SMARTMARKET_")]:
        mp.delenv(key)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``SMARTMARKET_*`` variable during the test: neither the session's (``settings`` sets
    them once it is used) nor the shell's reach it."""
    _without_stack_env(monkeypatch)


@pytest.fixture(scope="session")
def conf_settings() -> Settings:
    """``conf/settings.yaml`` alone, whatever the environment says: the settings of unit tests,
    so that their results never depend on which fixtures ran before them."""
    with pytest.MonkeyPatch.context() as mp:
        _without_stack_env(mp)
        return load_settings()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The session's services' settings (``stack_env``), read from the environment as a user's
    are. The pipelines the tests start run at the default priority (``spark.niceness`` 0): the
    other sessions of ``./run.sh test`` share the box, and a pipeline below them would wait for
    the CPU (``tests/test_cpu_priority.py`` checks the lowering itself); they and the session's
    own Spark run with ``TEST_SPARK_CONF``."""
    env = stack_env(str(tmp_path_factory.mktemp("stack"))) | {
        "SMARTMARKET_SPARK__NICENESS": "0",
        "SMARTMARKET_SPARK__CONF": json.dumps(TEST_SPARK_CONF),
        # the tests' brokers carry a few thousand events: the JIT's optimising tier would
        # cost them more than it saves (tests/test_cluster_kafka.py, test_kafka.py and
        # test_bronze.py: the Kafka JVMs 58 → 31 CPU s)
        "SMARTMARKET_KAFKA__JAVA_OPTIONS": "-XX:TieredStopAtLevel=1",
    }
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
def mlflow_server(settings: Settings) -> Iterator[Service]:
    yield from _running(MlflowServer(settings))


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from lakehouse.io.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


#: the markets the real series in ``replayed`` fans out to: four of DKI Jakarta (a province with
#: regional medians and region series) and one each of Bali and DI Yogyakarta
REPLAY_MARKETS = ("BA-DPS-BADUNG", "DIY-YK-BERINGHARJO", "IP-001", "IP-003", "IP-004", "IP-005")


@pytest.fixture(scope="session")
def sample_prices() -> Path:
    """The real PIHPS daily price file shipped in ``datasets/``; a missing file fails the test."""
    if not SAMPLE_PRICES.is_file():
        pytest.fail(f"{SAMPLE_PRICES} is missing: the sample data ships with the repository")
    return SAMPLE_PRICES


@pytest.fixture(scope="session")
def province_panel() -> Path:
    """The real PIHPS province panel shipped in ``datasets/``; a missing file fails the test."""
    if not PROVINCE_PANEL.is_file():
        pytest.fail(f"{PROVINCE_PANEL} is missing: the panel ships with the repository")
    return PROVINCE_PANEL


#: the tests replay dated history and expect its alerts (the default raises only news)
HISTORY_ALERTS_HOURS = 24.0 * 365 * 20


def isolated(settings: Settings, root: Path) -> Settings:
    """The session's services, but topics and tables of their own under ``root``; the alerts
    of replayed history raised (``HISTORY_ALERTS_HOURS``)."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    topics = Topics(
        prices=f"{tag}.prices",
        sensors=f"{tag}.sensors",
        deadletter=f"{tag}.dead",
        reviews=f"{tag}.reviews",
        supply=f"{tag}.supply",
        news=f"{tag}.news",
    )
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topics": topics}),
            "paths": settings.paths.model_copy(
                update={"lakehouse_root": root / "lakehouse", "checkpoint_root": root / "chk"}
            ),
            "alerts": settings.alerts.model_copy(update={"max_age_hours": HISTORY_ALERTS_HOURS}),
        }
    )


def secured(settings: Settings, root: Path, keys: list | None = None, **security: Any) -> Settings:
    """``settings`` with a data folder (registry, secrets) of its own and closed reads; users'
    passwords hashed with the fewest rounds allowed (the tests set hundreds of them)."""
    security = {"user_password_rounds": 1_000, **security}
    return settings.model_copy(
        update={
            "paths": settings.paths.model_copy(
                update={"data_dir": root, "lakehouse_root": root / "lakehouse"}
            ),
            "api": settings.api.model_copy(update={"open_reads": False, "keys": keys or []}),
            "security": settings.security.model_copy(update=security),
        }
    )


#: a folder the pytest sessions of ``./run.sh test`` share: the replayed lakehouse is built
#: there once, by the first session that needs it, and read by the others
SHARED_VARIABLE = "SMARTMARKET_TEST_SHARED_DIR"


@pytest.fixture(scope="session")
def replayed(settings, kafka, spark, sample_prices, tmp_path_factory) -> Settings:
    """A lakehouse filled once by the real pipeline: the sample PIHPS file replayed into Kafka
    fanned out to the ``REPLAY_MARKETS``, plus a day of sensor readings of two devices, drained
    through bronze → silver → gold. Returns settings pointing at it; tests must only read it
    (copy it, or use ``isolated``, to write), for it is built once per session — or once for
    all the sessions that share ``SHARED_VARIABLE``'s folder (its checkpoints then name another
    session's topics: nothing may stream on from them)."""
    shared = os.environ.get(SHARED_VARIABLE)
    if not shared:
        return _replay(settings, spark, sample_prices, tmp_path_factory.mktemp("replayed"))
    root = Path(shared) / "replayed"
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building it: wait for it
        if (root / "done").exists():
            return isolated(settings, root)
        for leftover in ("lakehouse", "chk"):  # of a session that failed while building
            shutil.rmtree(root / leftover, ignore_errors=True)
        built = _replay(settings, spark, sample_prices, root)
        (root / "done").touch()
        return built


def _replay(settings: Settings, spark, sample_prices: Path, root: Path) -> Settings:
    """``replayed``'s lakehouse built under ``root``."""
    from lakehouse.catalog.events import SensorEvent
    from lakehouse.io.kafka_io import EventProducer, ensure_topics
    from producers.replay import replay
    from streaming_jobs.medallion import gold_query, silver_query

    replay_settings = isolated(settings, root)
    ensure_topics(replay_settings)
    producer = EventProducer(replay_settings)
    replay(sample_prices, replay_settings, producer, speed=None, fan_out_to=REPLAY_MARKETS)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    for market_id in ("IP-001", "IP-002"):
        device = f"{market_id}-d1"
        for i in range(48):
            at = start + timedelta(minutes=30 * i)
            for metric, value in (("temperature_c", 27 + i % 5), ("humidity_pct", 70 + i % 9)):
                producer.send(
                    SensorEvent(
                        event_id=SensorEvent.reading_id(device, metric, at),
                        market_id=market_id,
                        device_id=device,
                        metric=metric,
                        value=value,
                        observed_at=at,
                        source="sensor-test",
                    )
                )
    producer.flush()
    drain(spark, replay_settings, silver_query, gold_query)
    return replay_settings


def drain(spark, settings: Settings, *queries) -> None:
    """Start each streaming query in turn, let it process everything available, stop it."""
    from streaming_jobs.medallion import drain as run_until_drained

    run_until_drained(spark, settings, *queries)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) for the session; the URL of its ``postgres``
    database. Missing PostgreSQL fails the test: ``./run.sh setup --dev`` installs it."""
    from tests.postgres_server import PostgresMissing, binaries, running_postgres

    try:
        binaries()
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def registry_url(request: pytest.FixtureRequest) -> str:
    """``security.registry_url`` of a registry test, once per backend: "" (SQLite under the
    data folder, the default) and a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return ""
    from tests.postgres_server import new_database

    return new_database(request.getfixturevalue("postgres"))
