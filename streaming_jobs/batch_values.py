"""A micro-batch's own values — its id, its time — as columns that Spark's generated code does
not write into its source.

Spark compiles each stage of a plan to Java, and writes a literal long, int, date or timestamp
into the source (``current_timestamp()`` in a stream is replaced by such a literal each batch).
So every micro-batch compiled new classes and the JIT started over on them: on the silver
query 13 classes (~200 KB of source) a batch, with the JIT's compiler threads using a third of
the JVM's CPU. Here the value is the body of a one-element ``transform``: a higher-order
function is evaluated through a reference to its expression (Spark 4.0 generates no code for
it) and is never constant-folded, so the source — and the compiled, JIT-warm class — is the
same for every batch. ``tests/test_batch_values.py`` checks that a batch compiles nothing new.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column
from pyspark.sql import functions as F


def _held(value: Column) -> Column:
    """``value`` (a literal, or what a stream replaces by one) kept out of generated code."""
    return F.transform(F.array(F.lit(0)), lambda _: value)[0]


def batch_number(value: int) -> Column:
    """``value`` (a batch id) as a ``bigint`` column."""
    return _held(F.lit(value).cast("bigint"))


def batch_clock(value: datetime) -> Column:
    """``value`` (a time the driver took or computed for this batch: when it started, where a
    window it reads begins) as a ``timestamp`` column. Not for a bound Delta should prune or skip
    files by: that needs a literal (a date partition's bound changes once a day, not each batch)."""
    return _held(F.lit(value))


def batch_time() -> Column:
    """The micro-batch's time in a stream (``current_timestamp()``: the same for every row of a
    batch, and again the same when the batch is replayed) as a ``timestamp`` column."""
    return _held(F.current_timestamp())
