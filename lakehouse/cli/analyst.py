"""Analyst commands: ``query`` (SQL over the lakehouse, time travel, history), ``tables`` (the
data dictionary) and ``maintain`` (table upkeep). Registered in ``scripts/cli.py``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.config.errors import CommandFactory, InputError
from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "csv", "json", "parquet")
DICTIONARY_DOC = PROJECT_ROOT / "docs" / "data-dictionary.md"


def write_result(df: pd.DataFrame, fmt: str, out: Path | None, rows_shown: int) -> None:
    """``df`` as a readable table (first ``rows_shown`` rows and the row count), CSV, JSON lines
    or Parquet, to ``out`` or standard output."""
    if fmt == "parquet":
        if out is None:
            raise InputError("--format parquet needs --out PATH")
        df.to_parquet(out, index=False)
    elif fmt == "csv":
        df.to_csv(out or sys.stdout, index=False)
    elif fmt == "json":
        df.to_json(out or sys.stdout, orient="records", lines=True, date_format="iso")
        if out is None:
            print()
    else:
        shown = df.head(rows_shown)
        count = f"({len(df)} rows{f', first {rows_shown} shown' if len(df) > rows_shown else ''})"
        body = shown.to_string(index=False, max_colwidth=60) if len(df.columns) else ""
        text = f"{body}\n{count}\n" if len(df) else f"{count}\n"
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
    if out is not None:
        print(f"{len(df)} rows written to {out}", file=sys.stderr)


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io.query import Engine, QueryError, history, parse_as_of, run_query

    try:
        if args.history:
            if args.sql or args.as_of:
                raise QueryError("--history takes a table name and no SQL or --as-of")
            result = history(args.history, settings)
        elif not args.sql or not args.sql.strip():
            raise QueryError('give a query, e.g. ./run.sh query "SELECT * FROM gold.price_latest"')
        else:
            as_of = parse_as_of(args.as_of) if args.as_of else None
            engine = Engine(args.engine or settings.analyst.default_engine)
            result = run_query(args.sql, settings, engine, as_of)
    except QueryError as exc:
        raise InputError(str(exc)) from None
    write_result(result, args.format, args.out, settings.analyst.table_rows)
    return 0


def cmd_tables(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.io import dictionary

    if args.docs:
        changed = dictionary.update_doc(DICTIONARY_DOC)
        print(f"{DICTIONARY_DOC}: data dictionary {'updated' if changed else 'already up to date'}")
    elif args.markdown:
        print(dictionary.markdown(), end="")
    else:
        print(dictionary.text(dictionary.describe_all(settings)))
    return 0


def cmd_maintain(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.catalog.tables import TABLES
    from lakehouse.io.maintenance import check_retention, maintain
    from lakehouse.io.query import QueryError, table_named

    hours = args.retention_hours
    if hours is None:
        hours = settings.analyst.retention_hours
    check_retention(hours, settings)
    try:
        tables = [table_named(args.table)] if args.table else list(TABLES.values())
    except QueryError as exc:
        raise ConfigError(str(exc)) from None
    for upkeep in maintain(tables, settings, hours):
        print(upkeep, flush=True)
    return 0


def register(command: CommandFactory) -> None:
    query = command("query", cmd_query, "run SQL over the lakehouse (bronze.*, silver.*, gold.*)")
    query.add_argument("sql", nargs="?", help='e.g. "SELECT * FROM gold.price_latest LIMIT 5"')
    query.add_argument(
        "--engine",
        choices=("spark", "duckdb"),
        help="spark (Spark SQL, persistent catalog) or duckdb (fast, no Spark); "
        "default: analyst.default_engine",
    )
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("--out", type=Path, metavar="PATH", help="write the result here")
    query.add_argument(
        "--as-of", metavar="VERSION|TIMESTAMP", help="time travel: a Delta version or a time"
    )
    query.add_argument("--history", metavar="TABLE", help="the Delta history of a table")

    tables = command("tables", cmd_tables, "the data dictionary: every table and its columns")
    tables.add_argument("--markdown", action="store_true", help="print the page's version")
    tables.add_argument("--docs", action="store_true", help="rewrite it in docs/data-dictionary.md")

    maintain = command(
        "maintain", cmd_maintain, "OPTIMIZE (Z-ORDER), VACUUM and log cleanup; safe while running"
    )
    maintain.add_argument("--table", metavar="NAME", help="only this table, e.g. gold.price_daily")
    maintain.add_argument(
        "--retention-hours",
        type=float,
        metavar="N",
        help="VACUUM retention (default analyst.retention_hours; at least min_retention_hours)",
    )
