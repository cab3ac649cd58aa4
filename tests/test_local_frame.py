"""``lakehouse.io.spark.local_frame``: a few rows as a DataFrame whose size Spark knows, so that
a join with it broadcasts them instead of shuffling both sides."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql.types import DataType

from lakehouse.io.spark import local_frame

SCHEMA = "market_id string, price double, observed_at timestamp, reasons array<string>"
AT = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


def test_rows_by_position_or_name_are_the_same_local_rows(spark: SparkSession) -> None:
    by_position = local_frame(spark, [("IP-001", 14000.0, AT, ["iqr"])], SCHEMA)
    by_name = local_frame(
        spark,
        [{"market_id": "IP-001", "price": 14000.0, "observed_at": AT, "reasons": ["iqr"]}],
        by_position.schema,
    )
    for frame in (by_position, by_name):
        assert frame.schema.simpleString() == DataType.fromDDL(SCHEMA).simpleString()
        row = frame.first()
        assert (row.market_id, row.price, row.reasons) == ("IP-001", 14000.0, ["iqr"])
        assert row.observed_at.replace(tzinfo=UTC) == AT  # the session's time zone is UTC
        plan = frame._jdf.queryExecution().analyzed()
        assert plan.getClass().getSimpleName() == "LocalRelation"
    empty = local_frame(spark, [], SCHEMA)
    assert empty.count() == 0 and empty.schema == by_position.schema


def test_a_join_with_local_rows_broadcasts_them(spark: SparkSession) -> None:
    """The size is known, so the plan joins by broadcast: no shuffle of the other side (a
    ``createDataFrame`` of a Python list has an unknown size and made every such join a sort
    merge join, two shuffles — ~50 stages for a held price's alert)."""
    wide = spark.range(1000).selectExpr(
        "concat('IP-', lpad(cast(id AS string), 3, '0')) AS market_id"
    )
    small = local_frame(spark, [("IP-001", 14000.0, AT, [])], SCHEMA)
    size = small._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
    assert int(str(size)) < int(spark.conf.get("spark.sql.autoBroadcastJoinThreshold").rstrip("b"))
    joined = wide.join(small, "market_id")
    plan = joined._jdf.queryExecution().executedPlan().toString()
    assert "BroadcastHashJoin" in plan and "SortMergeJoin" not in plan
    assert [r.market_id for r in joined.collect()] == ["IP-001"]
