"""A real PostgreSQL server for the registry's tests: Debian's ``postgresql`` package (``./run.sh
setup --dev`` installs it), a cluster made with ``initdb`` in a temporary folder, started with
``pg_ctl`` on a free loopback port and removed afterwards. PostgreSQL refuses to run as root, so
under root the server runs as the package's ``postgres`` user (``runuser``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from scripts.isolated_stack import free_ports

PACKAGE_BINARIES = "/usr/lib/postgresql/*/bin/initdb"
SERVER_USER = "postgres"


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL is not installed."""


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder."""
    found = sorted(Path("/").glob(PACKAGE_BINARIES.lstrip("/")), key=lambda p: int(p.parts[-3]))
    if not found:
        raise PostgresMissing(
            "PostgreSQL is not installed: run `./run.sh setup --dev` (apt-get install postgresql)"
        )
    return found[-1].parent


def _as_server_user(folder: Path) -> list[str]:
    """The command prefix that runs the server's tools as a user PostgreSQL accepts; under root
    the ``postgres`` user, who then owns ``folder``."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, SERVER_USER, SERVER_USER)
    return ["runuser", "-u", SERVER_USER, "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")


@contextmanager
def running_postgres() -> Iterator[str]:
    """A PostgreSQL server for the duration of the block; yields the SQLAlchemy URL of its
    ``postgres`` database (superuser ``postgres``, trust authentication on loopback)."""
    bin_dir = binaries()
    folder = Path(tempfile.mkdtemp(prefix="smartmarket-pg-"))
    data = folder / "data"
    (port,) = free_ports(1)
    prefix = _as_server_user(folder)
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
              "--auth=trust", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
              "-l", str(folder / "server.log"), "-w", "start"])  # fmt: skip
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(folder)


def new_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
