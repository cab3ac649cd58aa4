"""What a row of a streaming query's micro-batch is (``RowKind``, in its ``kind`` column), the
groups of the silver query's stateful step (``SeriesKey``), and the silver batch split by kind
(``SilverRows``) with its counts (``KindCounts``).

A query's input is the union of every Kafka record (``record``: bronze) and what was derived from
the first copies: judged events (accepted, or quarantined with reasons), operators' reviews that
are not valid as one, held prices, decisions on them and the prices a decision released
(``series_judge`` and the JVM judge emit them; ``jvm_judge.rules_json`` hands them the names);
the supply and news queries mark their first copies ``first``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

KIND = "kind"


class RowKind(StrEnum):
    RECORD = "record"  # a Kafka record as it came
    EVENT = "event"  # a first copy, judged: accepted (no reasons) or quarantined
    REVIEW = "review"  # an operator's review (not valid as one, when the judge emits it)
    HOLD = "hold"  # a held price: new, or with a decision
    DECISION = "decision"  # a decision on a held price
    RELEASE = "release"  # a held price a decision released: it goes to silver.prices
    FIRST = "first"  # the first copy of a record (supply and news queries)

    def lit(self) -> Column:
        """This kind as a Spark literal."""
        return F.lit(self.value)

    def of(self, column: str = KIND) -> Column:
        """Whether ``column`` (the ``kind`` column) names this kind."""
        return F.col(column) == self.value

    def rows(self, batch: DataFrame) -> DataFrame:
        """The rows of ``batch`` of this kind."""
        return batch.where(self.of())


class SeriesKey(StrEnum):
    """The prefix of a stateful step's group key before ``|`` (``p|3/16``): whose history the
    group holds. A row it only passes on is in the group ``PASSED``."""

    PRICE = "p"  # a bucket of provinces × commodities
    SENSOR = "s"  # a bucket of markets

    @classmethod
    def of(cls, key: str) -> SeriesKey | None:
        """The series kind of a group key (None: the group ``PASSED``)."""
        prefix = key.split("|", 1)[0]
        return cls(prefix) if prefix in cls._value2member_map_ else None


PASSED = "x"  # the key of rows the stateful step only passes on


@dataclass(frozen=True)
class KindCounts:
    """A silver batch's rows counted by kind, event type and whether accepted (no reasons),
    and how many of them meet ``alarm`` (a condition the batch's rows are counted by too)."""

    counts: Mapping[tuple[str, str | None, bool], int]
    alarms: int = 0

    @classmethod
    def of(cls, batch: DataFrame, alarm: Column) -> KindCounts:
        accepted = (F.size("reasons") == 0).alias("accepted")
        alarms = F.count_if(alarm).alias("alarms")
        counted = (
            batch.groupBy(KIND, "event_type", accepted)
            .agg(F.count("*").alias("rows"), alarms)
            .collect()
        )
        return cls(
            {(r[KIND], r["event_type"], r["accepted"]): r["rows"] for r in counted},
            sum(r["alarms"] for r in counted),
        )

    def count(
        self, kind: RowKind, event_type: str | None = None, accepted: bool | None = None
    ) -> int:
        """The rows of ``kind`` (of ``event_type``, accepted or not, when given)."""
        return sum(
            n
            for (k, t, a), n in self.counts.items()
            if k == kind and event_type in (None, t) and accepted in (None, a)
        )

    def has(
        self, kind: RowKind, event_type: str | None = None, accepted: bool | None = None
    ) -> bool:
        return self.count(kind, event_type, accepted) > 0

    @property
    def urgent(self) -> bool:
        """Whether an alert may follow these rows at once, whatever came before them: a held
        price, a decision on one or a quarantined event (``SilverFirst.silver_written``)."""
        held = any(self.has(k) for k in (RowKind.HOLD, RowKind.DECISION, RowKind.RELEASE))
        return held or self.has(RowKind.EVENT, accepted=False)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def for_log(self) -> dict[str, int]:
        return {f"{k}:{t or ''}:{a}": n for (k, t, a), n in self.counts.items()}


@dataclass(frozen=True)
class SilverRows:
    """A silver micro-batch split by kind (the rows keep every column of the batch)."""

    records: DataFrame
    events: DataFrame
    holds: DataFrame
    decisions: DataFrame
    releases: DataFrame

    @classmethod
    def of(cls, batch: DataFrame) -> SilverRows:
        return cls(
            records=RowKind.RECORD.rows(batch),
            events=RowKind.EVENT.rows(batch),
            holds=RowKind.HOLD.rows(batch),
            decisions=RowKind.DECISION.rows(batch),
            releases=RowKind.RELEASE.rows(batch),
        )
