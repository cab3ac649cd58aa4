"""`./run.sh maintain` while the pipeline runs: OPTIMIZE/VACUUM/log cleanup during a live replay
loses nothing, the streams keep running, and a second pass changes no table's content."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_DATA_QUALITY,
    GOLD_PRICE_DAILY,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
    TABLES,
    Table,
)
from lakehouse.config.settings import ConfigError, Settings
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from lakehouse.io.maintenance import maintain, zorder_columns
from producers.replay import ReplaySummary, replay
from scripts.cli import main
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import isolated

#: what the streams write to while maintenance runs: the streaming source (bronze), a partitioned
#: append table, the MERGEd gold tables and the quality log
LIVE_TABLES = [
    TABLES[name]
    for name in (
        "bronze.market_events",
        "silver.prices",
        "gold.price_latest",
        "gold.price_daily",
        "gold.data_quality",
    )
]
FIRST_HALF = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
SECOND_HALF = (datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))
SECOND_HALF_SECONDS = 12  # the second half trickles in while maintenance passes run
MARKETS = 3


def rows(settings: Settings, table: Table) -> pd.DataFrame:
    return DeltaTable(str(table.path(settings))).to_pandas()


def contents(settings: Settings) -> dict[str, pd.DataFrame]:
    """The rows of the live tables in a canonical order."""
    frames = {}
    for table in LIVE_TABLES:
        df = rows(settings, table)
        order = df.astype(str).sort_values(list(df.columns)).index
        frames[table.qualified_name] = df.loc[order].reset_index(drop=True)
    return frames


def test_zorder_columns() -> None:
    assert zorder_columns(GOLD_PRICE_DAILY, ["market_id", "commodity", "region", "date"]) == (
        "commodity",
        "market_id",
        "date",
    )
    # partition columns cannot be Z-ordered; bronze has no filter columns: plain compaction
    assert zorder_columns(SILVER_PRICES, ["market_id", "commodity", "observed_date"]) == (
        "commodity",
        "market_id",
    )
    assert zorder_columns(BRONZE_EVENTS, ["topic", "value", "ingest_date"]) == ()


def test_retention_below_minimum_is_refused(conf_settings: Settings, clean_env, capsys) -> None:
    settings = conf_settings
    hours = settings.analyst.min_retention_hours / 2
    assert main(["maintain", "--retention-hours", str(hours)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --retention-hours") and err.count("\n") == 1
    with pytest.raises(ConfigError):
        maintain([], settings, hours)


@pytest.mark.timeout(1800)  # a Spark streaming test on a shared two-core machine
def test_maintain_during_live_replay(settings, kafka, spark, sample_prices, tmp_path) -> None:
    live = isolated(settings, tmp_path)
    ensure_topics(live)
    producer = EventProducer(live)
    summaries: list[ReplaySummary] = []

    def publish(window: tuple[datetime, datetime], speed: float | None) -> None:
        start, end = window
        summaries.append(replay(sample_prices, live, producer, speed, start, end, MARKETS))

    publish(FIRST_HALF, None)
    queries = [silver_query(spark, live), gold_query(spark, live)]
    try:
        deadline = time.monotonic() + 600
        while not SparkLake(spark, live)[SILVER_PRICES].exists():  # a first silver batch is through
            assert time.monotonic() < deadline and all(q.isActive for q in queries)
            time.sleep(1)
        speed = (SECOND_HALF[1] - SECOND_HALF[0]).total_seconds() / SECOND_HALF_SECONDS
        feeder = threading.Thread(target=publish, args=(SECOND_HALF, speed))
        feeder.start()
        passes = []
        while feeder.is_alive():  # one pass after another while the streams commit the trickle
            passes.append(maintain(LIVE_TABLES, live, live.analyst.retention_hours))
            time.sleep(1)
        feeder.join()
        assert len(passes) >= 2
        streamed = {"bronze.market_events", "silver.prices"}
        assert all({u.table for u in done} >= streamed for done in passes)
        assert all(q.isActive and q.exception() is None for q in queries)
        for query in queries:  # drain: silver takes all of Kafka, then gold all of silver
            query.processAllAvailable()
        assert all(q.isActive and q.exception() is None for q in queries)
    finally:
        for query in queries:
            query.stop()

    sent = sum(s.published + s.dead_lettered for s in summaries)
    quality = rows(live, GOLD_DATA_QUALITY)
    assert len(rows(live, BRONZE_EVENTS)) == sent
    assert int(quality["received"].sum()) == sent
    assert (
        len(rows(live, SILVER_PRICES))
        + len(rows(live, SILVER_SENSORS))
        + len(rows(live, SILVER_QUARANTINE))
        + int(quality["duplicates"].sum())
        - int(quality["released"].sum())  # held prices released: in quarantine and silver
        == sent
    )
    assert int(rows(live, GOLD_PRICE_DAILY)["count"].sum()) == len(rows(live, SILVER_PRICES))

    # a second pass on the quiet lakehouse: each table keeps exactly its rows
    before = contents(live)
    maintain(LIVE_TABLES, live, live.analyst.retention_hours)
    after = contents(live)
    for table in LIVE_TABLES:  # compacted: nothing left to compact
        live_files = DeltaTable(str(table.path(live))).file_uris()
        assert max(Counter(uri.rsplit("/", 1)[0] for uri in live_files).values()) == 1
    assert before.keys() == after.keys()
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], obj=name)
