"""Spark's Python worker daemon (``pyspark.daemon``), started with one fix: on Python 3.11 every
task of a Python UDF (the silver query's stateful step among them) spent ~0.1 s re-reading the
directory of ``pyspark.zip`` — PySpark calls ``importlib.invalidate_caches()`` before each task,
and CPython 3.10–3.11's ``zipimporter.invalidate_caches`` re-reads its archive at once instead of
on next use (CPython gh-103200, fixed in 3.12; PySpark SPARK-54744, after 4.0). The archives on
a worker's path never change while it runs, so the workers forked from here keep their zip
directories. Set as ``spark.python.daemon.module`` by ``lakehouse.io.spark``."""

from __future__ import annotations

import zipimport


def _keep_directory(_importer: zipimport.zipimporter) -> None:
    """The archive does not change while the worker runs: nothing to re-read."""


if __name__ == "__main__":
    zipimport.zipimporter.invalidate_caches = _keep_directory  # type: ignore[method-assign]
    from pyspark.daemon import manager

    manager()
