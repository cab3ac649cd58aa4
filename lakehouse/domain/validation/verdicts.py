"""How the statistical judges hand out their verdicts: each rule is a bit of a mask, each number
behind a rule a column of its own (NaN: not computed) — plain numbers that cross the Arrow
boundary to Spark without Python objects per row. The silver query turns them back into the
``flags``, ``reasons`` (rule ids) and ``details`` (name → number) of silver and quarantine rows
(``streaming_jobs.verdicts``); the API's price check reads them as they are.

The rule ids and detail names are those of ``streaming_jobs.silver``'s docstring.
"""

from __future__ import annotations

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
