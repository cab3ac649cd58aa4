"""``start_services``: the kinds of service start at once, each after the kinds it needs; the
instances of a kind one after another; a failed start stops what needs it and is raised once
the other starts are done. Stand-in services (no processes) record what happened."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from lakehouse.config.settings import ConfigError, Settings
from scripts.services.base import Service
from scripts.services.kafka_broker import KafkaBroker
from scripts.services.mlflow_server import MlflowServer
from scripts.services.platform_processes import Pipeline
from scripts.services.supervisor import services, start_services

WAIT = 30.0  # seconds a stand-in waits for another's start before it gives up (never reached)


class Recorded(Service):
    """A stand-in whose start records itself; ``log`` and ``begun`` are shared by the test."""

    log: list[str]
    begun: dict[str, threading.Event]

    def __init__(self, settings: Settings, name: str) -> None:
        super().__init__(settings)
        self.name = name

    def start(self) -> str:
        self.begun[self.name].set()
        self.log.append(f"{self.name} begun")
        self.work()
        self.log.append(f"{self.name} done")
        return "started"

    def work(self) -> None:
        """What the start does between its two log lines."""


class Broker(Recorded):
    pass


class Store(Recorded):
    def work(self) -> None:  # returns only once a Broker's start has begun as well: at once
        assert self.begun["broker"].wait(WAIT), "the store's start waited for the broker's"


class Job(Recorded):
    needs = (Broker, Store)


class Broken(Recorded):
    def work(self) -> None:
        raise ConfigError("broken: port taken")


class NeedsBroken(Recorded):
    needs = (Broken,)


@pytest.fixture
def recorded(conf_settings: Settings):
    names = ("broker", "broker-2", "store", "job", "broken", "after")
    Recorded.log, Recorded.begun = [], {n: threading.Event() for n in names}
    yield conf_settings
    del Recorded.log, Recorded.begun


def test_kinds_start_at_once_and_after_what_they_need(recorded: Settings) -> None:
    chosen = [
        Broker(recorded, "broker"),
        Broker(recorded, "broker-2"),
        Store(recorded, "store"),
        Job(recorded, "job"),
    ]
    outcomes = {s.name: o for s, o in start_services(chosen)}
    assert outcomes == dict.fromkeys(["broker", "broker-2", "store", "job"], "started")
    log = Recorded.log
    assert log.index("broker done") < log.index("broker-2 begun")  # a kind in order
    assert log.index("job begun") > max(log.index("broker-2 done"), log.index("store done"))


def test_a_failed_start_is_raised_after_the_others_and_stops_what_needs_it(
    recorded: Settings,
) -> None:
    chosen = [
        Broken(recorded, "broken"),
        NeedsBroken(recorded, "after"),
        Broker(recorded, "broker"),
    ]
    outcomes = {}
    with pytest.raises(ConfigError, match="port taken"):
        for service, outcome in start_services(chosen):
            outcomes[service.name] = outcome
    assert outcomes == {
        "broken": "failed",
        "after": "not started: broken did not start",
        "broker": "started",
    }
    assert "after begun" not in Recorded.log


def test_the_default_stack_looks_like_a_real_day(conf_settings: Settings) -> None:
    """Prices with their history, supply, news and the first forecasts run by default, each
    after what it needs."""
    stack = {s.name: s for s in services(conf_settings)}
    real_day = ("prices", "supply", "news_feeds", "pipeline", "forecasts", "api")
    assert [name for name in stack if name in real_day] == list(real_day)  # the start order
    for name in ("prices", "supply", "news_feeds"):
        assert type(stack[name]).needs == (KafkaBroker,)
    assert type(stack["forecasts"]).needs == (Pipeline, MlflowServer)


def test_a_stepped_clock_leaves_a_running_service_running(
    conf_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's pid file names its process by when it started since the machine booted: a
    step of the wall clock after the start (NTP, a VM's time sync; 29 s once, in CI) leaves it
    running for ``status`` and ``down``, where every service of a stack once looked stopped."""
    paths = conf_settings.paths.model_copy(update={"data_dir": tmp_path})
    service = Pipeline(conf_settings.model_copy(update={"paths": paths}))
    service.settings.paths.run_dir.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        service.record(psutil.Process(sleeper.pid))
        assert service.process().pid == sleeper.pid
        created = psutil.Process(sleeper.pid).create_time()
        boot_time = psutil._pslinux.boot_time  # what create_time adds to the start since boot
        monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: boot_time() + 29)
        assert psutil.Process(sleeper.pid).create_time() - created == pytest.approx(29, abs=1)
        assert service.process().pid == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert service.process() is None
