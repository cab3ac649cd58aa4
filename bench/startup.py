"""What starting the platform's processes costs, each next to its baseline in the same run.

- **Python imports** of the entry points, each in a fresh interpreter: from the bytecode cached
  at a first import (``./run.sh`` lets its processes write it), and compiled from source, as
  every process did before where ``PYTHONDONTWRITEBYTECODE`` is set (the baseline: an empty
  ``PYTHONPYCACHEPREFIX``).
- **A local Spark driver**: its start, a Delta write and read, and its JVM's CPU, mapping the
  class archive ``./run.sh setup`` builds (``scripts.spark_class_archive``), and with only the
  JDK's own archive (the baseline).
- **``./run.sh up``** of the whole stack on a fresh data folder: when each service was up, then
  a second ``up`` (everything already running) and ``down``.

    ./run.sh bench startup [--repeat 3] [--no-stack]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, load_settings
from lakehouse.io.spark import class_archive
from scripts.isolated_stack import stack_env
from scripts.services.java import jdk_home

MODULES = (
    "pandas",
    "pyspark.sql",
    "mlflow.server",
    "scripts.cli",
    "streaming_jobs.main",
    "serving_api.app",
)


def _seconds(command: list[str], env: dict[str, str]) -> float:
    began = time.monotonic()
    subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return time.monotonic() - began


def imports(repeat: int) -> None:
    print(f"Python imports, a fresh interpreter each (median of {repeat})")
    print(f"  {'module':<22} {'bytecode':>9} {'source':>9} {'ratio':>6}")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    totals = [0.0, 0.0]
    with tempfile.TemporaryDirectory() as empty:
        source = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        for module in MODULES:
            command = [sys.executable, "-c", f"import {module}"]
            _seconds(command, env)  # its bytecode cached, whatever imported it before
            pair = [
                statistics.median(_seconds(command, e) for _ in range(repeat))
                for e in (env, source)
            ]
            totals = [t + p for t, p in zip(totals, pair, strict=True)]
            print(f"  {module:<22} {pair[0]:8.2f}s {pair[1]:8.2f}s {pair[0] / pair[1]:6.2f}")
    print(f"  {'all':<22} {totals[0]:8.2f}s {totals[1]:8.2f}s {totals[0] / totals[1]:6.2f}")


def _driver(archive: bool) -> dict[str, float]:
    """One local driver in a child process: what its start and first Delta work took."""
    command = [sys.executable, "-m", "bench.startup", "--driver", "archive" if archive else "jdk"]
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SMARTMARKET_PATHS__DATA_DIR": data}
        done = subprocess.run(
            command, env=env, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True
        )
    return json.loads(done.stdout.splitlines()[-1])


def run_driver(archive: bool) -> None:
    """The child of ``_driver``: prints its laps as one JSON line."""
    import psutil

    from lakehouse.io.spark import get_spark

    began = time.monotonic()
    settings = load_settings()
    # the JDK's own archive, named last, replaces the class archive: the baseline
    jdk_only = f"-XX:SharedArchiveFile={jdk_home() / 'lib' / 'server' / 'classes.jsa'}"
    spark = get_spark(settings, None if archive else {"spark.driver.extraJavaOptions": jdk_only})
    started = time.monotonic()
    table = str(settings.paths.data_dir / "table")
    spark.range(1000).selectExpr("id", "id % 7 AS k").write.format("delta").save(table)
    spark.read.format("delta").load(table).groupBy("k").count().collect()
    worked = time.monotonic()
    jvm = psutil.Process(spark._jvm.java.lang.ProcessHandle.current().pid()).cpu_times()
    laps = {"start": started - began, "delta": worked - started, "cpu": jvm.user + jvm.system}
    print(json.dumps(laps))


def drivers(repeat: int) -> None:
    settings = load_settings()
    if not class_archive(settings).exists():
        raise ConfigError(f"no class archive at {class_archive(settings)}: run ./run.sh setup")
    print(f"\nA local Spark driver: start, a Delta write and read (median of {repeat})")
    print(f"  {'classes from':<22} {'start':>7} {'+ Delta':>8} {'JVM CPU':>8}")
    rows = {}
    for archive in (True, False):
        runs = [_driver(archive) for _ in range(repeat)]
        rows[archive] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        r = rows[archive]
        label = "the class archive" if archive else "the JDK's archive only"
        print(f"  {label:<22} {r['start']:6.2f}s {r['delta']:7.2f}s {r['cpu']:7.1f}s")
    ratio = {k: rows[True][k] / rows[False][k] for k in rows[True]}
    print(f"  {'ratio':<22} {ratio['start']:7.2f} {ratio['delta']:8.2f} {ratio['cpu']:8.2f}")


def stack() -> None:
    print("\n./run.sh up of the whole stack on a fresh data folder")
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, **stack_env(data)}
        run_sh = [str(PROJECT_ROOT / "run.sh")]
        began = time.monotonic()
        up = subprocess.Popen(
            [*run_sh, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert up.stdout is not None
        try:
            for line in up.stdout:
                if " started" in line or line.startswith(("impact model", "error:")):
                    print(f"  {time.monotonic() - began:6.1f}s  {line.strip()[:70]}")
                elif line.startswith("SERVICE"):
                    break  # the status table: every start is done
            first = time.monotonic() - began
            up.communicate()
            if up.returncode != 0:  # its error line is printed above
                raise SystemExit("./run.sh up failed")
            again = _seconds([*run_sh, "up"], env)
        finally:
            down = _seconds([*run_sh, "down"], env)
    print(f"  up {first:.1f}s, a second up {again:.1f}s, down {down:.1f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-stack", action="store_true", help="skip ./run.sh up and down")
    parser.add_argument("--driver", choices=("archive", "jdk"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        run_driver(args.driver == "archive")
        return
    imports(args.repeat)
    drivers(args.repeat)
    if not args.no_stack:
        stack()


if __name__ == "__main__":
    main()
