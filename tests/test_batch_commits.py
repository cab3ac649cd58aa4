"""The rows of a writer's batches read by the Delta versions they committed
(``BatchCommits``, ``SparkTable.commits``: by delta-rs when small, else Spark's change
data feed) — what the gold batch reads of silver —
and the few rows it reads back from gold tables through delta-rs (``SparkTable.where``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from lakehouse.catalog.tables import Layer, Table
from lakehouse.config.settings import Settings
from lakehouse.io import delta_io
from lakehouse.io.delta_io import BatchCommits, SparkLake
from lakehouse.io.lake import Lakehouse

_names = itertools.count()
WRITER = "silver:query-1"


def _table(change_feed: bool = True) -> Table:
    return Table(
        Layer.silver,
        f"commits_{next(_names)}",
        "a test table",
        partition_by=("day",),
        change_feed=change_feed,
    )


def _rows(spark: SparkSession, batch: int, n: int = 2) -> DataFrame:
    return spark.createDataFrame(
        [(f"e{batch}-{i}", f"2025-03-0{1 + i % 3}", batch) for i in range(n)],
        "event_id string, day string, silver_batch_id bigint",
    ).selectExpr("event_id", "cast(day as date) as day", "silver_batch_id")


def _append(
    spark: SparkSession, table: Table, settings: Settings, batch: int, writer: str = WRITER
):
    SparkLake(spark, settings)[table].append_once(_rows(spark, batch), writer, batch)


def _ids(rows: DataFrame) -> list[str]:
    return sorted(r.event_id for r in rows.collect())


def _read(spark, table, settings, commits, batches) -> list[str] | None:
    span = commits.span(Lakehouse(settings)[table], batches)
    if span is None:
        return None
    if not span:
        return []
    added = commits.added(Lakehouse(settings)[table], span)
    return _ids(SparkLake(spark, settings)[table].commits(span, added))


def test_the_batches_rows_are_read_by_version_and_nothing_else(spark, settings) -> None:
    table = _table()
    for batch in range(4):
        _append(spark, table, settings, batch)
    commits = BatchCommits("silver:")
    assert _read(spark, table, settings, commits, [2, 3]) == ["e2-0", "e2-1", "e3-0", "e3-1"]
    # a batch that appended nothing to the table (here 4) has no rows, and costs no read
    _append(spark, table, settings, 5)
    assert commits.span(Lakehouse(settings)[table], [4]) == range(0)
    assert _read(spark, table, settings, commits, [4, 5]) == ["e5-0", "e5-1"]
    # a replay of a batch already written appends nothing, so its rows stay those of one commit
    _append(spark, table, settings, 5)
    assert _read(spark, table, settings, commits, [5]) == ["e5-0", "e5-1"]


def test_a_compaction_between_batches_is_not_read_and_another_writer_is_refused(
    spark, settings
) -> None:
    table = _table()
    for batch in range(3):
        _append(spark, table, settings, batch)
    commits = BatchCommits("silver:")
    assert _read(spark, table, settings, commits, [0]) == ["e0-0", "e0-1"]
    _append(spark, table, settings, 3)
    spark.sql(f"OPTIMIZE delta.`{table.path(settings)}`")  # re-arranges, adds no rows
    _append(spark, table, settings, 4)
    assert _read(spark, table, settings, commits, [1, 2, 3, 4]) == [
        f"e{b}-{i}" for b in range(1, 5) for i in range(2)
    ]
    # rows of another writer between the batches: the span cannot hold only theirs
    _append(spark, table, settings, 5)
    _append(spark, table, settings, 0, writer="backfill:1")
    _append(spark, table, settings, 6)
    assert commits.span(Lakehouse(settings)[table], [5, 6]) is None
    assert _read(spark, table, settings, commits, [6]) == ["e6-0", "e6-1"]


def test_a_reader_started_later_looks_back_and_a_cleaned_log_is_refused(spark, settings) -> None:
    table = _table()
    for batch in range(3):
        _append(spark, table, settings, batch)
    Lakehouse(settings)[table].open().create_checkpoint()  # at version 2
    for batch in range(3, 6):
        _append(spark, table, settings, batch)
    assert _read(spark, table, settings, BatchCommits("silver:"), [3, 4]) == [
        "e3-0",
        "e3-1",
        "e4-0",
        "e4-1",
    ]
    assert BatchCommits("other:").span(Lakehouse(settings)[table], [3]) == range(0)
    for version in (0, 1):  # what the log's cleanup removes before a checkpoint
        Path(table.log(settings, version)).unlink()
    cleaned = BatchCommits("silver:")
    assert cleaned.span(Lakehouse(settings)[table], [1]) is None
    assert _read(spark, table, settings, cleaned, [3]) == ["e3-0", "e3-1"]


def test_a_table_written_before_its_change_feed_was_on(spark, settings, monkeypatch) -> None:
    """The registry's tables have the feed from their first write; one written before gets it
    turned on. Its older commits are read by version from their commit files (delta-rs), and
    stay unreadable from Spark's change data feed (the reader falls back)."""
    table = _table(change_feed=False)
    for batch in range(2):
        _append(spark, table, settings, batch)
    fed = Table(table.layer, table.name, table.description, table.partition_by, change_feed=True)
    SparkLake(spark, settings)[fed].ensure_change_feed()
    SparkLake(spark, settings)[fed].ensure_change_feed()  # once on, it is left as it is
    _append(spark, fed, settings, 2)
    commits = BatchCommits("silver:")
    assert _read(spark, fed, settings, commits, [2]) == ["e2-0", "e2-1"]
    assert commits.span(Lakehouse(settings)[fed], [1]) is None  # read batches move forward
    assert _read(spark, fed, settings, BatchCommits("silver:"), [1]) == ["e1-0", "e1-1"]
    monkeypatch.setattr(delta_io, "SMALL_COMMITS_BYTES", -1)  # every commit through Spark
    with pytest.raises(AnalysisException) as raised:
        _read(spark, fed, settings, BatchCommits("silver:"), [1])
    assert raised.value.getCondition() == "DELTA_MISSING_CHANGE_DATA"


