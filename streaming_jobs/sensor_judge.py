"""The statistical sensor rules — pure numpy, no loop per reading.

Per device × metric, each candidate reading is compared with the readings before it (the
accepted ones its state holds, and the batch's own, in time order):

- ``sensor_jump`` (quarantines): farther than the metric's ``max_jump`` from the median of the
  ``stuck_readings`` previous readings — robust to a single spike;
- ``sensor_stuck`` (flags): the same value ``stuck_readings`` times in a row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.catalog.rules import SensorQualityRules
from lakehouse.domain.validation.price_judge import row_percentiles
from lakehouse.domain.validation.series_state import SENSOR_SERIES, earlier_values, series_codes
from lakehouse.domain.validation.verdicts import (
    DETAILS,
    FLAGS_MASK,
    REASONS_MASK,
    bit,
    detail_column,
)

#: the pool a judge takes: one row per reading, ``_candidate`` for the batch's own
POOL_COLUMNS = ("event_id", *SENSOR_SERIES, "_sec", "value", "_candidate")


def judge(pool: pd.DataFrame, rules: SensorQualityRules) -> pd.DataFrame:
    """The verdicts on the candidates of a ``pool`` (a bucket of markets' readings; columns
    :data:`POOL_COLUMNS`; ``_sec`` the observation time in epoch seconds): per candidate
    ``event_id``, the flags and reasons masks and the detail columns, indexed as the candidates
    are in ``pool``."""
    codes = series_codes(pool, SENSOR_SERIES)
    order = np.lexsort((pool["event_id"].to_numpy(), pool["_sec"].to_numpy(), codes))
    pool, series = pool.iloc[order], codes[order]
    values = pool["value"].to_numpy(dtype=float)
    candidate = pool["_candidate"].to_numpy(dtype=bool)
    n = rules.stuck_readings
    previous = earlier_values(series, values, n)
    ordered = np.sort(previous, axis=1)
    median = row_percentiles(ordered, (~np.isnan(previous)).sum(axis=1), 0.5)
    # the stuck window: this reading and the n - 1 before it, all present and all equal
    window = np.column_stack([values, previous[:, : n - 1]])
    stuck = (~np.isnan(window)).all(axis=1) & (window == values[:, None]).all(axis=1)
    limits = pool["metric"].map({m.value: v for m, v in rules.max_jump.items()})
    limit = limits.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        jump = np.abs(values - median) > limit  # NaN median or limit: no jump
    return pd.DataFrame(
        {
            "event_id": pool["event_id"].to_numpy()[candidate],
            FLAGS_MASK: np.where(stuck, bit("sensor_stuck"), 0)[candidate].astype(np.int64),
            REASONS_MASK: np.where(jump, bit("sensor_jump"), 0)[candidate].astype(np.int64),
            **{
                detail_column(d): median[candidate] if d == "previous_median" else np.nan
                for d in DETAILS
            },
        },
        index=pool.index[candidate],
    )
