"""SQL over the lakehouse, tables addressed by name (``gold.price_daily``), two engines:

- ``duckdb``: the Delta tables read through delta-rs as pyarrow datasets (projection and filters
  pushed down) and exposed to an in-process DuckDB as views ``bronze.x`` / ``silver.x`` /
  ``gold.x``. No Spark, no DuckDB extension: sub-second answers on small queries.
- ``spark``: Spark SQL over the tables registered in the persistent catalog
  (``lakehouse.io.spark_catalog``), for heavy queries.

Time travel (``as_of``: a Delta version or a time) pins every table the query names. Bad SQL,
an unknown table or an unavailable engine raise ``QueryError`` with a one-line message.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import pandas as pd
from deltalake import DeltaTable

from lakehouse.catalog.tables import TABLES, Layer, Table
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

AsOf = int | datetime

#: ``layer.name`` where a table can be named (not part of a longer dotted or quoted name)
_QUALIFIED = re.compile(
    rf"(?<![\w.`\"])({'|'.join(Layer)})\.([A-Za-z_]\w*)\b(?![.(])", re.IGNORECASE
)


class Engine(StrEnum):
    spark = "spark"
    duckdb = "duckdb"


class QueryError(ValueError):
    """The query cannot run: bad SQL, an unknown table, a version that does not exist."""


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def parse_as_of(text: str) -> AsOf:
    """``--as-of`` text: a Delta version number, or an ISO-8601 time (UTC when no offset)."""
    if text.strip().isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(
            f"--as-of {text!r} is neither a version number nor an ISO-8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def table_named(name: str) -> Table:
    """The registry table of a qualified name (``gold.price_daily``)."""
    table = TABLES.get(name.lower())
    if table is None:
        raise QueryError(f"unknown table {name!r}; `./run.sh tables` lists them")
    return table


def referenced_tables(sql: str) -> list[Table]:
    """Registry tables a query names, in order of first mention; a ``layer.x`` that is not in
    the registry is an unknown table."""
    found: dict[str, Table] = {}
    for match in _QUALIFIED.finditer(sql):
        name = f"{match[1]}.{match[2]}".lower()
        found.setdefault(name, table_named(name))
    return list(found.values())


def _opened(table: Table, settings: Settings, as_of: AsOf | None) -> DeltaTable:
    bound = Lakehouse(settings)[table]
    try:
        if isinstance(as_of, int):
            newest = bound.open().version()
            if as_of > newest:
                raise QueryError(f"{table.qualified_name} has no version {as_of}; newest {newest}")
        return bound.open(as_of)
    except TableMissing as exc:
        raise QueryError(str(exc)) from None
    except QueryError:
        raise
    except Exception as exc:  # noqa: BLE001 - delta-rs: log cleaned up, time before creation
        raise QueryError(f"{table.qualified_name} as of {as_of}: {_one_line(exc)}") from None


# ---- DuckDB ---------------------------------------------------------------------------------


def duckdb_connection(
    settings: Settings, tables: list[Table] | None = None, as_of: AsOf | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with schemas bronze/silver/gold and a view per Delta table (``tables``,
    or every table written so far), as of a version or time if given. Times print in UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for layer in Layer:
        con.execute(f"CREATE SCHEMA {layer}")
    for table in TABLES.values() if tables is None else tables:
        try:
            dataset = _opened(table, settings, as_of).to_pyarrow_dataset()
        except QueryError:
            if tables is None:
                continue  # not written yet: no view, a query naming it fails as unknown
            raise
        source = f"delta_{table.layer}_{table.name}"
        con.register(source, dataset)
        con.execute(f"CREATE VIEW {table.qualified_name} AS SELECT * FROM temp.main.{source}")
    return con


def query_duckdb(sql: str, settings: Settings, as_of: AsOf | None = None) -> pd.DataFrame:
    import duckdb

    con = duckdb_connection(settings, referenced_tables(sql), as_of)
    try:
        return con.execute(sql).df()
    except duckdb.Error as exc:
        raise QueryError(_one_line(exc)) from None
    finally:
        con.close()


# ---- Spark ----------------------------------------------------------------------------------


def _pinned(sql: str, settings: Settings, as_of: AsOf) -> str:
    """The query with each table name replaced by its path at ``as_of`` (Spark's temporal
    clause ``VERSION AS OF`` / ``TIMESTAMP AS OF``)."""
    clause = (
        f"VERSION AS OF {as_of}"
        if isinstance(as_of, int)
        else f"TIMESTAMP AS OF '{as_of.astimezone(UTC).isoformat()}'"
    )

    def pin(match: re.Match[str]) -> str:
        table = table_named(f"{match[1]}.{match[2]}")
        return f"delta.`{table.path(settings)}` {clause}"

    return _QUALIFIED.sub(pin, sql)


def query_spark(
    sql: str, settings: Settings, as_of: AsOf | None = None, spark: SparkSession | None = None
) -> pd.DataFrame:
    """Run ``sql`` with Spark; ``spark`` defaults to the analyst session (persistent catalog)."""
    from pyspark.errors import PySparkException

    from lakehouse.io.spark_catalog import analyst_spark, register_tables

    for table in referenced_tables(sql):  # unknown or unwritten tables fail before Spark starts
        _opened(table, settings, as_of)
    if spark is None:
        spark = analyst_spark(settings)
    else:
        register_tables(spark, settings)
    if as_of is not None:
        sql = _pinned(sql, settings, as_of)
    # pyspark also logs each failed query's error with its Java stack; QueryError says it once
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    try:
        return spark.sql(sql).toPandas()
    except PySparkException as exc:
        raise QueryError(_one_line(exc)) from None


def run_query(
    sql: str,
    settings: Settings,
    engine: Engine = Engine.duckdb,
    as_of: AsOf | None = None,
    spark: SparkSession | None = None,
) -> pd.DataFrame:
    """The result of ``sql`` over the lakehouse as a pandas DataFrame, through ``engine``."""
    if engine is Engine.spark:
        return query_spark(sql, settings, as_of, spark)
    return query_duckdb(sql, settings, as_of)


def history(name: str, settings: Settings) -> pd.DataFrame:
    """The Delta history of a table, newest first: version, time, operation and its metrics."""
    table = table_named(name)
    commits = _opened(table, settings, None).history()
    return pd.DataFrame(
        {
            "version": [c.get("version") for c in commits],
            "timestamp": pd.to_datetime([c.get("timestamp") for c in commits], unit="ms", utc=True),
            "operation": [c.get("operation") for c in commits],
            "parameters": [c.get("operationParameters") or {} for c in commits],
            "metrics": [c.get("operationMetrics") or {} for c in commits],
        }
    )
