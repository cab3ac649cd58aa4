"""A lakehouse on object storage: locations as URIs and the store's settings for Spark and
delta-rs. The pipeline and the API on an S3 endpoint run in ``tests/test_cluster.py``."""

from __future__ import annotations

from pathlib import Path

from lakehouse.catalog.tables import SILVER_PRICES, query_checkpoint
from lakehouse.config.settings import PROJECT_ROOT, Settings, load_settings
from lakehouse.config.storage import delta_options, hadoop_options, join
from lakehouse.io.spark import spark_conf
from tests.object_store import KEYS, on_store

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
