"""`./run.sh query` over the replayed lakehouse: both engines agree with pandas on the same rows,
time travel returns the earlier version, and every mistake is one `error:` line with exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_PRICE_DAILY,
    GOLD_PRICE_LATEST,
    SILVER_PRICES,
    Table,
)
from lakehouse.config.settings import Settings
from lakehouse.io.query import Engine, QueryError, history, referenced_tables, run_query
from scripts.cli import main

ENGINES = list(Engine)

SHALLOTS_BY_MARKET = """
    SELECT market_id, region, AVG(close) AS mean_close, MAX(high) AS top, COUNT(*) AS days
    FROM gold.price_daily
    WHERE commodity = 'bawang_merah'
    GROUP BY market_id, region
    ORDER BY mean_close DESC, market_id
"""


def delta(settings: Settings, table: Table, version: int | None = None) -> pd.DataFrame:
    return DeltaTable(str(table.path(settings)), version=version).to_pandas()


def query(settings: Settings, engine: Engine, spark, sql: str, as_of=None) -> pd.DataFrame:
    return run_query(sql, settings, engine, as_of, spark=spark)


@pytest.fixture
def lakehouse_env(replayed: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI (``load_settings``) pointed at the replayed lakehouse."""
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(replayed.paths.lakehouse_root))
    return replayed


@pytest.mark.parametrize("engine", ENGINES)
def test_aggregate_equals_pandas(replayed: Settings, spark, engine: Engine) -> None:
    daily = delta(replayed, GOLD_PRICE_DAILY)
    shallots = daily[daily["commodity"] == "bawang_merah"]
    expected = (
        shallots.groupby(["market_id", "region"])
        .agg(mean_close=("close", "mean"), top=("high", "max"), days=("close", "size"))
        .reset_index()
        .sort_values(["mean_close", "market_id"], ascending=[False, True], ignore_index=True)
    )
    got = query(replayed, engine, spark, SHALLOTS_BY_MARKET)
    assert len(got) > 1
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_rows_and_join_equal_pandas(replayed: Settings, spark, engine: Engine) -> None:
    """Row-level reads (timestamps, arrays) and a join across layers."""
    prices = delta(replayed, SILVER_PRICES)
    latest = delta(replayed, GOLD_PRICE_LATEST)
    sql = """
        SELECT p.event_id, p.observed_at, p.flags, l.price AS latest_price
        FROM silver.prices p JOIN gold.price_latest l ON p.event_id = l.event_id
        ORDER BY p.event_id
    """
    got = query(replayed, engine, spark, sql)
    expected = prices.merge(latest[["event_id", "price"]], on="event_id").sort_values(
        "event_id", ignore_index=True
    )
    assert len(got) == len(expected) == len(latest) > 0
    assert got["event_id"].tolist() == expected["event_id"].tolist()
    assert got["latest_price"].tolist() == expected["price_y"].tolist()
    assert [list(r) for r in got["flags"]] == [list(r) for r in expected["flags"]]
    assert (
        pd.to_datetime(got["observed_at"], utc=True).tolist()
        == pd.to_datetime(expected["observed_at"], utc=True).tolist()
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_time_travel(replayed: Settings, spark, engine: Engine) -> None:
    """bronze.market_events is created empty (version 0) before the stream appends to it."""
    versions = history("bronze.market_events", replayed)
    assert versions["version"].iloc[-1] == 0 and versions["version"].iloc[0] >= 1
    created, first_append = versions["timestamp"].iloc[-1], versions["timestamp"].iloc[-2]
    between = (created + (first_append - created) / 2).to_pydatetime()  # commit times may lag
    sql = "SELECT COUNT(*) AS n FROM bronze.market_events"
    assert query(replayed, engine, spark, sql)["n"][0] == len(delta(replayed, BRONZE_EVENTS)) > 0
    assert query(replayed, engine, spark, sql, as_of=0)["n"][0] == 0
    assert query(replayed, engine, spark, sql, as_of=between)["n"][0] == 0
    assert query(replayed, engine, spark, sql, as_of=1)["n"][0] == len(
        delta(replayed, BRONZE_EVENTS, version=1)
    )
    with pytest.raises(QueryError, match="no version 999"):
        query(replayed, engine, spark, sql, as_of=999)


def test_referenced_tables() -> None:
    names = referenced_tables(
        "SELECT * FROM gold.price_daily d JOIN silver.prices p USING (market_id) "
        "WHERE d.close > 0 AND gold.price_daily.close > 1 AND 'x' = GOLD.price_daily.region"
    )
    assert [t.qualified_name for t in names] == ["gold.price_daily", "silver.prices"]
    with pytest.raises(QueryError, match=r"unknown table 'gold\.nope'"):
        referenced_tables("SELECT * FROM gold.nope")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC 1", ""),
        ("SELECT * FROM gold.no_such_table", "unknown table"),
        ("SELECT no_such_column FROM gold.price_daily", ""),
        ("SELECT * FROM gold.forecasts", "does not exist yet"),
    ],
)
def test_mistakes_are_one_error_line(
    lakehouse_env: Settings, spark, capsys, engine: Engine, sql: str, message: str
) -> None:
    assert main(["query", sql, "--engine", engine]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_bad_options_are_one_error_line(
    clean_env, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys
) -> None:
    """Refused from the arguments alone: an empty lakehouse will do."""
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(tmp_path))
    for argv in (
        ["query", "SELECT 1", "--engine", "duckdb", "--as-of", "yesterday"],
        ["query", "SELECT 1", "--engine", "duckdb", "--format", "parquet"],
        ["query", "--history", "gold.nope"],
        ["query", "--engine", "duckdb"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)


def test_output_formats(lakehouse_env: Settings, capsys, tmp_path) -> None:
    sql = "SELECT market_id, commodity, price FROM gold.price_latest ORDER BY 1, 2"
    expected = (
        delta(lakehouse_env, GOLD_PRICE_DAILY)[["market_id", "commodity"]]
        .drop_duplicates()
        .sort_values(["market_id", "commodity"], ignore_index=True)
    )
    assert main(["query", sql, "--engine", "duckdb"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"({len(expected)} rows)")
    assert out.splitlines()[0].split() == ["market_id", "commodity", "price"]

    assert main(["query", sql, "--engine", "duckdb", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [(r["market_id"], r["commodity"]) for r in rows] == list(
        expected.itertuples(index=False, name=None)
    )
    for fmt, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        out_file = tmp_path / f"latest.{fmt}"
        assert (
            main(["query", sql, "--engine", "duckdb", "--format", fmt, "--out", str(out_file)]) == 0
        )
        pd.testing.assert_frame_equal(read(out_file)[["market_id", "commodity"]], expected)


def test_history_command(lakehouse_env: Settings, capsys) -> None:
    assert main(["query", "--history", "bronze.market_events"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE" in out and "WRITE" in out  # created empty, then the batches' appends
