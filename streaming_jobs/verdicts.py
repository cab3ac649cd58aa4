"""The statistical judges' verdicts (``lakehouse.domain.validation.verdicts``: a bit per rule, a
column per number) turned back into the ``flags``, ``reasons`` and ``details`` of silver and
quarantine rows, as Spark columns."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.domain.validation.verdicts import DETAILS, STAT_RULES, bit, detail_column


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
