"""The pipeline on a Spark standalone cluster of two workers, started as a user would
(``./run.sh up --cluster 2 spark``), its lakehouse in an S3 bucket: the medallion fault dataset
gives the silver, quarantine and gold that local mode gives (``check_outcome`` of the medallion
tests), with one worker killed -9 mid-replay, and the API serves gold from the bucket; and the
options that put a Spark application on such a cluster."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse.catalog.tables import GOLD_PRICE_LATEST, SILVER_PRICES
from lakehouse.config.settings import PROJECT_ROOT, Settings, load_settings
from lakehouse.config.storage import exists, files
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.lake import Lakehouse
from lakehouse.io.spark import (
    class_archive,
    cluster_marker,
    driver_java_options,
    master_url,
    spark_conf,
)
from lakehouse.io.status import restart_counts
from scripts.isolated_stack import free_ports
from scripts.services.spark_cluster import SparkMaster
from serving_api.app import create_app
from streaming_jobs.main import RECOVERABLE
from streaming_jobs.medallion import GOLD_BATCH_DONE
from tests.conftest import isolated
from tests.medallion_data import Dataset, check_outcome, make_dataset, produce, received
from tests.object_store import BUCKET, on_store, running_moto, store_env
from tests.processes import (
    MEDALLION_QUERIES,
    consecutive_free_ports,
    run_cli,
    wait_for,
)


def _with_spark(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"spark": settings.spark.model_copy(update=update)})


def _with_class_archive(settings: Settings, root: Path) -> Settings:
    """``settings`` whose ``jvm/lib`` is ``root``, holding a class archive (an empty file)."""
    paths = settings.paths.model_copy(update={"jvm_lib_dir": root})
    own = settings.model_copy(update={"paths": paths})
    class_archive(own).parent.mkdir(parents=True)
    class_archive(own).touch()
    return own


def test_local_master_keeps_the_driver_on_loopback_and_adds_the_jars(
    settings: Settings, tmp_path: Path
):
    conf = spark_conf(_with_spark(settings, conf={}))  # without the tests' own JVM options
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert "delta-spark" in conf["spark.jars"]
    assert "spark.driver.port" not in conf and "spark.executor.extraClassPath" not in conf
    options = driver_java_options(settings, "local[2]")
    assert conf["spark.driver.extraJavaOptions"].split() == options
    # a local driver maps the class archive once setup has built it (and the test session's
    # driver does: tests/test_spark_delta.py); without one it starts from the jars alone
    without = settings.paths.model_copy(update={"jvm_lib_dir": tmp_path / "none"})
    bare = driver_java_options(settings.model_copy(update={"paths": without}), "local[2]")
    assert not [o for o in bare if "SharedArchiveFile" in o]
    own = _with_class_archive(settings, tmp_path / "lib")
    assert f"-XX:SharedArchiveFile={class_archive(own)}" in driver_java_options(own, "local[2]")


def test_options_of_the_settings_win_and_jvm_options_add_to_the_computed_ones(settings: Settings):
    own = _with_spark(
        settings,
        conf={"spark.sql.adaptive.enabled": "false", "spark.driver.extraJavaOptions": "-Xss4m"},
    )
    conf = spark_conf(own, {"spark.driver.extraJavaOptions": "-Dextra=1"})
    assert conf["spark.sql.adaptive.enabled"] == "false"
    computed = driver_java_options(own, "local[2]")
    assert conf["spark.driver.extraJavaOptions"].split() == [*computed, "-Dextra=1", "-Xss4m"]


def test_cluster_master_puts_the_jars_on_every_classpath(settings: Settings, tmp_path: Path):
    remote = _with_spark(
        settings,
        conf={},  # without the tests' own JVM options
        master="spark://10.0.0.5:7077",
        driver_host="10.0.0.9",
        driver_bind_address="0.0.0.0",
        driver_port=40000,
        block_manager_port=40001,
    )
    conf = spark_conf(remote)
    assert conf["spark.master"] == "spark://10.0.0.5:7077"
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("10.0.0.9", "0.0.0.0")
    assert (conf["spark.driver.port"], conf["spark.driver.blockManager.port"]) == ("40000", "40001")
    assert "spark.jars" not in conf  # nothing shipped to the executors at run time
    assert conf["spark.executor.extraClassPath"] == conf["spark.driver.extraClassPath"]
    computed = conf["spark.executor.extraJavaOptions"]  # the executors' log configuration
    extra = {"spark.executor.extraJavaOptions": "-Xss4m"}
    assert spark_conf(remote, extra)["spark.executor.extraJavaOptions"] == f"{computed} -Xss4m"
    assert "spark-sql-kafka" in conf["spark.executor.extraClassPath"]
    # the driver's classpath starts with jvm/lib's jars: not the one the class archive holds
    own = _with_class_archive(settings, tmp_path)
    assert not [o for o in driver_java_options(own, remote.spark.master) if "SharedArchive" in o]


def test_running_embedded_cluster_replaces_a_local_master(settings: Settings, tmp_path: Path):
    own = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"data_dir": tmp_path})}
    )
    assert master_url(own) == "local[2]"
    cluster_marker(own).parent.mkdir(parents=True)
    cluster_marker(own).write_text("spark://127.0.0.1:7177")
    assert master_url(own) == "spark://127.0.0.1:7177"
    assert master_url(_with_spark(own, master="spark://elsewhere:7077")) == "spark://elsewhere:7077"


def _cluster_ports() -> dict[str, str]:
    """Free ports for the master, its UI and the UIs of two workers."""
    ui = consecutive_free_ports(3)
    return {
        "SMARTMARKET_SPARK__CLUSTER__MASTER_PORT": str(free_ports(1)[0]),
        "SMARTMARKET_SPARK__CLUSTER__UI_PORT": str(ui),
        "SMARTMARKET_SPARK__CLUSTER__WORKER_UI_PORT": str(ui + 1),
    }


def _states(status: str) -> dict[str, str]:
    """Service → state of the lines of `./run.sh status`."""
    return {line.split()[0]: line.split()[1] for line in status.splitlines() if line.strip()}


def own_stack(
    settings: Settings, root: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> Settings:
    """The session's services, with a data folder, topics and checkpoints of its own under
    ``root`` and the lakehouse on the S3 ``endpoint`` (several machines' executors write to one
    store), set in the environment so that `./run.sh` commands of the test use them too."""
    own = on_store(isolated(settings, root), endpoint, BUCKET)
    env = {
        "SMARTMARKET_PATHS__DATA_DIR": str(root / "data"),
        "SMARTMARKET_PATHS__CHECKPOINT_ROOT": str(own.paths.checkpoint_root),
        **store_env(own),
        **{f"SMARTMARKET_KAFKA__TOPICS__{k.upper()}": t for k, t in own.kafka.topics},
        "SMARTMARKET_SERVICES__START_TIMEOUT_SECONDS": "900",  # a busy CI box
        "SMARTMARKET_SPARK__QUERIES": MEDALLION_QUERIES,  # what the test checks
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


class Replayed:
    """A ``wait_for`` condition: true once silver counted every record and gold holds every
    silver batch (``check_outcome`` passes). The pipeline's gold query follows silver in
    batches of its own, so meanwhile a gold table may not exist yet (``TableMissing``) or lack
    the days another one has (a ``KeyError`` of its ``.loc``). The tables are read from the
    bucket (through moto, ~3 s a look on a quiet box) only once another gold batch is done
    since the last look (its line in the pipeline's log, a local file; the batch's commit
    comes later, after its rest of ``spark.gold_interval_seconds``): gold writes every table
    the check reads, the data quality counts included."""

    def __init__(self, settings: Settings, data: Dataset) -> None:
        self.settings, self.data = settings, data
        self.log = settings.paths.log_dir / "pipeline.log"
        self.looked_at = -1  # gold batches done at the last look

    def __call__(self) -> bool:
        done = self.log.read_text(errors="replace").count(GOLD_BATCH_DONE)
        if done == self.looked_at:
            return False
        self.looked_at = done
        if received(self.settings) < self.data.total:
            return False
        try:
            check_outcome(self.settings, self.data)
        except (AssertionError, TableMissing, KeyError):
            return False
        return True


@pytest.mark.timeout(2400)  # six JVMs on a 2-core box
def test_two_workers_on_an_s3_lakehouse_give_local_results_through_a_worker_kill(
    kafka, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The pipeline on two workers, its lakehouse in an S3 bucket (moto's server on loopback),
    one worker killed -9 mid-replay: silver, quarantine and gold as in local mode, every file in
    the bucket, and the API serving gold from it."""
    for key, value in _cluster_ports().items():
        monkeypatch.setenv(key, value)
    with running_moto(tmp_path / "moto.log") as endpoint:
        settings = own_stack(settings, tmp_path, monkeypatch, endpoint)
        master = SparkMaster(settings)
        ensure_topics(settings)
        data = make_dataset(settings)
        produce(settings, data.phases[0])

        workers = ("spark-worker-1", "spark-worker-2")
        try:
            up = run_cli("up", "--cluster", "2", "spark")
            assert up.returncode == 0, up.stdout + up.stderr
            up = run_cli("up", "pipeline")  # finds the cluster running
            assert up.returncode == 0, up.stdout + up.stderr
            status = run_cli("status")
            states = _states(status.stdout)
            assert {n: states[n] for n in ("spark-master", *workers, "pipeline")} == {
                n: "healthy" for n in ("spark-master", *workers, "pipeline")
            }
            apps = (master.master_state() or {}).get("activeapps", [])
            assert [a["name"] for a in apps] == [settings.spark.app_name]
            wait_for(settings, lambda: received(settings) > 0, 900, "a first silver batch")
            assert received(settings) < data.total

            produce(settings, data.phases[1])
            worker = json.loads((settings.paths.run_dir / f"{workers[0]}.pid").read_text())
            os.killpg(worker["pid"], signal.SIGKILL)  # the worker and its executor, mid-batch
            wait_for(settings, Replayed(settings, data), 900, "the whole replay in silver and gold")
            log = (settings.paths.log_dir / "pipeline.log").read_text()
            assert "Lost executor" in log
            if RECOVERABLE[0] in log:  # the worker held blocks a batch had pinned: its query
                # failed and was started again in the same driver, not by the keeper
                assert "query started again from its checkpoint" in log
                assert restart_counts(settings)["pipeline"] == 0
            status = run_cli("status", "spark")
            assert status.returncode == 1 and _states(status.stdout)[workers[0]] == "stopped"
        finally:
            down = run_cli("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not cluster_marker(settings).exists()
        check_outcome(settings, data)

        # every table went to the bucket: nothing local, no `…/s3a:/…` folder anywhere
        assert exists(settings, SILVER_PRICES.log(settings, 0))
        assert any(f.endswith(".parquet") for f in files(settings, SILVER_PRICES.path(settings)))
        assert not list(PROJECT_ROOT.glob("s3a*")) and not list(tmp_path.rglob("s3a*"))
        latest = Lakehouse(settings)[GOLD_PRICE_LATEST].open().to_pyarrow_table().to_pylist()
        with TestClient(create_app(settings)) as client:
            answer = client.get("/api/v1/prices/live")
            assert answer.status_code == 200, answer.text
            got = {(r["market_id"], r["commodity"]): r["price"] for r in answer.json()}
            assert got == {(r["market_id"], r["commodity"]): r["price"] for r in latest}
            ready = client.get("/ready").json()
            assert ready["checks"]["lakehouse"]["ok"], ready
