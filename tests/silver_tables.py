"""The silver tables of two runs of the silver plan, made comparable row by row: the columns
that only say when (or in which micro-batch, from which Kafka coordinates) a run wrote a row
dropped, maps and arrays as text, rows in one order."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from lakehouse.catalog.tables import (
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    SILVER_SENSORS,
)

SILVER_TABLES = (
    SILVER_PRICES,
    SILVER_SENSORS,
    SILVER_QUARANTINE,
    SILVER_HOLDS,
    SILVER_HOLD_DECISIONS,
)
#: the wall-clock time of a run (the micro-batch's time), not a verdict
RUN_TIME = frozenset(
    {"ingest_time", "ingest_date", "quarantined_at", "quarantine_date", "held_at", "decided_at"}
)


def _text(value: object) -> str:
    """A map's or an array's value as text (a map's keys sorted; None as None)."""
    if isinstance(value, dict):
        return repr(sorted(value.items()))
    if isinstance(value, list | tuple | np.ndarray):
        items = [tuple(v) if isinstance(v, list | tuple | np.ndarray) else v for v in value]
        return repr(sorted(items) if all(isinstance(v, tuple) for v in items) else items)
    return repr(value)


def comparable(frame: pd.DataFrame, ignored: Collection[str] = RUN_TIME) -> pd.DataFrame:
    """``frame`` without the ``ignored`` columns, maps and arrays as text, sorted."""
    frame = frame.drop(columns=[c for c in frame.columns if c in ignored])
    for column in frame.columns:  # maps and arrays as text, keys sorted
        if frame[column].map(lambda v: isinstance(v, list | tuple | dict | np.ndarray)).any():
            frame[column] = frame[column].map(_text)
    keys = [c for c in ("event_id", "decision", "raw", "offset") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)[sorted(frame.columns)]
