"""An S3 endpoint on loopback for the tests (moto's server mode) and settings that put a
lakehouse on it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyarrow import fs

from lakehouse.config.settings import Settings, StorageSettings
from scripts.isolated_stack import free_ports

#: the store's keys, as a user sets them (the environment)
KEYS = {
    "SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID": "test-key",
    "SMARTMARKET_SECRET_STORAGE__SECRET_ACCESS_KEY": "test-secret",
}
#: the bucket ``running_moto`` creates
BUCKET = "lakehouse"


def on_store(settings: Settings, endpoint: str, bucket: str, path_style: bool = True) -> Settings:
    """``settings`` whose lakehouse is ``s3a://bucket/lake`` on ``endpoint``."""
    storage = StorageSettings(endpoint=endpoint, region="eu-central-1", path_style=path_style)
    paths = settings.paths.model_copy(update={"lakehouse_root": f"s3a://{bucket}/lake"})
    return settings.model_copy(update={"paths": paths, "storage": storage})


def store_env(settings: Settings) -> dict[str, str]:
    """The environment a process needs to find the store of ``settings`` (``on_store``)."""
    return {
        "SMARTMARKET_PATHS__LAKEHOUSE_ROOT": str(settings.paths.lakehouse_root),
        "SMARTMARKET_STORAGE__ENDPOINT": settings.storage.endpoint,
        "SMARTMARKET_STORAGE__REGION": settings.storage.region,
        "SMARTMARKET_STORAGE__PATH_STYLE": str(settings.storage.path_style).lower(),
        **KEYS,
    }


@contextmanager
def running_moto(log: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port with ``BUCKET`` created; its URL."""
    (port,) = free_ports(1)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    store = fs.S3FileSystem(
        access_key=KEYS["SMARTMARKET_SECRET_STORAGE__ACCESS_KEY_ID"],
        secret_key=KEYS["SMARTMARKET_SECRET_STORAGE__SECRET_ACCESS_KEY"],
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        allow_bucket_creation=True,
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                store.create_dir(BUCKET)
                break
            except OSError:
                assert server.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "moto did not answer within 60 s"
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)