def test_small_commits_read_by_delta_rs_are_the_rows_of_the_change_feed(
    spark, settings, monkeypatch
) -> None:
    """``SparkTable.commits`` of commits up to ``SMALL_COMMITS_BYTES`` (delta-rs, from their
    commit files): the rows, columns and types Spark's change data feed reads, a column a later
    commit added null in the older rows, the partition column in its place."""
    table = _table()
    for batch in range(2):
        _append(spark, table, settings, batch)
    wider = _rows(spark, 2).selectExpr(
        "*",
        "if(silver_batch_id > 0, timestamp'2025-03-01 23:30:00', null) as at",  # nullable
        "if(silver_batch_id > 0, map('late', silver_batch_id), null) as reasons",
    )
    SparkLake(spark, settings)[table].append_once(wider, WRITER, 2)
    commits = BatchCommits("silver:")
    span = commits.span(Lakehouse(settings)[table], [0, 1, 2])
    assert span is not None and len(span) == 3
    added = commits.added(Lakehouse(settings)[table], span)
    by_delta_rs = SparkLake(spark, settings)[table].commits(span, added)
    monkeypatch.setattr(delta_io, "SMALL_COMMITS_BYTES", -1)  # every commit through Spark
    by_spark = SparkLake(spark, settings)[table].commits(span, added)
    assert by_delta_rs.schema == by_spark.schema
    assert sorted(by_delta_rs.collect()) == sorted(by_spark.collect())
    assert {r.event_id for r in by_delta_rs.where("reasons IS NULL").collect()} == {
        "e0-0", "e0-1", "e1-0", "e1-1"
    }  # fmt: skip


@pytest.mark.parametrize("in_plan_rows", [delta_io.IN_PLAN_ROWS, 1])
def test_rows_read_by_delta_rs_are_the_rows_spark_reads(
    spark, settings, monkeypatch, in_plan_rows
) -> None:
    """``SparkTable.where``: the rows a condition selects — up to ``IN_PLAN_ROWS`` read by
    delta-rs into the plan, more by Spark from the table's files — with the types and values
    Spark reads (dates, UTC times, maps); none selected is an empty DataFrame of the table's
    schema, not an error."""
    monkeypatch.setattr(delta_io, "IN_PLAN_ROWS", in_plan_rows)
    table = _table()
    rows = spark.createDataFrame(
        [
            ("a", "2025-03-01", "2025-03-01 23:30:00", {"late": 2}, 1),
            ("b", "2025-03-02", "2025-03-02 00:15:00", {}, 2),
            ("c", "2025-03-03", "2025-03-03 12:00:00", None, 3),
        ],
        "event_id string, day string, at string, reasons map<string,bigint>, n bigint",
    ).selectExpr(
        "event_id", "cast(day as date) as day", "cast(at as timestamp) as at", "reasons", "n"
    )
    rows.write.format("delta").partitionBy("day").save(table.path(settings))

    condition = "t.day >= DATE '2025-03-02'"
    read = SparkLake(spark, settings)[table].where(condition)
    by_spark = SparkLake(spark, settings)[table].read().where("day >= DATE '2025-03-02'")
    assert read.schema == by_spark.select(*read.columns).schema
    assert sorted(read.collect()) == sorted(by_spark.select(*read.columns).collect())
    assert [r.event_id for r in read.collect()] != []
    in_plan = "LocalRelation" in read._jdf.queryExecution().analyzed().toString()
    assert in_plan == (in_plan_rows > 1)  # the two rows selected
    none = SparkLake(spark, settings)[table].where("t.day > DATE '2025-03-03'")
    assert none.collect() == [] and none.schema == read.schema
