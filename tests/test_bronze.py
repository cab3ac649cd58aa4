"""Bronze: the pure transform (chispa) and the real Kafka → Spark → Delta stream."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from lakehouse.catalog.events import PriceEvent
from lakehouse.catalog.tables import BRONZE_EVENTS
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.kafka_io import EventProducer
from streaming_jobs.bronze import BRONZE_COLUMNS, SHARED_APPENDS, to_bronze
from streaming_jobs.medallion import SilverBatch, silver_query
from streaming_jobs.news import NewsBatch
from streaming_jobs.query_priority import SilverFirst
from streaming_jobs.supply_query import SupplyBatch
from tests.conftest import drain, isolated

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)


def test_to_bronze_keeps_the_record_untouched(spark):
    ts = dt.datetime(2025, 3, 21, 8, 0)
    records = spark.createDataFrame(
        [
            (b"IP-001:beras", b'{"price": 1}', "market.prices", 0, 7, ts, 0),
            (None, b"\xff not json", "market.sensors", 2, 9, ts, 0),
        ],
        KAFKA_SCHEMA,
    )
    out = to_bronze(records)
    assert tuple(out.columns) == BRONZE_COLUMNS
    expected = spark.createDataFrame(
        [
            ("market.prices", 0, 7, ts, "IP-001:beras", '{"price": 1}'),
            ("market.sensors", 2, 9, ts, None, "\ufffd not json"),  # invalid UTF-8 kept, replaced
        ],
        "topic string, partition int, offset long, kafka_timestamp timestamp, key string, "
        "value string",
    )
    assert_df_equality(
        out.drop("ingest_time", "ingest_date"),
        expected,
        ignore_nullable=True,
        ignore_row_order=True,
    )


def _bronze_rows(settings) -> list[dict]:
    table = DeltaTable(str(BRONZE_EVENTS.path(settings)))
    return table.to_pyarrow_table(columns=["topic", "partition", "offset", "value"]).to_pylist()


def _send(settings, price: float) -> PriceEvent:
    event = PriceEvent(
        market_id="IP-001",
        commodity="beras",
        price=price,
        unit="kg",
        observed_at=dt.datetime.now(dt.UTC),
        source="test",
    )
    producer = EventProducer(settings)
    producer.send(event)
    producer.flush()
    return event


@pytest.mark.parametrize(
    "batch",
    [
        lambda spark, settings: SilverBatch(spark, settings, SilverFirst()),
        lambda spark, settings: SupplyBatch(spark, settings, SilverFirst()),
        NewsBatch,
    ],
    ids=["silver", "supply", "news"],
)
def test_each_kafka_query_finds_the_shared_tables_before_its_first_batch(
    spark, settings, tmp_path, batch
):
    """Two queries' first appends to one empty folder race (DELTA_PROTOCOL_CHANGED on a first
    start): every query creates the tables they share before it runs a batch."""
    settings = isolated(settings, tmp_path)
    batch(spark, settings)
    for table in SHARED_APPENDS:
        assert SparkLake(spark, settings)[table].exists(), table.name
        assert DeltaTable(str(table.path(settings))).metadata().partition_columns == list(
            table.partition_by
        )


def test_event_reaches_bronze_once_across_restarts(spark, kafka, settings):
    first = _send(settings, 14000)
    drain(spark, settings, silver_query)
    rows = _bronze_rows(settings)
    assert [r for r in rows if str(first.event_id) in r["value"]]

    # restart from the checkpoint: nothing is written again, new data still flows
    second = _send(settings, 14100)
    drain(spark, settings, silver_query)
    rows = _bronze_rows(settings)
    coordinates = [(r["topic"], r["partition"], r["offset"]) for r in rows]
    assert len(coordinates) == len(set(coordinates)), "a Kafka record was written twice"
    assert sum(str(first.event_id) in r["value"] for r in rows) == 1
    assert sum(str(second.event_id) in r["value"] for r in rows) == 1
