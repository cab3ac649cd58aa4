"""Where the lakehouse lives: a local folder or an S3-compatible bucket (``s3a://bucket/prefix``).

Table and checkpoint locations are text — a folder path or a URI — joined with ``/`` by
``join`` and never through ``pathlib``. One set of settings (``storage``) and two secrets
(``storage.access_key_id``, ``storage.secret_access_key``) configure every client: Spark's
hadoop-aws (``hadoop_options``), delta-rs (``delta_options``) and pyarrow's file system for the
few direct file reads and writes (``exists``, ``read_text``, ``files``, ``write_text``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import uuid4

from lakehouse.config.secrets import secret
from lakehouse.config.settings import Settings, is_uri

if TYPE_CHECKING:  # imported where a file is reached: every `./run.sh` command imports this module
    from pyarrow import fs


def join(root: str | Path, *parts: str) -> str:
    """``root/part/…`` as text, for a folder or a URI root alike."""
    return "/".join([str(root).rstrip("/"), *(p.strip("/") for p in parts)])


def _keys(settings: Settings) -> tuple[str | None, str | None]:
    return (
        secret(settings, "storage.access_key_id"),
        secret(settings, "storage.secret_access_key"),
    )


def delta_options(settings: Settings) -> dict[str, str]:
    """``storage_options`` of delta-rs for the configured store (empty for a local lakehouse).
    delta-rs commits with S3 conditional writes, so concurrent writers need no lock table."""
    if not is_uri(settings.paths.lakehouse_root):
        return {}
    s = settings.storage
    options = {"AWS_REGION": s.region}
    if s.endpoint:
        options["AWS_ENDPOINT_URL"] = s.endpoint
        options["AWS_ALLOW_HTTP"] = str(s.endpoint.startswith("http://")).lower()
    if s.path_style:
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    key, secret_key = _keys(settings)
    if key and secret_key:
        options |= {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret_key}
    return options


def hadoop_options(settings: Settings) -> dict[str, str]:
    """Spark options of hadoop-aws's S3A file system for the configured store (empty unless the
    lakehouse or checkpoint root is a URI). Spark redacts the keys in its UI and logs."""
    if not any(is_uri(r) for r in (settings.paths.lakehouse_root, settings.paths.checkpoint_root)):
        return {}
    s = settings.storage
    prefix = "spark.hadoop.fs.s3a."
    options = {
        f"{prefix}endpoint.region": s.region,
        f"{prefix}path.style.access": str(s.path_style).lower(),
    }
    if s.endpoint:
        options[f"{prefix}endpoint"] = s.endpoint
        options[f"{prefix}connection.ssl.enabled"] = str(s.endpoint.startswith("https")).lower()
    key, secret_key = _keys(settings)
    if key and secret_key:
        options |= {f"{prefix}access.key": key, f"{prefix}secret.key": secret_key}
    return options


@lru_cache(maxsize=8)
def _s3(
    endpoint: str, region: str, path_style: bool, key: str | None, secret_key: str | None
) -> fs.S3FileSystem:
    """One client per store and keys (a client costs a connection pool and a credentials set-up)."""
    from pyarrow import fs

    url = urlsplit(endpoint) if endpoint else None
    return fs.S3FileSystem(
        access_key=key if key and secret_key else None,
        secret_key=secret_key if key and secret_key else None,
        region=region,
        endpoint_override=url.netloc if url else None,
        scheme=url.scheme if url else "https",
        force_virtual_addressing=not path_style and url is not None,
    )


def _filesystem(settings: Settings, location: str) -> tuple[fs.FileSystem, str]:
    """The pyarrow file system holding ``location`` and the path within it."""
    from pyarrow import fs

    if not is_uri(location):
        return fs.LocalFileSystem(), location
    s = settings.storage
    parts = urlsplit(location)
    return _s3(s.endpoint, s.region, s.path_style, *_keys(settings)), f"{parts.netloc}{parts.path}"


def exists(settings: Settings, location: str) -> bool:
    """Whether a file or folder (for an object store: any object under the prefix) is there."""
    from pyarrow import fs

    store, path = _filesystem(settings, location)
    return store.get_file_info(path).type != fs.FileType.NotFound


def read_text(settings: Settings, location: str) -> str | None:
    """The text of the file at ``location``, or None when there is none."""
    store, path = _filesystem(settings, location)
    try:
        with store.open_input_stream(path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def write_text(settings: Settings, location: str, text: str) -> None:
    """``text`` as the file at ``location``, whole or not at all: a local file is written aside
    and renamed into place; an object store's PUT is atomic by itself."""
    store, path = _filesystem(settings, location)
    staged = path if is_uri(location) else f"{path.rsplit('/', 1)[0]}/.{uuid4()}.tmp"
    with store.open_output_stream(staged) as stream:
        stream.write(text.encode("utf-8"))
    if staged != path:
        store.move(staged, path)


def files(settings: Settings, location: str) -> list[str]:
    """Every file under the folder (or prefix) ``location``, as paths relative to it."""
    from pyarrow import fs

    store, path = _filesystem(settings, location)
    try:
        found = store.get_file_info(fs.FileSelector(path, recursive=True))
    except FileNotFoundError:
        return []
    return [
        f.path.removeprefix(path.rstrip("/") + "/") for f in found if f.type == fs.FileType.File
    ]


def parquet_source(settings: Settings, location: str) -> tuple[str, fs.FileSystem]:
    """(path, file system) for ``pyarrow.parquet.read_table`` of the file at ``location``."""
    store, path = _filesystem(settings, location)
    return path, store
