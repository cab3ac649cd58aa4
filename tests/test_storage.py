"""A lakehouse on object storage: locations as URIs, the store's settings for Spark and delta-rs,
and the whole pipeline and the API on an S3 endpoint on loopback (moto's server mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyarrow import fs

from lakehouse.catalog.tables import (
    GOLD_DATA_QUALITY,
    GOLD_PRICE_LATEST,
    SILVER_PRICES,
    query_checkpoint,
)
from lakehouse.config.settings import PROJECT_ROOT, Settings, StorageSettings, load_settings
from lakehouse.config.storage import delta_options, exists, files, hadoop_options, join
from lakehouse.io.fast_read import TableMissing, open_table
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.spark import spark_conf
from producers.replay import replay
from scripts.isolated_stack import free_ports
from serving_api.app import create_app
from tests.conftest import isolated
from tests.processes import start_pipeline, wait_for

KEYS = {
    "SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID": "test-key",
    "SMARTMARKET_SECRET_STORAGE__SECRET_ACCESS_KEY": "test-secret",
}


# ---- locations and options (no store needed) ----------------------------------------------


def test_a_uri_root_stays_a_uri_and_a_folder_resolves(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", "s3a://bucket/prefix/")
    monkeypatch.setenv("SMARTMARKET_PATHS__CHECKPOINT_ROOT", "s3a://bucket/chk")
    settings = load_settings()
    assert settings.paths.lakehouse_root == "s3a://bucket/prefix"
    assert SILVER_PRICES.path(settings) == "s3a://bucket/prefix/silver/prices"
    assert SILVER_PRICES.log(settings, 3) == (
        "s3a://bucket/prefix/silver/prices/_delta_log/00000000000000000003.json"
    )
    assert query_checkpoint(settings, "silver") == "s3a://bucket/chk/queries/silver"

    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", "lh")
    local = load_settings()
    assert local.paths.lakehouse_root == PROJECT_ROOT / "lh"
    assert SILVER_PRICES.path(local) == f"{PROJECT_ROOT}/lh/silver/prices"
    assert join(tmp_path, "a", "b/") == f"{tmp_path}/a/b"


def test_a_local_lakehouse_needs_no_store_options(settings: Settings) -> None:
    assert delta_options(settings) == {}
    assert hadoop_options(settings) == {}
    assert not any(k.startswith("spark.hadoop.fs.s3a") for k in spark_conf(settings))


def on_store(settings: Settings, endpoint: str, bucket: str, path_style: bool = True) -> Settings:
    storage = StorageSettings(endpoint=endpoint, region="eu-central-1", path_style=path_style)
    paths = settings.paths.model_copy(update={"lakehouse_root": f"s3a://{bucket}/lake"})
    return settings.model_copy(update={"paths": paths, "storage": storage})


def test_one_set_of_store_settings_feeds_spark_and_delta_rs(settings, monkeypatch) -> None:
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    s3 = on_store(settings, "http://127.0.0.1:9000", "b")
    assert delta_options(s3) == {
        "AWS_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
    }
    conf = spark_conf(s3)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-central-1"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.access.key"] == "test-key"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "test-secret"

    monkeypatch.delenv("SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID")
    aws = on_store(settings, "", "b", path_style=False)
    assert delta_options(aws) == {"AWS_REGION": "eu-central-1"}  # the AWS default chain
    assert "spark.hadoop.fs.s3a.endpoint" not in spark_conf(aws)


# ---- the pipeline and the API on an S3 endpoint ---------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, with the test keys in the environment."""
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    store = fs.S3FileSystem(
        access_key=KEYS["SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID"],
        secret_key=KEYS["SMARTMARKET_SECRET_STORAGE__SECRET_ACCESS_KEY"],
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        allow_bucket_creation=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            store.create_dir("lakehouse")
            break
        except OSError:
            assert server.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "moto did not answer within 60 s"
            time.sleep(0.5)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in KEYS.items():
            mp.setenv(key, value)
        yield endpoint
    server.terminate()
    server.wait(30)


def stop(pipeline: subprocess.Popen) -> None:
    if pipeline.poll() is None:
        os.killpg(pipeline.pid, signal.SIGTERM)
        try:
            pipeline.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(pipeline.pid, signal.SIGKILL)
            pipeline.wait()


@pytest.mark.timeout(1200)  # a Spark streaming test on a shared two-core machine
def test_pipeline_and_api_on_an_s3_lakehouse(
    settings, kafka, sample_prices, s3_endpoint, tmp_path, monkeypatch
) -> None:
    local = isolated(settings, tmp_path)
    s3 = on_store(local, s3_endpoint, "lakehouse")
    # the pipeline process reads the store's settings from the environment, as a user's would
    monkeypatch.setenv("SMARTMARKET_STORAGE__ENDPOINT", s3_endpoint)
    monkeypatch.setenv("SMARTMARKET_STORAGE__REGION", s3.storage.region)
    monkeypatch.setenv("SMARTMARKET_STORAGE__PATH_STYLE", "true")
    ensure_topics(s3)
    producer = EventProducer(s3)
    summary = replay(sample_prices, s3, producer, speed=None, end=datetime(2024, 3, 1, tzinfo=UTC))
    assert summary.published > 0

    def received() -> int:
        try:
            rows = open_table(GOLD_DATA_QUALITY, s3).to_pyarrow_table(columns=["received"])
        except TableMissing:
            return 0
        return sum(rows.column("received").to_pylist())

    def gold_caught_up() -> bool:
        try:
            latest = open_table(GOLD_PRICE_LATEST, s3).to_pyarrow_table().to_pylist()
        except TableMissing:
            return False
        silver = open_table(SILVER_PRICES, s3).to_pyarrow_table(columns=["market_id", "commodity"])
        return {(r["market_id"], r["commodity"]) for r in latest} == set(
            zip(*silver.to_pydict().values(), strict=True)
        )

    pipeline = start_pipeline(s3)
    try:
        wait_for(s3, lambda: received() >= summary.published, 600, "silver on S3")
        wait_for(s3, gold_caught_up, 300, "gold on S3")
    finally:
        stop(pipeline)

    # every table went to the bucket: nothing local, no `…/s3a:/…` folder anywhere
    assert exists(s3, SILVER_PRICES.log(s3, 0))
    assert any(f.endswith(".parquet") for f in files(s3, SILVER_PRICES.path(s3)))
    assert not (tmp_path / "lakehouse").exists()
    assert not list(PROJECT_ROOT.glob("s3a*")) and not list(tmp_path.rglob("s3a*"))

    latest = open_table(GOLD_PRICE_LATEST, s3).to_pyarrow_table().to_pylist()
    with TestClient(create_app(s3)) as client:
        answer = client.get("/api/v1/prices/live")
        assert answer.status_code == 200, answer.text
        got = {(r["market_id"], r["commodity"]): r["price"] for r in answer.json()}
        assert got == {(r["market_id"], r["commodity"]): r["price"] for r in latest}
        ready = client.get("/ready").json()
        assert ready["checks"]["lakehouse"]["ok"], ready
