"""The silver query's stateful step in the JVM: the same rules as ``series_judge`` (prices,
sensors, holds, reviews) run by the ``transformWithState`` processor of jvm/series-judge
(``id.smartmarket.judge.SeriesJudge``), so that an event never crosses into Python.

The processor takes the rows ``silver.judge`` prepares for ``series_judge`` (grouped by the same
key: a bucket of provinces × commodities, a bucket of markets, or ``x``) and returns the same
output rows; its state (a key's points and held prices, in Spark's state store) is laid out
differently, so switching ``spark.judge`` needs a new checkpoint. Thresholds and names cross as
one JSON document built here from ``conf/quality.yaml`` and the Python modules' constants.
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from lakehouse.catalog.events import HoldStatus
from lakehouse.catalog.rules import QualityRules
from lakehouse.domain.validation import holds, price_judge
from lakehouse.domain.validation.verdicts import (
    DETAIL_PREFIX,
    DETAILS,
    FLAGS_MASK,
    REASONS_MASK,
    STAT_RULES,
)
from streaming_jobs.row_kinds import RowKind, SeriesKey

ENTRY = "id.smartmarket.judge.SeriesJudge"


def rules_json(rules: QualityRules) -> str:
    """The thresholds of ``rules`` and the constants the Python judge uses, as the JVM reads
    them."""
    return json.dumps(
        {
            **rules.model_dump(mode="json", include={"prices", "hold", "sensors"}),
            "constants": {
                "recent": price_judge.RECENT,
                "min_iqr": price_judge.MIN_IQR,
                "stat_rules": list(STAT_RULES),
                "details": list(DETAILS),
                "detail_prefix": DETAIL_PREFIX,
                "flags_mask": FLAGS_MASK,
                "reasons_mask": REASONS_MASK,
                "by_rule": holds.BY_RULE,
                "not_confirmed_note": holds.NOT_CONFIRMED_NOTE,
                "confirmed_note": holds.CONFIRMED_NOTE,
                "held": HoldStatus.held.value,
                "released": HoldStatus.released.value,
                "not_confirmed": HoldStatus.not_confirmed.value,
                "reviewable": [s.value for s in HoldStatus.reviewable()],
                "review_decisions": holds.REVIEW_DECISIONS,
                "kinds": {k.name.lower(): k.value for k in RowKind},
                "series_keys": {k.name.lower(): k.value for k in SeriesKey},
            },
        }
    )


def judge(prepared: DataFrame, key: str, output: StructType, rules: QualityRules) -> DataFrame:
    """``prepared`` grouped by ``key`` through the JVM processor: rows of ``output``."""
    spark = prepared.sparkSession
    entry = spark._jvm.id.smartmarket.judge.SeriesJudge
    jdf = entry.judge(prepared._jdf, key, output.json(), rules_json(rules))
    return DataFrame(jdf, spark)
