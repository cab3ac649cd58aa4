"""How the statistical judges hand their verdicts to Spark: each rule is a bit of a mask, each
number behind a rule a column of its own (NaN: not computed) — plain numbers that cross the
Arrow boundary without Python objects per row. Spark turns them back into the ``flags``,
``reasons`` (rule ids) and ``details`` (name → number) of silver and quarantine rows.

The rule ids and detail names are those of ``streaming_jobs.silver``'s docstring.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

#: the statistical rules, one bit each (bit i = 1 << i), in the order they are listed on a row
STAT_RULES = ("zscore", "iqr", "median_deviation", "cross_market", "sensor_jump", "sensor_stuck")
#: the numbers behind the statistical rules, as ``details`` names them
DETAILS = (
    "history_n",
    "change",
    "z_score",
    "change_iqr_low",
    "change_iqr_high",
    "rolling_median",
    "cross_market_median",
    "previous_median",
)
DETAIL_PREFIX = "d_"  # the column of detail ``name`` is ``d_<name>``
FLAGS_MASK = "stat_flags"  # the rules that flagged the event (kept on its silver row)
REASONS_MASK = "stat_reasons"  # the rules that quarantine it (empty: accepted)


def bit(rule: str) -> int:
    return 1 << STAT_RULES.index(rule)


def detail_column(name: str) -> str:
    return f"{DETAIL_PREFIX}{name}"


def ids_where(*checks: tuple[str, Column]) -> Column:
    """Array of the rule ids whose condition holds, in the order given (a null condition does
    not hold)."""
    return F.filter(
        F.array(*[F.when(cond, F.lit(rule)) for rule, cond in checks]), lambda r: r.isNotNull()
    )


def rule_ids(mask: Column) -> Column:
    """The rule ids of a mask column, as an array in :data:`STAT_RULES` order."""
    return ids_where(*[(r, mask.bitwiseAND(bit(r)) != 0) for r in STAT_RULES])


def details_map() -> Column:
    """The detail columns as a ``map<string,double>`` without the numbers not computed."""
    pairs = [x for name in DETAILS for x in (F.lit(name), F.col(detail_column(name)))]
    return F.map_filter(F.create_map(*pairs), lambda _k, v: v.isNotNull() & ~F.isnan(v)).cast(
        "map<string,double>"
    )
