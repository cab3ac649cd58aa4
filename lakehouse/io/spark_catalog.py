"""Table names for Spark SQL: every table of the registry as an external Delta table
``bronze.x`` / ``silver.x`` / ``gold.x`` in Spark's built-in catalog.

Analyst sessions (``analyst_spark``: `./run.sh query --engine spark`, notebooks) use the Hive
catalog with an embedded Derby metastore under ``<data_dir>/metastore``, so the names persist
between sessions and any Spark session started with ``catalog_conf(settings)`` sees them. The
pipeline's own session keeps Spark's in-memory catalog (it addresses tables by path), so it never
holds the metastore lock. ``register_tables`` is idempotent and cheap; it runs at every analyst
session start to add tables the pipeline created since and to re-point names when the lakehouse
moved (``SMARTMARKET_PATHS__LAKEHOUSE_ROOT``). Registration never touches the data: the tables
are external.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.catalog.tables import TABLES, Layer, Table
from lakehouse.config.settings import ConfigError, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def metastore_dir(settings: Settings) -> Path:
    """The Derby metastore and the (empty) warehouse of the analyst catalog."""
    return settings.paths.data_dir / "metastore"


def catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark options of an analyst session: the Hive catalog over a local Derby metastore
    (both Hive and Derby ship with pyspark; nothing is downloaded)."""
    home = metastore_dir(settings)
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        ),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        # Derby writes derby.log into its system home (default: the working directory)
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
    }


def analyst_spark(settings: Settings) -> SparkSession:
    """A SparkSession with the persistent catalog, every existing table registered.

    Raises ``ConfigError`` when Spark cannot start or the metastore is held by another analyst
    session (embedded Derby admits one process at a time)."""
    from lakehouse.io.spark import get_spark

    metastore_dir(settings).mkdir(parents=True, exist_ok=True)
    try:
        spark = get_spark(settings, extra_conf=catalog_conf(settings))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - Java missing, gateway failure: say so in one line
        raise ConfigError(f"Spark engine unavailable: {_first_line(exc)}") from None
    register_tables(spark, settings)
    return spark


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _registered_location(spark: SparkSession, table: Table) -> str | None:
    if not spark.catalog.tableExists(table.qualified_name):
        return None
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table.qualified_name}").collect()
    return next((r.data_type for r in rows if r.col_name == "Location"), "")


def register_tables(spark: SparkSession, settings: Settings) -> list[Table]:
    """Register every table that exists on disk under its qualified name; return them.

    A name registered at another location (the lakehouse moved) is dropped and re-created;
    a table not written yet is not registered (a query naming it fails as unknown)."""
    from delta.tables import DeltaTable

    try:
        for layer in Layer:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer}")
    except Exception as exc:  # noqa: BLE001 - the metastore is the one thing that can fail here
        raise ConfigError(
            f"Spark catalog unavailable ({metastore_dir(settings)} in use by another Spark "
            f"session? embedded Derby admits one): {_first_line(exc)}"
        ) from None
    registered = []
    for table in TABLES.values():
        path = table.path(settings)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        location = _registered_location(spark, table)
        if location is not None and location.removeprefix("file:").rstrip("/") != str(path):
            spark.sql(f"DROP TABLE {table.qualified_name}")  # external: the data stays
            location = None
        if location is None:
            spark.sql(f"CREATE TABLE {table.qualified_name} USING delta LOCATION '{path}'")
        registered.append(table)
    return registered
