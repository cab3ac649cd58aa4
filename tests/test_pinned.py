"""``lakehouse.io.spark.pinned``: a micro-batch's intermediate result, kept serialized."""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.io.spark import pinned


def test_a_pinned_frame_keeps_its_rows_as_serialized_blocks(spark: SparkSession) -> None:
    """The rows once, the same rows read back, and the blocks Spark keeps for them serialized
    (an ``UnsafeRow`` object per row is what ran the national load's driver out of heap)."""
    jsc = spark.sparkContext._jsc
    before = set(jsc.getPersistentRDDs().keySet())
    frame = spark.range(1000).selectExpr("id", "cast(id AS string) AS name").transform(pinned)
    kept = [rdd for key, rdd in jsc.getPersistentRDDs().items() if key not in before]
    assert len(kept) == 1
    level = kept[0].getStorageLevel()
    assert (level.useMemory(), level.useDisk(), level.deserialized()) == (True, True, False)
    assert sorted(r.id for r in frame.collect()) == list(range(1000))
